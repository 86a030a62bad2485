//! The console's pages, as maud templates: every value is escaped unless
//! it is wrapped in `PreEscaped`, which only the chart's numbers are.

use http::StatusCode;
use maud::{html, Markup, DOCTYPE};

use super::session::Session;
use super::{destination, html as page, Page};
use crate::config::{AckMode, Config, Route};
use crate::presets::samples::TestEvent;
use crate::spool::{DeliveryDetail, DeliveryState, DeliverySummary, SpoolCounts};
use crate::telemetry::activity::{Minute, Rejection};
use crate::verify::VerifyError;

/// Largest part of a body shown on the event page.
const BODY_SHOWN: usize = 64 * 1024;

/// The page frame: title, navigation (with "Dead letters"), logout.
fn layout(title: &str, session: Option<&Session>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · hookgate" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    nav {
                        a.brand href="/ui/" { "hookgate" }
                        @if session.is_some() {
                            a href="/ui/" { "Overview" }
                            a href="/ui/dead-letters" { "Dead letters" }
                        }
                    }
                    @if let Some(session) = session {
                        form.logout method="post" action="/ui/logout" {
                            (csrf(session))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A page with a title and one paragraph (errors, refusals).
pub fn message(status: StatusCode, title: &str, text: &str) -> Page {
    page(
        status,
        layout(
            title,
            None,
            html! {
                p { (text) }
                p { a href="/ui/" { "Back to the console" } }
            },
        ),
    )
}

pub fn login(error: Option<&str>) -> Page {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page(
        status,
        layout(
            "Log in",
            None,
            html! {
                @if let Some(error) = error { p.error role="alert" { (error) } }
                form method="post" action="/ui/login" {
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Log in" }
                }
                p.hint { "The value of admin.token in hookgate's configuration." }
            },
        ),
    )
}

/// What the overview shows of one route.
pub struct RouteOverview<'a> {
    pub route: &'a Route,
    pub minutes: Vec<Minute>,
    pub last_request: Option<i64>,
    pub counts: Option<SpoolCounts>,
    pub oldest_pending_age_ms: Option<i64>,
}

pub fn overview(routes: &[RouteOverview<'_>], session: &Session) -> Page {
    page(
        StatusCode::OK,
        layout(
            "Overview",
            Some(session),
            html! {
                @if routes.is_empty() { p { "No routes are configured." } }
                @for r in routes {
                    (route_card(r))
                }
            },
        ),
    )
}

fn route_card(r: &RouteOverview<'_>) -> Markup {
    let route = r.route;
    let sum = |f: fn(&Minute) -> u32| r.minutes.iter().map(f).sum::<u32>();
    let (verified, rejected, duplicate, delivered, failed) = (
        sum(|m| m.verified),
        sum(Minute::rejected_total),
        sum(|m| m.duplicate),
        sum(|m| m.delivered),
        sum(|m| m.delivery_failed),
    );
    let rate = if delivered + failed == 0 {
        "–".to_string()
    } else {
        format!(
            "{:.1} %",
            100.0 * f64::from(delivered) / f64::from(delivered + failed)
        )
    };
    html! {
        section.card {
            h2 { a href=(format!("/ui/routes/{}", route.name)) { (route.name) } }
            dl.facts {
                dt { "Path" } dd { code { (route.path) } }
                dt { "Scheme" } dd { (route.verify.scheme) }
                dt { "Ack" } dd { (route.ack.as_str()) }
                dt { "Destination" } dd { code { (destination(route)) } }
                dt { "Delivery success (1 h)" } dd { (rate) }
                @if let Some(c) = r.counts {
                    dt { "Pending" } dd { (c.pending) }
                    dt { "Oldest pending" } dd { (r.oldest_pending_age_ms.map(age).unwrap_or_else(|| "–".into())) }
                    dt { "Dead letters" } dd {
                        a href=(format!("/ui/dead-letters?route={}", route.name)) { (c.dead) }
                    }
                }
                dt { "Last request" } dd { (r.last_request.map(when).unwrap_or_else(|| "none since start-up".into())) }
            }
            (chart(&r.minutes))
            p.totals {
                "Last hour: " (verified) " verified, " (rejected) " rejected, "
                (duplicate) " duplicate, " (delivered) " delivered."
            }
        }
    }
}

/// One bar of the chart: name, colour, value per minute.
type Series = (&'static str, &'static str, fn(&Minute) -> u32);

const SERIES: [Series; 4] = [
    ("verified", "#2563eb", |m| m.verified),
    ("rejected", "#dc2626", Minute::rejected_total),
    ("duplicate", "#9333ea", |m| m.duplicate),
    ("delivered", "#16a34a", |m| m.delivered),
];

/// The rejected bar is stacked by reason, in [`VerifyError::ALL`] order.
const REASON_COLOURS: [&str; VerifyError::ALL.len()] = [
    "#fb923c", "#f87171", "#dc2626", "#7f1d1d", "#facc15", "#a16207", "#c026d3", "#64748b",
];

/// The last hour as an inline SVG bar chart: per minute, one bar per
/// series side by side, the rejected one stacked by reason (nothing is
/// drawn for a zero).
fn chart(minutes: &[Minute]) -> Markup {
    const H: f64 = 120.0;
    const SLOT: f64 = 10.0;
    const BAR: f64 = 2.2;
    let max = minutes
        .iter()
        .flat_map(|m| SERIES.iter().map(move |(_, _, f)| f(m)))
        .max()
        .unwrap_or(0)
        .max(1);
    let height = |v: u32| f64::from(v) / f64::from(max) * (H - 6.0);
    // (x, y, height, colour) of every rectangle.
    let mut rects: Vec<(f64, f64, f64, &str)> = Vec::new();
    for (i, m) in minutes.iter().enumerate() {
        for (j, (name, colour, f)) in SERIES.iter().enumerate() {
            let x = i as f64 * SLOT + 0.6 + j as f64 * BAR;
            if *name == "rejected" {
                let mut top = H;
                for (n, colour) in m.rejected.iter().zip(REASON_COLOURS) {
                    if *n > 0 {
                        top -= height(*n);
                        rects.push((x, top, height(*n), colour));
                    }
                }
            } else if f(m) > 0 {
                rects.push((x, H - height(f(m)), height(f(m)), colour));
            }
        }
    }
    let reasons: Vec<(usize, u32)> = (0..VerifyError::ALL.len())
        .map(|i| (i, minutes.iter().map(|m| m.rejected[i]).sum::<u32>()))
        .filter(|(_, n)| *n > 0)
        .collect();
    let width = SLOT * minutes.len() as f64;
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {width} {H}")) preserveAspectRatio="none" role="img" aria-label="Events per minute over the last hour" {
                @for i in (0..=minutes.len()).step_by(10) {
                    line x1=(i as f64 * SLOT) y1="0" x2=(i as f64 * SLOT) y2=(H) stroke="#e5e7eb" stroke-width="1" vector-effect="non-scaling-stroke" {}
                }
                @for (x, y, h, colour) in &rects {
                    rect x=(format!("{x:.1}")) y=(format!("{y:.1}")) width=(BAR) height=(format!("{h:.1}")) fill=(colour) {}
                }
            }
            div.axis { span { "60 min ago" } span { "30 min" } span { "now" } }
            figcaption {
                "per minute (tallest bar: " (max) "): "
                @for (name, colour, _) in SERIES {
                    @if name != "rejected" {
                        span.key { (swatch(colour)) " " (name) } " "
                    } @else if reasons.is_empty() {
                        span.key { (swatch(colour)) " rejected" } " "
                    } @else {
                        span.key { "rejected:" } " "
                        @for (i, n) in &reasons {
                            span.key { (swatch(REASON_COLOURS[*i])) " " code { (VerifyError::ALL[*i].code()) } " " (n) } " "
                        }
                    }
                }
            }
        }
    }
}

fn swatch(colour: &str) -> Markup {
    html! { svg.swatch viewBox="0 0 10 10" { rect width="10" height="10" fill=(colour) {} } }
}

/// A time (unix ms) as UTC and how long ago.
fn when(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let ago = (crate::store::now_ms() - ms).max(0);
    format!(
        "{} ({} ago)",
        humantime::format_rfc3339_seconds(at),
        age(ago)
    )
}

/// A duration in ms, short.
fn age(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

fn time(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The route page's list of the last rejected requests (header names only).
fn rejected(rejections: &[Rejection]) -> Markup {
    html! {
        h2 { "Last rejected requests" }
                @if rejections.is_empty() { p { "None since start-up." } } @else {
                    div.scroll { table {
                        thead { tr { th { "Time" } th { "Sender" } th { "Reason" } th { "Headers present (names only)" } } }
                        tbody {
                            @for r in rejections {
                                tr {
                                    td { (time(r.at)) }
                                    td { code { (r.peer) } }
                                    td { code { (r.reason.code()) } }
                                    td { (r.header_names.join(", ")) }
                                }
                            }
                        }
                    } }
                }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn route(
    route: &Route,
    events: &[(DeliverySummary, Option<String>)],
    state: Option<DeliveryState>,
    event_filter: Option<&str>,
    rejections: &[Rejection],
    test: Result<TestEvent, String>,
    session: &Session,
) -> Page {
    page(
        StatusCode::OK,
        layout(
            &format!("Route {}", route.name),
            Some(session),
            html! {
                p { "Scheme " strong { (route.verify.scheme) } ", ack " strong { (route.ack.as_str()) }
                    ", destination " code { (destination(route)) } ", dedup "
                    @match &route.dedup {
                        crate::config::DedupMode::Off => "off",
                        crate::config::DedupMode::On(d) => { "by key " code { (d.key.as_str()) } },
                    }
                    "." }
                h2 { "Recent events" }
                @if route.ack == AckMode::Sync {
                    p.hint { "A sync route relays each event as it arrives: nothing is stored, so there is no event list. The overview counts its events." }
                } @else {
                    form.filters method="get" action=(format!("/ui/routes/{}", route.name)) {
                        label for="state" { "State" }
                        select #state name="state" {
                            option value="" selected[state.is_none()] { "any" }
                            @for s in DeliveryState::ALL {
                                option value=(s.as_str()) selected[state == Some(s)] { (s.as_str()) }
                            }
                        }
                        @if route.events.from.is_some() {
                            label for="event" { "Event type" }
                            input #event type="text" name="event" value=(event_filter.unwrap_or(""));
                        }
                        button type="submit" { "Filter" }
                    }
                    @if events.is_empty() { p { "No events." } } @else {
                        div.scroll { table {
                            thead { tr { th { "Received" } th { "Event" } th { "Event type" } th { "Dedup key" } th { "Destination" } th { "State" } th { "Attempts" } th { "Last error" } } }
                            tbody {
                                @for (e, event_type) in events {
                                    tr {
                                        td { (time(e.received_at)) }
                                        td { a href=(format!("/ui/events/{}", e.id)) { code { (e.event_id) } } }
                                        td { (event_type.as_deref().unwrap_or("–")) }
                                        td { code { (e.dedup_key.as_deref().unwrap_or("–")) } }
                                        td { (e.destination) }
                                        td { span class=(format!("state {}", e.state)) { (e.state) } }
                                        td { (e.attempts) }
                                        td { (e.last_error.as_deref().unwrap_or("")) }
                                    }
                                }
                            }
                        } }
                    }
                }
                (rejected(rejections))
                (test_form(route, test, session))
            },
        ),
    )
}

/// "Send test event", pre-filled with a fresh sample (or why it cannot be
/// sent).
fn test_form(route: &Route, test: Result<TestEvent, String>, session: &Session) -> Markup {
    let test = match test {
        Ok(test) => test,
        Err(why) => {
            return html! {
                h2 #test { "Send test event" }
                p.hint { "Not available: " (why) "." }
            }
        }
    };
    html! {
        h2 #test { "Send test event" }
        form.test method="post" action=(format!("/ui/routes/{}/test", route.name)) {
            (csrf(session))
            label for="body" { "Body" }
            textarea #body name="body" rows="8" spellcheck="false" { (test.body) }
            @if let Some(h) = route.events.from.as_ref().and_then(|f| f.header()) {
                label for="test-event" { "Event type (sent in " code { (h) } ")" }
                input #test-event type="text" name="event" value=(test.event.as_deref().unwrap_or(""));
            }
            label for="test-headers" { "Headers (one " code { "Name: value" } " a line)" }
            textarea #test-headers name="headers" rows=(test.headers.len().max(1)) spellcheck="false" { (super::sample::headers_text(&test.headers)) }
            p.hint { "A sample of the sender's own shape, with IDs drawn afresh each time this page is shown, so each test is a new event (sending the same form twice is a duplicate). Signed with the route's first secret, as hookgate sign does, and posted to the ingress at " code { (route.path) } "." }
            button type="submit" { "Send test event" }
        }
    }
}

pub struct TestAnswer {
    pub status: StatusCode,
    pub delivery_id: Option<String>,
    pub body: String,
}

pub fn test_result(
    route: &Route,
    body: &str,
    header_names: &[String],
    note: Option<&str>,
    answer: Result<TestAnswer, String>,
    session: &Session,
) -> Page {
    page(
        StatusCode::OK,
        layout(
            "Test event",
            Some(session),
            html! {
                p { "Sent to route " a href=(format!("/ui/routes/{}", route.name)) { (route.name) }
                    @if header_names.is_empty() { " without extra headers." } @else {
                        " with the headers " (header_names.join(", ")) " (values not shown)." } }
                @if let Some(note) = note { p.hint { (note) } }
                h2 { "Body sent" }
                pre { (body) }
                h2 { "Answer" }
                @match answer {
                    Ok(a) => {
                        p { "Status " strong #status { (a.status.as_u16()) } " " (a.status.canonical_reason().unwrap_or("")) }
                        @if let Some(id) = &a.delivery_id {
                            p { "Event " a #event-link href=(format!("/ui/events/{id}")) { code { (id) } } }
                        }
                        @if a.status.is_success() && a.body.contains(r#""forwarded":false"#) {
                            p.hint { "Verified and answered by hookgate without forwarding: this event type is acknowledged only (ack_only) or filtered out on this route. Change the event type to send one through." }
                        }
                        pre { (a.body) }
                    }
                    Err(e) => { p.error { (e) } }
                }
                p { a href=(format!("/ui/routes/{}#test", route.name)) { "Send another test event" } " (with fresh IDs)" }
            },
        ),
    )
}

pub fn event(
    detail: &DeliveryDetail,
    route: Option<&Route>,
    event_type: Option<&str>,
    headers: &[(String, String)],
    replayed: bool,
    session: &Session,
) -> Page {
    let s = &detail.summary;
    let shown = &detail.body[..detail.body.len().min(BODY_SHOWN)];
    // The attempts went to this delivery's destination.
    let destination =
        match route.and_then(|r| r.destinations.iter().find(|d| d.name == s.destination)) {
            Some(d) => format!("{}: {}", d.name, super::mask::address(&d.kind)),
            None => format!("{} (no longer configured)", s.destination),
        };
    page(
        StatusCode::OK,
        layout(
            "Event",
            Some(session),
            html! {
                @if replayed { p.notice role="status" { "Replayed: the event is pending again and will be delivered shortly." } }
                dl.facts {
                    dt { "Id" } dd { code { (s.id) } }
                    dt { "Route" } dd { a href=(format!("/ui/routes/{}", s.route)) { (s.route) } }
                    dt { "State" } dd { span #state class=(format!("state {}", s.state)) { (s.state) } }
                    dt { "Received" } dd { (time(s.received_at)) }
                    dt { "Event type" } dd { (event_type.unwrap_or("–")) }
                    dt { "Dedup key" } dd { code { (s.dedup_key.as_deref().unwrap_or("–")) } }
                    dt { "Destination" } dd { (s.destination) }
                    dt { "Attempts" } dd { (s.attempts) }
                    @if let Some(next) = s.next_attempt_at { @if s.state == DeliveryState::Pending {
                        dt { "Next attempt" } dd { (time(next)) }
                    } }
                    @if let Some(e) = &s.last_error { dt { "Last error" } dd { (e) } }
                }
                @if s.state == DeliveryState::Dead {
                    form method="post" action=(format!("/ui/events/{}/replay", s.id)) {
                        (csrf(session))
                        button type="submit" { "Replay" }
                    }
                }
                h2 { "Attempts" }
                @if detail.attempt_history.is_empty() { p { "No attempt yet." } } @else {
                    div.scroll { table {
                        thead { tr { th { "#" } th { "Time" } th { "Destination" } th { "Status" } th { "Latency" } th { "Error" } } }
                        tbody {
                            @for a in &detail.attempt_history {
                                tr {
                                    td { (a.attempt) }
                                    td { (time(a.started_at)) }
                                    td { code { (destination) } }
                                    td { (a.status.map(|s| s.to_string()).unwrap_or_else(|| "–".into())) }
                                    td { (a.duration_ms) " ms" }
                                    td { (a.error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    } }
                }
                h2 { "Headers" }
                div.scroll { table.headers {
                    tbody {
                        @for (name, value) in headers {
                            tr { th { code { (name) } } td { code { (value) } } }
                        }
                    }
                } }
                h2 { "Body" }
                p.hint { (detail.body_bytes) " bytes"
                    @if detail.body.len() > BODY_SHOWN { ", the first " (BODY_SHOWN) " shown" } }
                pre.body { (String::from_utf8_lossy(shown)) }
            },
        ),
    )
}

pub fn dead_letters(
    config: &Config,
    route: Option<&str>,
    items: &[DeliverySummary],
    total: i64,
    replayed: Option<i64>,
    session: &Session,
) -> Page {
    page(
        StatusCode::OK,
        layout(
            "Dead letters",
            Some(session),
            html! {
                @if let Some(n) = replayed { p.notice role="status" { "Replayed " (n) " dead letter(s): they are pending again." } }
                form.filters method="get" action="/ui/dead-letters" {
                    label for="route" { "Route" }
                    select #route name="route" {
                        option value="" selected[route.is_none()] { "all routes" }
                        @for r in config.routes.iter().filter(|r| r.spools()) {
                            option value=(r.name) selected[route == Some(r.name.as_str())] { (r.name) }
                        }
                    }
                    button type="submit" { "Filter" }
                }
                @if items.is_empty() { p { "No dead letters." } } @else {
                    form method="post" action="/ui/dead-letters/replay" {
                        (csrf(session))
                        @if let Some(r) = route { input type="hidden" name="route" value=(r); }
                        div.scroll { table {
                            thead { tr { th { "Replay" } th { "Received" } th { "Route" } th { "Destination" } th { "Event" } th { "Attempts" } th { "Last status" } th { "Last error" } } }
                            tbody {
                                @for d in items {
                                    tr {
                                        td { input type="checkbox" name="id" value=(d.id) aria-label=(format!("select {}", d.id)); }
                                        td { (time(d.received_at)) }
                                        td { (d.route) }
                                        td { (d.destination) }
                                        td { a href=(format!("/ui/events/{}", d.id)) { code { (d.id) } } }
                                        td { (d.attempts) }
                                        td { (d.last_status.map(|s| s.to_string()).unwrap_or_else(|| "–".into())) }
                                        td { (d.last_error.as_deref().unwrap_or("")) }
                                    }
                                }
                            }
                        } }
                        @if (items.len() as i64) < total { p.hint { "Showing the newest " (items.len()) " of " (total) "." } }
                        div.actions {
                            button type="submit" name="action" value="selected" { "Replay selected" }
                            button type="submit" name="action" value="all" { "Replay all matching (" (total) ")" }
                        }
                    }
                }
            },
        ),
    )
}

pub fn confirm_replay_all(route: Option<&str>, count: i64, session: &Session) -> Page {
    let which = match route {
        Some(r) => format!("route {r}"),
        None => "every route".to_string(),
    };
    page(
        StatusCode::OK,
        layout(
            "Replay all matching?",
            Some(session),
            html! {
                p { "This moves " strong #count { (count) } " dead letter(s) of " (which) " back to pending; each is delivered again." }
                form method="post" action="/ui/dead-letters/replay" {
                    (csrf(session))
                    input type="hidden" name="action" value="all";
                    input type="hidden" name="confirm" value="yes";
                    @if let Some(r) = route { input type="hidden" name="route" value=(r); }
                    div.actions {
                        button type="submit" { "Yes, replay " (count) " dead letter(s)" }
                        a href=(match route { Some(r) => format!("/ui/dead-letters?route={r}"), None => "/ui/dead-letters".to_string() }) { "Cancel" }
                    }
                }
            },
        ),
    )
}

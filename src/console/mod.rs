//! The operator console: server-rendered HTML on the admin listener under
//! `/ui/`, for the on-call question "what happened to this event?".
//!
//! - `GET /ui/login`, `POST /ui/login` (one field, `token`: the
//!   `admin.token`), `POST /ui/logout`;
//! - `GET /ui/`: every route with its last hour;
//! - `GET /ui/routes/{name}?state=&event=`: its recent events, the last
//!   rejected requests, and **Send test event** (`POST /ui/routes/{name}/test`),
//!   pre-filled with the route's sample with fresh IDs (`sample.rs`);
//! - `GET /ui/events/{id}`: attempts, masked headers, the body, and
//!   **Replay** (`POST /ui/events/{id}/replay`) for a dead letter;
//! - `GET /ui/dead-letters?route=`: **Replay selected** and **Replay all
//!   matching** (`POST /ui/dead-letters/replay`, the latter confirmed on a
//!   second page).
//!
//! It is served only while `admin.token` is set (otherwise `/ui/` is 404
//! with a message saying so). Every page but the login page needs a
//! session ([`session`]); every `POST` but the login carries the session's
//! CSRF token. Every answer forbids framing, caching and referrers, and
//! its Content-Security-Policy allows nothing but this origin's stylesheet
//! and forms: there is no script at all. Pages never show a secret value:
//! headers that carry signatures or credentials are masked, the upstream's
//! credentials and query string are not shown, and the admin token is
//! never echoed. The spool is read and changed only through [`Spool`], so
//! the console works with any spool store.

mod mask;
mod pages;
mod sample;
mod session;

use secrecy::SecretString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use maud::Markup;

use crate::config::{Config, Route};
use crate::reload::Live;
use crate::spool::{DeliveryState, ListFilter, Replay, Spool};
use crate::telemetry::Metrics;
pub use mask::{destination, mask_headers, MASKED};
use session::{Session, Sessions};

/// The largest form the console reads (a test event's body included).
const MAX_FORM_BYTES: usize = 256 * 1024;
/// Rows on a list page.
const LIST_LIMIT: usize = 100;
/// Rows on a route page: each is read whole (with its body) when the route
/// has an event type to show.
const ROUTE_EVENTS: usize = 50;
/// How long a test event may take through the ingress.
const TEST_EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// The console's state. Cheap to clone.
#[derive(Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

struct Inner {
    live: Arc<Live>,
    spool: Option<Spool>,
    metrics: Metrics,
    /// Where test events are sent: the bound ingress address (loopback
    /// when it listens on every address).
    ingress: SocketAddr,
    /// The ingress speaks TLS: test events are not sent (see `test_event`).
    ingress_tls: bool,
    /// The admin listener speaks TLS, so cookies get `Secure`. It never
    /// does today (it serves plain HTTP), so this is false.
    secure_cookies: bool,
    sessions: Sessions,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A page to answer with.
type Page = Response<Full<Bytes>>;

impl Console {
    pub fn new(
        live: Arc<Live>,
        spool: Option<Spool>,
        ingress: SocketAddr,
        ingress_tls: bool,
    ) -> Console {
        let ingress = match ingress.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), ingress.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), ingress.port())
            }
            _ => ingress,
        };
        Console {
            inner: Arc::new(Inner {
                metrics: live.metrics().clone(),
                live,
                spool,
                ingress,
                ingress_tls,
                secure_cookies: false,
                sessions: Sessions::default(),
                client: Client::builder(TokioExecutor::new()).build_http(),
            }),
        }
    }

    /// Whether `path` is the console's.
    pub fn owns(path: &str) -> bool {
        path == "/ui" || path.starts_with("/ui/")
    }

    /// Answers one `/ui` request. Never fails: every error is a page.
    pub async fn handle<B>(&self, request: Request<B>) -> Page
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut page = self.route(request).await;
        secure(&mut page);
        page
    }

    async fn route<B>(&self, request: Request<B>) -> Page
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let token = self.inner.live.admin_token.load_full();
        let Some(token) = token.as_ref().as_ref() else {
            return pages::message(
                StatusCode::NOT_FOUND,
                "Console not enabled",
                "The console is served only when admin.token is set in the configuration.",
            );
        };
        let path = request.uri().path().to_string();
        let method = request.method().clone();
        if path == "/ui" {
            return redirect("/ui/");
        }
        match (&method, path.as_str()) {
            (&Method::GET, "/ui/style.css") => return stylesheet(),
            (&Method::GET, "/ui/login") => return pages::login(None),
            (&Method::POST, "/ui/login") => return self.login(request, token).await,
            _ => {}
        }
        let cookie = session_id(&request);
        let Some(session) = cookie
            .as_deref()
            .and_then(|id| self.inner.sessions.find(id, token))
        else {
            return redirect("/ui/login");
        };
        if method == Method::GET || method == Method::HEAD {
            return self.get(&path, request.uri().query(), &session).await;
        }
        if method != Method::POST {
            let mut page = pages::message(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "The console answers GET and POST.",
            );
            page.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
            return page;
        }
        let form = match read_form(request).await {
            Ok(form) => form,
            Err(page) => return page,
        };
        if !session.csrf_matches(&form.get("csrf").unwrap_or_default()) {
            tracing::info!(path, "console: form refused (missing or wrong CSRF token)");
            return pages::message(
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form is not from your current session. Go back, reload the page and try again.",
            );
        }
        if path == "/ui/logout" {
            if let Some(id) = &cookie {
                self.inner.sessions.close(id);
            }
            let mut page = redirect("/ui/login");
            set_cookie(&mut page, &self.session_cookie(String::new(), true));
            return page;
        }
        self.post(&path, &form, &session).await
    }

    /// `POST /ui/login`: the `token` field against `admin.token`, in
    /// constant time; a session on success.
    async fn login<B>(&self, request: Request<B>, token: &SecretString) -> Page
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let form = match read_form(request).await {
            Ok(form) => form,
            Err(page) => return page,
        };
        let presented = form.get("token").unwrap_or_default();
        if !session::token_matches(presented.as_bytes(), token) {
            tracing::info!("console: login refused (wrong token)");
            return pages::login(Some("That is not the admin token."));
        }
        tracing::info!("console: logged in");
        let id = self.inner.sessions.open(token);
        let mut page = redirect("/ui/");
        set_cookie(&mut page, &self.session_cookie(id, false));
        page
    }

    async fn get(&self, path: &str, query: Option<&str>, session: &Session) -> Page {
        let query = Form::parse(query.unwrap_or("").as_bytes());
        let config = self.inner.live.config().await;
        let segments: Vec<&str> = path.trim_start_matches("/ui/").split('/').collect();
        let result = match segments.as_slice() {
            [""] => self.overview(&config, session).await,
            ["dead-letters"] => self.dead_letters(&config, &query, session).await,
            ["routes", name] => match config.route(name) {
                Some(route) => self.route_page(&config, route, &query, session).await,
                None => Ok(not_found("No such route in the configuration.")),
            },
            ["events", id] => self.event_page(&config, id, &query, session).await,
            _ => Ok(not_found("There is no console page here.")),
        };
        result.unwrap_or_else(store_failed)
    }

    async fn post(&self, path: &str, form: &Form, session: &Session) -> Page {
        let config = self.inner.live.config().await;
        let segments: Vec<&str> = path.trim_start_matches("/ui/").split('/').collect();
        let result = match segments.as_slice() {
            ["events", id, "replay"] => self.replay_one(id).await,
            ["dead-letters", "replay"] => self.replay_dead(&config, form, session).await,
            ["routes", name, "test"] => match config.route(name) {
                Some(route) => Ok(self.test_event(route, form, session).await),
                None => Ok(not_found("No such route in the configuration.")),
            },
            _ => Ok(not_found("There is no console action here.")),
        };
        result.unwrap_or_else(store_failed)
    }

    fn session_cookie(&self, id: String, remove: bool) -> cookie::Cookie<'static> {
        let mut c = cookie::Cookie::build((session::COOKIE, id))
            .path("/ui")
            .http_only(true)
            .same_site(cookie::SameSite::Strict)
            .secure(self.inner.secure_cookies)
            .max_age(cookie::time::Duration::seconds(
                session::SESSION_LIFETIME.as_secs() as i64,
            ))
            .build();
        if remove {
            c.make_removal();
        }
        c
    }

    async fn overview(&self, config: &Config, session: &Session) -> Result<Page, StoreError> {
        let oldest = match &self.inner.spool {
            Some(spool) => spool.oldest_pending().await?,
            None => Vec::new(),
        };
        let now = crate::store::now_ms();
        let routes = config
            .routes
            .iter()
            .map(|route| {
                let activity = self.inner.metrics.activity().route(&route.name);
                let counts = self
                    .inner
                    .spool
                    .as_ref()
                    .filter(|_| route.spools())
                    .and_then(|s| s.route_counts(&route.name));
                pages::RouteOverview {
                    route,
                    minutes: activity.last_hour(),
                    last_request: activity.last_request(),
                    counts,
                    oldest_pending_age_ms: oldest
                        .iter()
                        .find(|(r, _)| *r == route.name)
                        .map(|(_, at)| (now - at).max(0)),
                }
            })
            .collect::<Vec<_>>();
        Ok(pages::overview(&routes, session))
    }

    async fn route_page(
        &self,
        config: &Config,
        route: &Route,
        query: &Form,
        session: &Session,
    ) -> Result<Page, StoreError> {
        let state = match query.get("state").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => match s.parse::<DeliveryState>() {
                Ok(state) => Some(state),
                Err(e) => return Ok(bad_request(&e.to_string())),
            },
        };
        let event_filter = query.get("event").filter(|e| !e.is_empty());
        let mut events = Vec::new();
        if let (Some(spool), true) = (&self.inner.spool, route.spools()) {
            let list = spool
                .list(ListFilter {
                    route: Some(route.name.clone()),
                    state,
                    limit: ROUTE_EVENTS,
                    ..ListFilter::default()
                })
                .await?;
            for summary in list {
                // The event type is read from each event as stored.
                let event_type = match &route.events.from {
                    None => None,
                    Some(from) => match spool.get(&summary.id).await? {
                        Some(detail) => from.event_type(&header_map(&detail.headers), &detail.body),
                        None => None,
                    },
                };
                if let Some(wanted) = &event_filter {
                    if event_type.as_deref() != Some(wanted.as_str()) {
                        continue;
                    }
                }
                events.push((summary, event_type));
            }
        }
        let activity = self.inner.metrics.activity().route(&route.name);
        let _ = config;
        // Fresh IDs on every rendering: see `sample.rs`.
        let test = match self.test_event_blocker(route) {
            Some(why) => Err(why),
            None => Ok(sample::for_route(route, std::time::SystemTime::now())),
        };
        Ok(pages::route(
            route,
            &events,
            state,
            event_filter.as_deref(),
            &activity.rejections(),
            test,
            session,
        ))
    }

    async fn event_page(
        &self,
        config: &Config,
        id: &str,
        query: &Form,
        session: &Session,
    ) -> Result<Page, StoreError> {
        let Some(spool) = &self.inner.spool else {
            return Ok(not_found("No async route: nothing is spooled."));
        };
        let Some(detail) = spool.get(id).await? else {
            return Ok(not_found(
                "No such event (delivered events are kept for store.retention).",
            ));
        };
        let route = config.route(&detail.summary.route);
        let masked = mask_headers(config, route, &detail.headers);
        let event_type = route
            .and_then(|r| r.events.from.as_ref())
            .and_then(|from| from.event_type(&header_map(&detail.headers), &detail.body));
        Ok(pages::event(
            &detail,
            route,
            event_type.as_deref(),
            &masked,
            query.get("replayed").is_some(),
            session,
        ))
    }

    async fn replay_one(&self, id: &str) -> Result<Page, StoreError> {
        let Some(spool) = &self.inner.spool else {
            return Ok(not_found("No async route: nothing is spooled."));
        };
        let moved = spool.replay(Replay::One(id.to_string())).await?;
        if moved.is_empty() {
            return Ok(pages::message(
                StatusCode::CONFLICT,
                "Not replayed",
                "Only dead letters can be replayed, and this event is not one (any more).",
            ));
        }
        tracing::info!(id, "console: dead letter replayed");
        Ok(redirect(&format!("/ui/events/{id}?replayed=1")))
    }

    async fn dead_letters(
        &self,
        config: &Config,
        query: &Form,
        session: &Session,
    ) -> Result<Page, StoreError> {
        let route = query.get("route").filter(|r| !r.is_empty());
        let (items, total) = match &self.inner.spool {
            None => (Vec::new(), 0),
            Some(spool) => {
                let items = spool
                    .list(ListFilter {
                        route: route.clone(),
                        state: Some(DeliveryState::Dead),
                        limit: LIST_LIMIT,
                        ..ListFilter::default()
                    })
                    .await?;
                (items, self.dead_count(config, route.as_deref()))
            }
        };
        let done = query.get("replayed").and_then(|n| n.parse::<i64>().ok());
        Ok(pages::dead_letters(
            config,
            route.as_deref(),
            &items,
            total,
            done,
            session,
        ))
    }

    /// Dead letters of `route` (or of every async route), as counted.
    fn dead_count(&self, config: &Config, route: Option<&str>) -> i64 {
        let Some(spool) = &self.inner.spool else {
            return 0;
        };
        config
            .routes
            .iter()
            .filter(|r| route.map_or(true, |name| r.name == name))
            .filter_map(|r| spool.route_counts(&r.name))
            .map(|c| c.dead)
            .sum()
    }

    async fn replay_dead(
        &self,
        config: &Config,
        form: &Form,
        session: &Session,
    ) -> Result<Page, StoreError> {
        let Some(spool) = &self.inner.spool else {
            return Ok(not_found("No async route: nothing is spooled."));
        };
        let route = form.get("route").filter(|r| !r.is_empty());
        let back = |n: i64| match &route {
            Some(r) => format!("/ui/dead-letters?route={r}&replayed={n}"),
            None => format!("/ui/dead-letters?replayed={n}"),
        };
        if let Some(r) = &route {
            if config.route(r).is_none() {
                return Ok(bad_request("No such route in the configuration."));
            }
        }
        match form.get("action").as_deref() {
            Some("selected") => {
                let ids = form.all("id");
                if ids.is_empty() {
                    return Ok(bad_request("Select at least one dead letter to replay."));
                }
                let mut n = 0;
                for id in ids {
                    n += spool
                        .replay(Replay::One(id))
                        .await?
                        .iter()
                        .map(|(_, n)| n)
                        .sum::<i64>();
                }
                tracing::info!(replayed = n, "console: selected dead letters replayed");
                Ok(redirect(&back(n)))
            }
            Some("all") => {
                if form.get("confirm").as_deref() != Some("yes") {
                    let count = self.dead_count(config, route.as_deref());
                    return Ok(pages::confirm_replay_all(route.as_deref(), count, session));
                }
                let mut n = 0;
                for r in config
                    .routes
                    .iter()
                    .filter(|r| r.spools())
                    .filter(|r| route.as_deref().map_or(true, |name| r.name == name))
                {
                    n += spool
                        .replay(Replay::Route(r.name.clone()))
                        .await?
                        .iter()
                        .map(|(_, n)| n)
                        .sum::<i64>();
                }
                tracing::info!(replayed = n, "console: all matching dead letters replayed");
                Ok(redirect(&back(n)))
            }
            _ => Ok(bad_request(
                "Choose Replay selected or Replay all matching.",
            )),
        }
    }

    /// Why "Send test event" cannot work for `route`, if it cannot.
    fn test_event_blocker(&self, route: &Route) -> Option<String> {
        match crate::sign::signable(route) {
            // Nothing to sign: the test event is sent as it is.
            Ok(()) | Err(crate::sign::SignError::NotVerified(_)) => {}
            Err(why) => return Some(why.to_string()),
        }
        if self.inner.ingress_tls {
            return Some("the ingress listener uses TLS, which the console does not send test events over; use hookgate sign and curl".to_string());
        }
        None
    }

    /// Posts a signed test event to the ingress and reads its answer.
    async fn send_test_event(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<pages::TestAnswer, String> {
        let answer = tokio::time::timeout(TEST_EVENT_TIMEOUT, async {
            let response = self
                .inner
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, 64 * 1024)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, String>((parts, body))
        })
        .await;
        match answer {
            Ok(Ok((parts, body))) => Ok(pages::TestAnswer {
                status: parts.status,
                delivery_id: parts
                    .headers
                    .get("hookgate-delivery-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
            Ok(Err(e)) => Err(format!("the ingress did not answer: {e}")),
            Err(_) => Err(format!(
                "the ingress did not answer within {}s",
                TEST_EVENT_TIMEOUT.as_secs()
            )),
        }
    }

    async fn test_event(&self, route: &Route, form: &Form, session: &Session) -> Page {
        if let Some(why) = self.test_event_blocker(route) {
            return pages::message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Cannot send a test event",
                &why,
            );
        }
        let body = form.get("body").unwrap_or_default();
        let event = form.get("event").filter(|e| !e.is_empty());
        let cannot =
            |title: &str, why: &str| pages::message(StatusCode::UNPROCESSABLE_ENTITY, title, why);
        let extra = match sample::parse_headers(&form.get("headers").unwrap_or_default()) {
            Ok(extra) => extra,
            Err(why) => return cannot("Cannot send", &why),
        };
        let signed = match crate::sign::sign_with(
            route,
            body.as_bytes(),
            event.as_deref(),
            &extra,
            std::time::SystemTime::now(),
        ) {
            Ok(signed) => signed,
            Err(crate::sign::SignError::NotVerified(_)) => {
                unsigned(route, event.as_deref(), &extra)
            }
            Err(e) => return cannot("Cannot sign", &e.to_string()),
        };
        let Some(request) = self.test_request(route, &signed, &body) else {
            return cannot(
                "Cannot send",
                "The signed headers do not form a valid request.",
            );
        };
        let answer = self.send_test_event(request).await;
        let header_names: Vec<String> = signed.headers.iter().map(|(n, _)| n.to_string()).collect();
        pages::test_result(
            route,
            &body,
            &header_names,
            signed.note.as_deref(),
            answer,
            session,
        )
    }

    /// The test event as a request to the ingress: JSON unless its headers
    /// say otherwise (Twilio's and Mandrill's forms).
    fn test_request(
        &self,
        route: &Route,
        signed: &crate::sign::Signed,
        body: &str,
    ) -> Option<Request<Full<Bytes>>> {
        let url = format!("http://{}{}", self.inner.ingress, route.path);
        let mut request = Request::post(&url);
        if !signed
            .headers
            .iter()
            .any(|(n, _)| n == header::CONTENT_TYPE)
        {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in &signed.headers {
            request = request.header(name, value);
        }
        request.body(Full::new(Bytes::from(body.to_string()))).ok()
    }
}

/// The headers of a test event for a route that verifies nothing: the
/// event header when the route reads one, no signature.
fn unsigned(
    route: &Route,
    event: Option<&str>,
    extra: &[(http::HeaderName, HeaderValue)],
) -> crate::sign::Signed {
    let mut headers: Vec<_> = extra
        .iter()
        .map(|(n, v)| (n.clone(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    if let (Some(h), Some(event)) = (route.events.from.as_ref().and_then(|f| f.header()), event) {
        if !headers.iter().any(|(n, _)| n == h) {
            headers.push((h.clone(), event.to_string()));
        }
    }
    crate::sign::Signed {
        headers,
        note: Some(format!(
            "route {} does not verify requests: the test event is sent unsigned",
            route.name
        )),
    }
}

type StoreError = crate::store::StoreError;

/// A form or query string: its fields in order (a name may repeat).
pub(crate) struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    fn parse(bytes: &[u8]) -> Form {
        Form {
            pairs: form_urlencoded::parse(bytes).into_owned().collect(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Reads an `application/x-www-form-urlencoded` body, up to [`MAX_FORM_BYTES`].
async fn read_form<B>(request: Request<B>) -> Result<Form, Page>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body = Limited::new(request.into_body(), MAX_FORM_BYTES);
    match body.collect().await {
        Ok(b) => Ok(Form::parse(&b.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(pages::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form too large",
            &format!(
                "The console reads forms up to {} KiB.",
                MAX_FORM_BYTES / 1024
            ),
        )),
        Err(_) => Err(pages::message(
            StatusCode::BAD_REQUEST,
            "Form not received",
            "The form could not be read; try again.",
        )),
    }
}

/// The session cookie's value, if the request has one.
fn session_id<B>(request: &Request<B>) -> Option<String> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == session::COOKIE)
        .map(|c| c.value().to_string())
}

fn set_cookie(page: &mut Page, cookie: &cookie::Cookie<'_>) {
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        page.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Headers every console answer carries: no script, no framing, no
/// caching, no referrer.
fn secure(page: &mut Page) {
    let h = page.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn redirect(to: &str) -> Page {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn stylesheet() -> Page {
    let mut r = Response::new(Full::new(Bytes::from_static(
        include_str!("style.css").as_bytes(),
    )));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

fn not_found(text: &str) -> Page {
    pages::message(StatusCode::NOT_FOUND, "Not found", text)
}

fn bad_request(text: &str) -> Page {
    pages::message(StatusCode::BAD_REQUEST, "Bad request", text)
}

fn store_failed(error: StoreError) -> Page {
    tracing::error!(%error, "console: the store failed");
    pages::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Store unavailable",
        "The spool store did not answer; the log has the reason. Try again shortly.",
    )
}

fn html(status: StatusCode, markup: Markup) -> Page {
    let mut r = Response::new(Full::new(Bytes::from(markup.into_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

fn header_map(headers: &[(String, String)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(k, v);
        }
    }
    map
}

#[cfg(test)]
mod tests;

//! The operator console over HTTP, against a real gateway on port 0:
//! sessions, CSRF, security headers, and that no secret value reaches a
//! page. (`tests/console_browser.rs` drives it in Chromium.)

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use support::*;

const ADMIN_TOKEN: &str = "console-admin-token-7Qx";
const TRUTAC_SECRET: &str = "tt-secret-Hq4vR";
const GITLAB_SECRET: &str = "gl-secret-Zp8nB";
const UPSTREAM_CREDENTIAL: &str = "up-cred-Mm3kD";
const UPSTREAM_URL_TOKEN: &str = "url-token-Ww5sT";

/// Every secret value the gateway below is configured with.
const SECRETS: [&str; 5] = [
    ADMIN_TOKEN,
    TRUTAC_SECRET,
    GITLAB_SECRET,
    UPSTREAM_CREDENTIAL,
    UPSTREAM_URL_TOKEN,
];

/// A gateway with the console on: an async TruTac route (dead-lettering
/// after one attempt when the upstream fails), a sync GitLab route (a
/// shared secret, which the console cannot sign), and an async route whose
/// upstream is unreachable (its errors are shown).
fn config(upstream: &str, admin: &str) -> String {
    format!(
        r#"admin: {{ listen: "127.0.0.1:0"{admin} }}
routes:
  - name: trutac
    path: /hooks/trutac
    verify: {{ scheme: trutac, secrets: ["{TRUTAC_SECRET}"] }}
    ack: async
    dedup: off
    upstream:
      url: "{upstream}/in?key={UPSTREAM_URL_TOKEN}"
      headers: {{ X-Upstream-Auth: "{UPSTREAM_CREDENTIAL}" }}
      timeout: 2s
      retry: {{ max_attempts: 1 }}
  - name: gitlab
    path: /hooks/gitlab
    verify: {{ scheme: gitlab, secrets: ["{GITLAB_SECRET}"] }}
    ack: sync
    upstream: {{ url: "{upstream}/gl" }}
  - name: down
    path: /hooks/down
    verify: {{ scheme: trutac, secrets: ["{TRUTAC_SECRET}"] }}
    ack: async
    dedup: off
    upstream:
      url: "http://127.0.0.1:1/down?key={UPSTREAM_URL_TOKEN}"
      retry: {{ max_attempts: 1 }}
"#
    )
}

fn with_token() -> String {
    format!(", token: \"{ADMIN_TOKEN}\"")
}

/// A logged-in operator: the session cookie and the page's CSRF token.
struct Operator {
    base: String,
    cookie: String,
    csrf: String,
}

async fn request(method: Method, url: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
    let mut builder = Request::builder().method(method).uri(url);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    let body = if form.is_empty() {
        Bytes::new()
    } else {
        builder = builder.header("content-type", "application/x-www-form-urlencoded");
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            s.append_pair(k, v);
        }
        Bytes::from(s.finish())
    };
    send(builder.body(Full::new(body)).unwrap()).await
}

fn text(answer: &Answer) -> String {
    String::from_utf8(answer.body.to_vec()).unwrap()
}

fn location(answer: &Answer) -> &str {
    answer.headers["location"].to_str().unwrap()
}

impl Operator {
    async fn login(base: &str) -> Operator {
        let answer = request(
            Method::POST,
            &format!("{base}/ui/login"),
            None,
            &[("token", ADMIN_TOKEN)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", text(&answer));
        assert_eq!(location(&answer), "/ui/");
        let set = answer.headers["set-cookie"].to_str().unwrap().to_string();
        let cookie = set.split(';').next().unwrap().to_string();
        let mut operator = Operator {
            base: base.to_string(),
            cookie,
            csrf: String::new(),
        };
        let page = operator.get("/ui/").await;
        assert_eq!(page.status, StatusCode::OK);
        operator.csrf = csrf_of(&text(&page));
        operator
    }

    async fn get(&self, path: &str) -> Answer {
        request(
            Method::GET,
            &format!("{}{path}", self.base),
            Some(&self.cookie),
            &[],
        )
        .await
    }

    /// POSTs a form with this session's CSRF token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let mut fields = vec![("csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        request(
            Method::POST,
            &format!("{}{path}", self.base),
            Some(&self.cookie),
            &fields,
        )
        .await
    }
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 64].to_string()
}

fn assert_secured(answer: &Answer, what: &str) {
    let h = &answer.headers;
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("script-src"),
        "{what}: {csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY", "{what}");
    assert_eq!(h["referrer-policy"], "no-referrer", "{what}");
    assert_eq!(h["cache-control"], "no-store", "{what}");
}

/// A TruTac-signed event, sent to the ingress as the sender would.
async fn send_event(gateway: &Gateway, body: &str) -> Answer {
    post(
        &gateway.url("/hooks/trutac"),
        &[
            (
                "tt-hook-signature",
                &trutac_signature(TRUTAC_SECRET, body.as_bytes()),
            ),
            ("tt-hook-event", "booking.created"),
        ],
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn without_an_admin_token_the_console_is_not_served() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream.url(""), "")).await;
    for path in ["/ui/", "/ui/login", "/ui/dead-letters", "/ui"] {
        let answer = get(&gateway.admin_url(path)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            text(&answer).contains("only when admin.token is set"),
            "{path}"
        );
    }
    let answer = request(
        Method::POST,
        &gateway.admin_url("/ui/login"),
        None,
        &[("token", "x")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn every_page_and_action_needs_a_session_and_a_wrong_token_is_refused() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream.url(""), &with_token())).await;
    let base = gateway.admin_url("");
    for path in [
        "/ui/",
        "/ui/routes/trutac",
        "/ui/events/0190aaaa-0000-7000-8000-000000000000",
        "/ui/dead-letters",
        "/ui/dead-letters?route=trutac",
        "/ui/nowhere",
    ] {
        for cookie in [None, Some("hookgate_session=forged")] {
            let answer = request(Method::GET, &format!("{base}{path}"), cookie, &[]).await;
            assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path} {cookie:?}");
            assert_eq!(location(&answer), "/ui/login", "{path}");
            assert_secured(&answer, path);
        }
    }
    for path in [
        "/ui/logout",
        "/ui/events/x/replay",
        "/ui/dead-letters/replay",
        "/ui/routes/trutac/test",
    ] {
        let answer = request(
            Method::POST,
            &format!("{base}{path}"),
            None,
            &[("csrf", "x")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&answer), "/ui/login", "{path}");
    }

    let login = get(&format!("{base}/ui/login")).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(text(&login).contains(r#"name="token""#));
    assert_secured(&login, "login");
    for wrong in [
        "",
        "wrong",
        &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1],
        &format!("{ADMIN_TOKEN}x"),
    ] {
        let answer = request(
            Method::POST,
            &format!("{base}/ui/login"),
            None,
            &[("token", wrong)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert!(answer.headers.get("set-cookie").is_none());
        assert!(text(&answer).contains("not the admin token"));
    }
    // The bearer token of the admin API is not a console session.
    let answer = send(
        Request::get(format!("{base}/ui/"))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);

    let answer = request(
        Method::POST,
        &format!("{base}/ui/login"),
        None,
        &[("token", ADMIN_TOKEN)],
    )
    .await;
    let cookie = answer.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("hookgate_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "the admin listener is plain HTTP: {cookie}"
    );

    // Logging out ends the session on the server, not only in the browser.
    let operator = Operator::login(&base).await;
    let out = operator.post("/ui/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(out.headers["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = operator.get("/ui/").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_form_without_the_sessions_csrf_token_is_refused() {
    let upstream = Upstream::with(Duration::ZERO, |_| {
        json_response(StatusCode::INTERNAL_SERVER_ERROR, "{}")
    })
    .await;
    let gateway = Gateway::start(&config(&upstream.url(""), &with_token())).await;
    let operator = Operator::login(&gateway.admin_url("")).await;
    let other = Operator::login(&gateway.admin_url("")).await;
    assert_ne!(operator.csrf, other.csrf, "one CSRF token per session");

    // A dead letter to act on.
    let id = send_event(&gateway, r#"{"n":1}"#).await.headers["hookgate-delivery-id"]
        .to_str()
        .unwrap()
        .to_string();
    wait_until("the event is dead", Duration::from_secs(20), || async {
        text(&operator.get(&format!("/ui/events/{id}")).await).contains(">dead<")
    })
    .await;

    let actions: [(String, Vec<(&str, &str)>); 4] = [
        (format!("/ui/events/{id}/replay"), vec![]),
        (
            "/ui/dead-letters/replay".into(),
            vec![("action", "selected"), ("id", &id)],
        ),
        ("/ui/routes/trutac/test".into(), vec![("body", "{}")]),
        ("/ui/logout".into(), vec![]),
    ];
    for (path, form) in &actions {
        for csrf in [
            None,
            Some(String::new()),
            Some("0".repeat(64)),
            Some(other.csrf.clone()),
        ] {
            let mut fields = form.clone();
            if let Some(csrf) = &csrf {
                fields.push(("csrf", csrf));
            }
            let url = format!("{}{path}", operator.base);
            let answer = request(Method::POST, &url, Some(&operator.cookie), &fields).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{path} with {csrf:?}");
            assert_secured(&answer, path);
        }
    }
    // Nothing happened: still dead, still logged in.
    let page = text(&operator.get(&format!("/ui/events/{id}")).await);
    assert!(page.contains(">dead<"), "{page}");

    // With the token, the replay goes through.
    let answer = operator.post(&format!("/ui/events/{id}/replay"), &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&answer), format!("/ui/events/{id}?replayed=1"));
}

#[tokio::test]
async fn no_page_shows_a_secret_value() {
    let upstream = Upstream::with(Duration::ZERO, |_| {
        json_response(StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"down"}"#)
    })
    .await;
    let gateway = Gateway::start(&config(&upstream.url(""), &with_token())).await;
    let operator = Operator::login(&gateway.admin_url("")).await;

    // A rejected request whose headers carry secret-looking values.
    let rejected = post(
        &gateway.url("/hooks/trutac"),
        &[("tt-hook-signature", "sha1=00"), ("x-leak", TRUTAC_SECRET)],
        "{}",
    )
    .await;
    assert_eq!(rejected.status, StatusCode::UNAUTHORIZED);
    let gitlab = post(
        &gateway.url("/hooks/gitlab"),
        &[("x-gitlab-token", "wrong-token-value")],
        "{}",
    )
    .await;
    assert_eq!(gitlab.status, StatusCode::UNAUTHORIZED);

    // An event from the sender (it becomes a dead letter) and a test event
    // sent from the console.
    let body = r#"{"booking":"b-1"}"#;
    let signature = trutac_signature(TRUTAC_SECRET, body.as_bytes());
    let unreachable = post(
        &gateway.url("/hooks/down"),
        &[("tt-hook-signature", &signature)],
        body.to_string(),
    )
    .await;
    let down_id = unreachable.headers["hookgate-delivery-id"]
        .to_str()
        .unwrap()
        .to_string();
    let sent = send_event(&gateway, body).await;
    assert_eq!(sent.status, StatusCode::OK);
    let id = sent.headers["hookgate-delivery-id"]
        .to_str()
        .unwrap()
        .to_string();
    let test = operator
        .post(
            "/ui/routes/trutac/test",
            &[("body", r#"{"test":true}"#), ("event", "booking.created")],
        )
        .await;
    assert_eq!(test.status, StatusCode::OK);
    let test_page = text(&test);
    assert!(
        test_page.contains(r#"<strong id="status">200</strong>"#),
        "{test_page}"
    );
    let test_id = {
        let at = test_page.find("/ui/events/").expect("a link to the event") + 11;
        test_page[at..at + 36].to_string()
    };
    wait_until(
        "the three events are dead letters",
        Duration::from_secs(20),
        || async {
            let page = text(&operator.get("/ui/dead-letters").await);
            page.contains(&id) && page.contains(&test_id) && page.contains(&down_id)
        },
    )
    .await;

    let mut pages = vec![("test result".to_string(), test)];
    for path in [
        "/ui/".to_string(),
        "/ui/login".into(),
        "/ui/routes/trutac".into(),
        "/ui/routes/trutac?state=dead&event=booking.created".into(),
        "/ui/routes/gitlab".into(),
        format!("/ui/events/{id}"),
        format!("/ui/events/{test_id}"),
        format!("/ui/events/{down_id}"),
        "/ui/routes/down".into(),
        "/ui/dead-letters".into(),
        "/ui/dead-letters?route=trutac".into(),
    ] {
        pages.push((path.clone(), operator.get(&path).await));
    }
    pages.push((
        "confirm".into(),
        operator
            .post(
                "/ui/dead-letters/replay",
                &[("action", "all"), ("route", "trutac")],
            )
            .await,
    ));
    pages.push((
        "cannot sign".into(),
        operator
            .post("/ui/routes/gitlab/test", &[("body", "{}")])
            .await,
    ));
    for (what, answer) in &pages {
        assert!(
            answer.status.is_success() || answer.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            answer.status
        );
        assert_secured(answer, what);
        let page = text(answer);
        for secret in SECRETS
            .iter()
            .chain([&signature.as_str(), &"wrong-token-value"])
        {
            assert!(!page.contains(secret), "{what} shows {secret}:\n{page}");
        }
    }
    let page = |what: &str| text(&pages.iter().find(|(w, _)| w == what).unwrap().1);

    // What the pages do show.
    let overview = page("/ui/");
    assert!(
        overview.contains(r#"href="/ui/routes/trutac""#),
        "{overview}"
    );
    assert!(overview.contains("<svg"), "the chart");
    assert!(
        overview.contains("malformed_signature</code> 1"),
        "the rejection, by reason: {overview}"
    );
    assert!(overview.contains("Dead letters"));
    assert!(
        overview.contains(&format!("http://{}/in?…", upstream.addr)),
        "{overview}"
    );
    let test_event = page(&format!("/ui/events/{test_id}"));
    assert!(
        test_event.contains("tt-hook-event"),
        "the test event's type is sent: {test_event}"
    );
    let event = page(&format!("/ui/events/{id}"));
    assert!(
        event.contains("tt-hook-signature"),
        "header names are shown"
    );
    assert!(event.contains(hookgate::console::MASKED));
    assert!(event.contains("booking.created"), "the event type");
    assert!(
        event.contains("&quot;booking&quot;"),
        "the body, escaped: {event}"
    );
    assert!(event.contains(">Replay</button>"));
    assert!(event.contains("500"), "the attempt's status");
    let down = page(&format!("/ui/events/{down_id}"));
    assert!(
        down.contains("upstream unreachable"),
        "the attempt's error: {down}"
    );
    assert!(down.contains("http://127.0.0.1:1/down?…"), "{down}");
    let route = page("/ui/routes/trutac");
    assert!(
        route.contains("malformed_signature") && route.contains("x-leak"),
        "the rejection, by header name: {route}"
    );
    assert!(route.contains("127.0.0.1"), "the sender's address");
    assert!(route.contains("Send test event"));
    let confirm = page("confirm");
    assert!(
        confirm.contains(r#"<strong id="count">2</strong>"#),
        "{confirm}"
    );
    assert!(page("cannot sign").contains("shared secret"));
    assert!(
        page("/ui/routes/gitlab").contains("Not available: route gitlab checks a shared secret")
    );
}

#[tokio::test]
async fn replay_selected_and_replay_all_matching_after_a_confirmation() {
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let failing = fail.clone();
    let upstream = Upstream::with(Duration::ZERO, move |_| {
        if failing.load(std::sync::atomic::Ordering::SeqCst) {
            json_response(StatusCode::INTERNAL_SERVER_ERROR, "{}")
        } else {
            json_response(StatusCode::OK, "{}")
        }
    })
    .await;
    let gateway = Gateway::start(&config(&upstream.url(""), &with_token())).await;
    let operator = Operator::login(&gateway.admin_url("")).await;
    for n in 0..4 {
        assert_eq!(
            send_event(&gateway, &format!(r#"{{"n":{n}}}"#))
                .await
                .status,
            StatusCode::OK
        );
    }
    wait_until("four dead letters", Duration::from_secs(20), || async {
        text(&operator.get("/ui/dead-letters?route=trutac").await)
            .contains("Replay all matching (4)")
    })
    .await;
    let dead = upstream.delivery_ids();
    assert_eq!(dead.len(), 4);
    fail.store(false, std::sync::atomic::Ordering::SeqCst);

    // Two ticked.
    let selected = operator
        .post(
            "/ui/dead-letters/replay",
            &[
                ("action", "selected"),
                ("route", "trutac"),
                ("id", &dead[0]),
                ("id", &dead[2]),
            ],
        )
        .await;
    assert_eq!(selected.status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&selected),
        "/ui/dead-letters?route=trutac&replayed=2"
    );
    eventually("the two are delivered", || upstream.received().len() == 6).await;
    let page = text(&operator.get(location(&selected)).await);
    assert!(page.contains("Replayed 2 dead letter(s)"), "{page}");
    assert!(
        !page.contains(&dead[0]) && page.contains(&dead[1]),
        "{page}"
    );

    // All the others, after a confirmation that replays nothing.
    let confirm = operator
        .post("/ui/dead-letters/replay", &[("action", "all")])
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(text(&confirm).contains(r#"<strong id="count">2</strong>"#));
    assert_eq!(upstream.received().len(), 6, "asking replays nothing");
    let done = operator
        .post(
            "/ui/dead-letters/replay",
            &[("action", "all"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&done), "/ui/dead-letters?replayed=2");
    eventually("all are delivered", || upstream.received().len() == 8).await;

    let none = operator
        .post("/ui/dead-letters/replay", &[("action", "selected")])
        .await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    let unknown = operator
        .post(
            "/ui/dead-letters/replay",
            &[("action", "all"), ("route", "nope")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    let bad = operator.get("/ui/routes/trutac?state=lost").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(text(&bad).contains("not a delivery state"));
}

#[tokio::test]
async fn a_token_change_on_reload_ends_every_session() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookgate.yaml");
    let write = |token: &str| {
        let yaml = config(&upstream.url(""), &format!(", token: \"{token}\"")).replace(
            "admin: { listen: \"127.0.0.1:0\"",
            &format!(
                "listen: \"127.0.0.1:0\"\ndata_dir: \"{}\"\nadmin: {{ listen: \"127.0.0.1:0\"",
                dir.path().display()
            ),
        );
        std::fs::write(&file, yaml).unwrap();
    };
    write(ADMIN_TOKEN);
    let gateway = Gateway::start_file(&file, &[]).await;
    let operator = Operator::login(&gateway.admin_url("")).await;
    assert_eq!(operator.get("/ui/").await.status, StatusCode::OK);

    write("the-next-admin-token");
    let reload = send(
        Request::post(gateway.admin_url("/admin/reload"))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(reload.status, StatusCode::OK, "{:?}", reload.body);
    let answer = operator.get("/ui/").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&answer), "/ui/login");
}

#[tokio::test]
async fn without_async_routes_the_pages_say_there_is_nothing_spooled() {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&format!(
        r#"admin: {{ listen: "127.0.0.1:0"{} }}
routes:
  - name: gitlab
    path: /hooks/gitlab
    verify: {{ scheme: gitlab, secrets: ["{GITLAB_SECRET}"] }}
    ack: sync
    upstream: {{ url: "{}" }}
  - name: open
    path: /hooks/open
    verify: {{ scheme: none }}
    ack: sync
    upstream: {{ url: "{}" }}
"#,
        with_token(),
        upstream.url("/gl"),
        upstream.url("/open"),
    ))
    .await;
    let operator = Operator::login(&gateway.admin_url("")).await;
    for (path, status, says) in [
        ("/ui/", StatusCode::OK, "gitlab"),
        ("/ui/routes/gitlab", StatusCode::OK, "nothing is stored"),
        ("/ui/dead-letters", StatusCode::OK, "No dead letters."),
        (
            "/ui/events/anything",
            StatusCode::NOT_FOUND,
            "nothing is spooled",
        ),
        ("/ui/routes/nope", StatusCode::NOT_FOUND, "No such route"),
    ] {
        let answer = operator.get(path).await;
        assert_eq!(answer.status, status, "{path}");
        assert!(text(&answer).contains(says), "{path}: {}", text(&answer));
    }
    let answer = operator
        .post(
            "/ui/dead-letters/replay",
            &[("action", "all"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    // A route that verifies nothing gets its test event unsigned.
    let sent = operator
        .post("/ui/routes/open/test", &[("body", r#"{"plain":1}"#)])
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    let page = text(&sent);
    assert!(page.contains("sent unsigned"), "{page}");
    assert!(
        page.contains(r#"<strong id="status">200</strong>"#),
        "{page}"
    );
    let received = upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(&received[0].body[..], br#"{"plain":1}"#);
    assert_eq!(received[0].uri.path(), "/open");
}

/// A fan-out route's page lists each event's dedup key (the sender's
/// value) and each destination's delivery; the event page names its
/// destination.
#[tokio::test]
async fn the_route_page_shows_dedup_keys_and_destinations() {
    let upstream = Upstream::start().await;
    let yaml = format!(
        r#"admin: {{ listen: "127.0.0.1:0", token: "{ADMIN_TOKEN}" }}
routes:
  - name: trutac
    path: /hooks/trutac
    verify: {{ scheme: trutac, secrets: ["{TRUTAC_SECRET}"] }}
    dedup: {{ key: "{{json:/booking}}" }}
    destinations:
      - {{ name: billing, url: "{}" }}
      - {{ name: audit, url: "{}" }}
"#,
        upstream.url("/billing"),
        upstream.url("/audit")
    );
    let gateway = Gateway::start(&yaml).await;
    let sent = send_event(&gateway, r#"{"booking":"bk-4711"}"#).await;
    assert_eq!(sent.status, StatusCode::OK);
    let event = sent.headers["hookgate-delivery-id"]
        .to_str()
        .unwrap()
        .to_string();
    eventually("both destinations delivered", || {
        upstream.received().len() == 2
    })
    .await;
    let operator = Operator::login(&gateway.admin_url("")).await;
    let page = text(&operator.get("/ui/routes/trutac").await);
    assert!(page.contains("bk-4711"), "{page}");
    assert!(
        page.contains("<td>billing</td>") && page.contains("<td>audit</td>"),
        "{page}"
    );
    let audit = text(&operator.get(&format!("/ui/events/{event}.audit")).await);
    assert!(audit.contains("audit: http://"), "{audit}");
    assert!(audit.contains("bk-4711"), "{audit}");
}

/// What "Send test event" is pre-filled with: (body, event type, headers),
/// unescaped.
fn test_form_of(page: &str) -> (String, Option<String>, String) {
    fn unescape(s: &str) -> String {
        s.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }
    fn textarea(page: &str, id: &str) -> String {
        let open = format!(r#"<textarea id="{id}""#);
        let at = page.find(&open).expect("the textarea");
        let start = at + page[at..].find('>').unwrap() + 1;
        let end = start + page[start..].find("</textarea>").unwrap();
        unescape(&page[start..end])
    }
    let event = page.find(r#"id="test-event""#).map(|at| {
        let rest = &page[at..];
        let start = rest.find(r#"value=""#).unwrap() + 7;
        let end = start + rest[start..].find('"').unwrap();
        unescape(&rest[start..end])
    });
    (
        textarea(page, "body"),
        event,
        textarea(page, "test-headers"),
    )
}

/// The event the test result page links to, if any.
fn event_link(page: &str) -> Option<String> {
    let at = page.find(r#"id="event-link" href="/ui/events/"#)? + 34;
    Some(page[at..at + 36].to_string())
}

#[tokio::test]
async fn test_events_are_the_senders_samples_with_fresh_ids() {
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let upstream = Upstream::start().await;
    let route = |name: &str, scheme: &str, secret: &str, extra: &str| {
        format!(
            "  - {{ name: {name}, path: /hooks/{name}, verify: {{ scheme: {scheme}, secrets: [\"{secret}\"] }}, ack: async, upstream: {{ url: \"{}\" }}{extra} }}\n",
            upstream.url(&format!("/{name}"))
        )
    };
    let gateway = Gateway::start(&format!(
        "admin: {{ listen: \"127.0.0.1:0\"{} }}\nroutes:\n{}{}{}{}{}",
        with_token(),
        route("github", "github", "gh-secret", ""),
        route("stripe", "stripe", "whsec_stripe-test", ""),
        route("shopify", "shopify", "shp-secret", ""),
        route("standard", "standard_webhooks", WHSEC, ""),
        route(
            "custom",
            "trutac",
            "tt-secret",
            ", events: { from: \"json:/meta/kind\" }"
        ),
    ))
    .await;
    let operator = Operator::login(&gateway.admin_url("")).await;
    let send = |name: &str, form: (String, Option<String>, String)| {
        let operator = &operator;
        let path = format!("/ui/routes/{name}/test");
        async move {
            let mut fields = vec![("body", form.0.as_str()), ("headers", form.2.as_str())];
            if let Some(event) = &form.1 {
                fields.push(("event", event.as_str()));
            }
            let answer = operator.post(&path, &fields).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", text(&answer));
            text(&answer)
        }
    };

    // GitHub's test delivery is its ping, which the preset acknowledges
    // without forwarding; the page says so.
    let page = text(&operator.get("/ui/routes/github").await);
    let (body, event, headers) = test_form_of(&page);
    assert!(
        body.contains(r#""zen":"#) && body.contains(r#""hook_id":"#),
        "{body}"
    );
    assert_eq!(event.as_deref(), Some("ping"));
    assert!(headers.starts_with("X-GitHub-Delivery: "), "{headers}");
    let result = send("github", (body.clone(), event, headers.clone())).await;
    assert!(
        result.contains(r#"<strong id="status">200</strong>"#),
        "{result}"
    );
    assert!(result.contains("acknowledged only"), "{result}");
    assert!(event_link(&result).is_none());
    // As a push it goes through.
    let result = send("github", (body, Some("push".into()), headers.clone())).await;
    assert!(event_link(&result).is_some(), "{result}");

    // Each route, twice from a fresh page: two new events; the same form
    // sent again is a duplicate.
    for name in ["stripe", "shopify", "standard", "custom"] {
        let first = test_form_of(&text(&operator.get(&format!("/ui/routes/{name}")).await));
        let second = test_form_of(&text(&operator.get(&format!("/ui/routes/{name}")).await));
        assert_ne!(first.0, second.0, "{name}: the same sample twice");
        let one = event_link(&send(name, first.clone()).await);
        let two = event_link(&send(name, second).await);
        assert!(one.is_some() && two.is_some() && one != two, "{name}");
        let again = send(name, first).await;
        assert!(event_link(&again).is_none(), "{name}: {again}");
        assert!(again.contains("duplicate"), "{name}: {again}");
    }
    wait_until(
        "the test events are delivered",
        Duration::from_secs(20),
        || async { upstream.received().len() == 9 },
    )
    .await;
    let received = upstream.received();
    let at = |path: &'static str| received.iter().filter(move |r| r.uri.path() == path);
    let github = at("/github").next().unwrap();
    assert_eq!(github.headers["x-github-event"], "push");
    assert_eq!(
        format!(
            "X-GitHub-Delivery: {}",
            github.headers["x-github-delivery"].to_str().unwrap()
        ),
        headers.lines().next().unwrap()
    );
    for stripe in at("/stripe") {
        let json: serde_json::Value = serde_json::from_slice(&stripe.body).unwrap();
        assert!(json["id"].as_str().unwrap().starts_with("evt_test_"));
        assert_eq!(json["type"], "payment_intent.succeeded");
    }
    for shopify in at("/shopify") {
        assert_eq!(shopify.headers["x-shopify-topic"], "orders/create");
        assert_eq!(shopify.headers["x-shopify-webhook-id"].len(), 36);
    }
    let ids: Vec<_> = at("/standard")
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert!(ids[0] != ids[1] && ids[0].to_str().unwrap().starts_with("msg_"));
    for custom in at("/custom") {
        let json: serde_json::Value = serde_json::from_slice(&custom.body).unwrap();
        assert_eq!(json["meta"]["kind"], "test.event", "{json}");
        assert_eq!(json["action"], "clocking.created");
    }
}

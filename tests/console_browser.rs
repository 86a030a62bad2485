//! The console in a real browser: Debian's Chromium, headless, driven
//! through chromedriver (WebDriver) by fantoccini. An operator logs in,
//! sees the route, sends a test event and finds it in the event list,
//! watches it become a dead letter (the upstream answers 500 and the route
//! allows one attempt), replays it from the event page and sees it
//! delivered.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`.ci/run`
//! installs them). Without them the test is skipped, except under `CI`,
//! where a missing browser fails it. `HOOKGATE_WRITE_SCREENSHOTS=1` also
//! writes `docs/console-overview.png` and `docs/console-event.png`.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use http::StatusCode;
use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ADMIN_TOKEN: &str = "browser-admin-token-4Fq";
const SECRET: &str = "browser-trutac-secret";

/// chromedriver as a child process, ended with the test.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver, or says why the test cannot run.
fn driver() -> Option<Driver> {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set and {missing:?} is missing: install chromium and chromium-driver (.ci/run does)"
        );
        eprintln!("skipped: {missing:?} not installed (apt-get install chromium chromium-driver)");
        return None;
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    Some(Driver { child, port })
}

async fn browser(driver: &Driver) -> Client {
    let url = format!("http://127.0.0.1:{}", driver.port);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1280,1000"
            ]
        }),
    );
    let mut last = None;
    // chromedriver needs a moment to listen.
    for _ in 0..100 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return client,
            Err(e) => last = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no WebDriver session: {last:?}");
}

/// Reloads the page until `check` holds on its source.
async fn reload_until(client: &Client, what: &str, check: impl Fn(&str) -> bool) {
    for _ in 0..200 {
        if check(&client.source().await.unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.refresh().await.unwrap();
    }
    panic!(
        "timed out waiting for: {what}\n{}",
        client.source().await.unwrap()
    );
}

/// Waits (without reloading) until `check` holds on the page's source: a
/// click that submits a form may return before the next page is loaded.
async fn wait_for(client: &Client, what: &str, check: impl Fn(&str) -> bool) {
    for _ in 0..200 {
        if check(&client.source().await.unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "timed out waiting for: {what}\n{}",
        client.source().await.unwrap()
    );
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sends_a_test_event_sees_it_dead_and_replays_it() {
    let Some(driver) = driver() else { return };
    let failing = Arc::new(AtomicBool::new(true));
    let fail = failing.clone();
    let upstream = Upstream::with(Duration::ZERO, move |_| {
        if fail.load(Ordering::SeqCst) {
            json_response(StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"down"}"#)
        } else {
            json_response(StatusCode::OK, r#"{"ok":true}"#)
        }
    })
    .await;
    let gateway = Gateway::start(&format!(
        r#"admin: {{ listen: "127.0.0.1:0", token: "{ADMIN_TOKEN}" }}
routes:
  - name: trutac
    path: /hooks/trutac
    verify: {{ scheme: trutac, secrets: ["{SECRET}"] }}
    ack: async
    dedup: off
    upstream:
      url: "{}"
      timeout: 2s
      retry: {{ max_attempts: 1 }}
  - name: orders
    path: /hooks/orders
    verify: {{ scheme: github, secrets: ["orders-secret"] }}
    ack: sync
    upstream: {{ url: "{}" }}
"#,
        upstream.url("/trutac"),
        upstream.url("/orders"),
    ))
    .await;
    // Some traffic for the overview's chart: a rejected request.
    let rejected = post(
        &gateway.url("/hooks/trutac"),
        &[("tt-hook-signature", "sha1=00")],
        "{}",
    )
    .await;
    assert_eq!(rejected.status, StatusCode::UNAUTHORIZED);

    let client = browser(&driver).await;
    // The scenario runs in its own task so that, pass or fail, the browser
    // session is closed (and Chromium exits) before the test ends.
    let outcome = tokio::spawn(scenario(client.clone(), gateway, upstream, failing)).await;
    let _ = client.close().await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }
}

async fn scenario(client: Client, gateway: Gateway, upstream: Upstream, failing: Arc<AtomicBool>) {
    let ui = |path: &str| gateway.admin_url(path);

    // Any page without a session leads to the login form.
    client.goto(&ui("/ui/")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/ui/login");
    let token = client
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap();
    token.send_keys("not the token").await.unwrap();
    client
        .find(Locator::Css("form[action='/ui/login'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the refusal", |p| {
        p.contains("not the admin token")
    })
    .await;
    let token = client
        .find(Locator::Css("input[name=token]"))
        .await
        .unwrap();
    token.send_keys(ADMIN_TOKEN).await.unwrap();
    client
        .find(Locator::Css("form[action='/ui/login'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the overview", |p| p.contains("<h1>Overview</h1>")).await;
    assert_eq!(client.current_url().await.unwrap().path(), "/ui/");

    // The overview lists the route; its name leads to the route page.
    client
        .find(Locator::LinkText("Dead letters"))
        .await
        .expect("linked from every page");
    client
        .find(Locator::LinkText("trutac"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the route page", |p| {
        p.contains("<h1>Route trutac</h1>")
    })
    .await;

    // Send test event: signed like `hookgate sign`, through the ingress.
    // Pre-filled with TruTac's sample (fresh IDs), which the operator
    // may edit; here it is replaced.
    let body = client
        .find(Locator::Css("textarea[name=body]"))
        .await
        .unwrap();
    let sample = body.prop("value").await.unwrap().unwrap_or_default();
    assert!(sample.contains("clocking.created"), "{sample}");
    body.clear().await.unwrap();
    body.send_keys(r#"{"booking":"from-the-browser"}"#)
        .await
        .unwrap();
    let event = client
        .find(Locator::Css("form.test input[name=event]"))
        .await
        .unwrap();
    assert_eq!(
        event.prop("value").await.unwrap().as_deref(),
        Some("clocking")
    );
    event.clear().await.unwrap();
    event.send_keys("booking.created").await.unwrap();
    client
        .find(Locator::XPath(
            "//button[normalize-space()='Send test event']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the test event's answer", |p| {
        p.contains(r#"id="status""#)
    })
    .await;
    assert_eq!(text_of(&client, "#status").await, "200");
    let result = client.source().await.unwrap();
    assert!(
        result.contains("tt-hook-event, tt-hook-signature"),
        "the event type is sent: {result}"
    );
    let link = client.find(Locator::Css("#event-link")).await.unwrap();
    let id = link.text().await.unwrap();
    assert_eq!(id.len(), 36, "a delivery id: {id}");

    // It is in the route's event list, and becomes a dead letter.
    client.goto(&ui("/ui/routes/trutac")).await.unwrap();
    reload_until(&client, "the test event is dead in the list", |page| {
        page.contains(&id) && page.contains(r#"<span class="state dead">dead</span>"#)
    })
    .await;
    client
        .goto(&ui("/ui/routes/trutac?state=dead"))
        .await
        .unwrap();
    client
        .find(Locator::LinkText(&id))
        .await
        .expect("filtered by state")
        .click()
        .await
        .unwrap();
    wait_for(&client, "the event page", |p| p.contains("<h1>Event</h1>")).await;
    assert_eq!(
        client.current_url().await.unwrap().path(),
        format!("/ui/events/{id}")
    );
    assert_eq!(text_of(&client, "#state").await, "dead");
    let page = client.source().await.unwrap();
    assert!(page.contains("from-the-browser"), "the body is shown");
    assert!(
        page.contains("booking.created"),
        "the event type is shown: {page}"
    );
    assert!(!page.contains(SECRET) && !page.contains(ADMIN_TOKEN));

    // The dead-letter list has it, with its checkbox.
    client.goto(&ui("/ui/dead-letters")).await.unwrap();
    client
        .find(Locator::Css(&format!(
            "input[type=checkbox][name=id][value='{id}']"
        )))
        .await
        .expect("a checkbox per dead letter");
    client
        .find(Locator::XPath(
            "//button[normalize-space()='Replay selected']",
        ))
        .await
        .unwrap();

    if std::env::var_os("HOOKGATE_WRITE_SCREENSHOTS").is_some() {
        screenshots(&client, &gateway, &upstream, &failing, &id).await;
    }

    // Replay from the event page, with the upstream back: delivered.
    failing.store(false, Ordering::SeqCst);
    client.goto(&ui(&format!("/ui/events/{id}"))).await.unwrap();
    client
        .find(Locator::XPath("//button[normalize-space()='Replay']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the replay notice", |page| {
        page.contains("Replayed")
    })
    .await;
    reload_until(&client, "the replayed event is delivered", |page| {
        page.contains(r#"<span id="state" class="state delivered">delivered</span>"#)
    })
    .await;
    assert!(upstream
        .received()
        .iter()
        .any(|r| &r.body[..] == br#"{"booking":"from-the-browser"}"#));

    // A GitHub route's form holds GitHub's ping, sent as it is: verified,
    // and acknowledged without forwarding, which the page says.
    client.goto(&ui("/ui/routes/orders")).await.unwrap();
    let value = |css: &'static str| {
        let client = client.clone();
        async move {
            let field = client.find(Locator::Css(css)).await.unwrap();
            field.prop("value").await.unwrap().unwrap_or_default()
        }
    };
    assert!(value("textarea[name=body]").await.contains(r#""zen":"#));
    assert_eq!(value("form.test input[name=event]").await, "ping");
    let delivery = value("textarea[name=headers]").await;
    assert!(delivery.starts_with("X-GitHub-Delivery: "), "{delivery}");
    client
        .find(Locator::XPath(
            "//button[normalize-space()='Send test event']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the ping's answer", |p| {
        p.contains(r#"id="status""#)
    })
    .await;
    assert_eq!(text_of(&client, "#status").await, "200");
    assert!(client.source().await.unwrap().contains("acknowledged only"));
    // Another test event gets fresh IDs.
    client
        .find(Locator::LinkText("Send another test event"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "the route page", |p| {
        p.contains("<h1>Route orders</h1>")
    })
    .await;
    assert_ne!(value("textarea[name=headers]").await, delivery);

    // Logging out ends the session.
    client
        .find(Locator::XPath("//button[normalize-space()='Log out']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client.goto(&ui("/ui/")).await.unwrap();
    assert_eq!(client.current_url().await.unwrap().path(), "/ui/login");
}

/// The README's screenshots: the overview with some traffic (delivered,
/// rejected, a duplicate), and the event page of a dead letter.
async fn screenshots(
    client: &Client,
    gateway: &Gateway,
    upstream: &Upstream,
    failing: &AtomicBool,
    id: &str,
) {
    failing.store(false, Ordering::SeqCst);
    let before = upstream.received().len();
    let mut delivered = 0;
    for n in 0..14 {
        let body = format!(r#"{{"n":{n}}}"#);
        // Rejected for three reasons: malformed, wrong, and missing.
        let signature = match n % 7 {
            3 => "sha1=00".to_string(),
            5 => format!("sha1={}", "0".repeat(40)),
            6 => String::new(),
            _ => {
                delivered += 1;
                trutac_signature(SECRET, body.as_bytes())
            }
        };
        let headers: &[(&str, &str)] = if signature.is_empty() {
            &[]
        } else {
            &[("tt-hook-signature", &signature)]
        };
        post(&gateway.url("/hooks/trutac"), headers, body).await;
    }
    eventually("the screenshot's events are delivered", || {
        upstream.received().len() == before + delivered
    })
    .await;
    failing.store(true, Ordering::SeqCst);
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    client.set_window_size(1280, 1100).await.unwrap();
    client.goto(&gateway.admin_url("/ui/")).await.unwrap();
    std::fs::write(
        docs.join("console-overview.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    client
        .goto(&gateway.admin_url(&format!("/ui/events/{id}")))
        .await
        .unwrap();
    std::fs::write(
        docs.join("console-event.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    // Not committed: to look at the layout on a phone's width.
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&gateway.admin_url("/ui/")).await.unwrap();
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    std::fs::write(
        target.join("console-phone.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    client
        .goto(&gateway.admin_url("/ui/dead-letters"))
        .await
        .unwrap();
    std::fs::write(
        target.join("console-phone-dead.png"),
        client.screenshot().await.unwrap(),
    )
    .unwrap();
    client.set_window_size(1280, 1000).await.unwrap();
}

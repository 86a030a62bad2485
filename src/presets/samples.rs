//! What each preset's sender sends when asked for a test: a small body of
//! the sender's documented shape (its ping or test event where it has one),
//! the event type where the sender puts it in a header, and the headers
//! that carry the sender's event ID. The console pre-fills "Send test
//! event" with it; `hookgate presets --format json` shows it.
//!
//! Placeholders make each copy a new event, so that a second test event is
//! not dropped as a duplicate: `{uuid}` (a fresh hyphenated UUID), `{id}`
//! (the same, 32 hex digits), `{n}` (a fresh 12-digit number), `{now}`
//! (unix seconds), `{now_ms}` and `{now_iso}` (RFC 3339). Every sample's
//! body holds a fresh value, so a route keyed by the body's digest sees a
//! new event too. A preset without a sample here gets [`GENERIC`].

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// A preset's test event, with placeholders.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// The event type, when the sender sends it in a header (the preset's
    /// `events_from` header); `None` when it is in the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    /// Headers the sender sends besides its signature and event type: its
    /// event ID, message type, account.
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "as_object")]
    pub headers: &'static [(&'static str, &'static str)],
    pub body: &'static str,
}

/// Headers as a JSON object, `{"Name": "value"}`, in order.
fn as_object<S: serde::Serializer>(
    headers: &&'static [(&'static str, &'static str)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(headers.iter().copied())
}

/// A sample made fresh: its placeholders replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEvent {
    pub event: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Sample {
    /// This sample with fresh IDs and the time `now`.
    pub fn render(&self, now: SystemTime) -> TestEvent {
        let fresh = Fresh::new(now);
        TestEvent {
            event: self.event.map(|e| fresh.fill(e)),
            headers: self
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), fresh.fill(v)))
                .collect(),
            body: fresh.fill(self.body),
        }
    }
}

/// The values of one rendering.
struct Fresh {
    uuid: uuid::Uuid,
    now: SystemTime,
}

impl Fresh {
    fn new(now: SystemTime) -> Fresh {
        Fresh {
            // Version 7: the time, then 74 random bits; unique per call.
            uuid: uuid::Uuid::now_v7(),
            now,
        }
    }

    fn fill(&self, text: &str) -> String {
        if !text.contains('{') {
            return text.to_string();
        }
        let since = self.now.duration_since(UNIX_EPOCH).unwrap_or_default();
        // The random low bits, as a 12-digit number that does not start with 0.
        let n = (self.uuid.as_u128() as u64) % 900_000_000_000 + 100_000_000_000;
        text.replace("{uuid}", &self.uuid.hyphenated().to_string())
            .replace("{id}", &self.uuid.simple().to_string())
            .replace("{n}", &n.to_string())
            .replace("{now_ms}", &since.as_millis().to_string())
            .replace(
                "{now_iso}",
                &humantime::format_rfc3339_seconds(self.now).to_string(),
            )
            .replace("{now}", &since.as_secs().to_string())
    }
}

/// The sample of a route without a preset (`hmac`, `header`, `api_key`,
/// `none`), or of a preset without one.
pub const GENERIC: Sample = Sample {
    event: None,
    headers: &[],
    body: r#"{"id":"evt_test_{id}","type":"test.event","created_at":"{now_iso}","data":{"message":"Test event sent from the hookgate console"}}"#,
};

/// The sample of `scheme`: its preset's, else [`GENERIC`].
pub fn sample(scheme: &str) -> &'static Sample {
    preset_sample(scheme).unwrap_or(&GENERIC)
}

/// The sample written for preset `name`, if there is one.
pub fn preset_sample(name: &str) -> Option<&'static Sample> {
    SAMPLES.iter().find(|(n, _)| *n == name).map(|(_, s)| s)
}

const fn body(body: &'static str) -> Sample {
    Sample {
        event: None,
        headers: &[],
        body,
    }
}

const fn with(
    event: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
) -> Sample {
    Sample {
        event,
        headers,
        body,
    }
}

/// Standard Webhooks (and Svix, Clerk, Resend, OpenAI): the signed
/// `webhook-id` is the event's ID.
const WEBHOOK_ID: &[(&str, &str)] = &[("webhook-id", "msg_{id}")];

const META: Sample = body(
    r#"{"object":"page","entry":[{"id":"{n}","time":{now},"changes":[{"field":"feed","value":{"item":"status","verb":"add","post_id":"{n}_1","message":"Test event"}}]}]}"#,
);

/// Samples by preset name, in [`super::TABLE`] order.
const SAMPLES: &[(&str, Sample)] = &[
    (
        "trutac",
        with(
            Some("clocking"),
            &[],
            r#"{"action":"clocking.created","clocking":{"id":{n},"employee":"Test Employee","type":"in","time":"{now_iso}"}}"#,
        ),
    ),
    (
        "timekit",
        body(
            r#"{"id":"{uuid}","state":"tentative","graph":"confirm_decline","completed":false,"created_at":"{now_iso}","updated_at":"{now_iso}","customer":{"name":"Test Customer","email":"customer@example.com","timezone":"Europe/Amsterdam"},"event":{"start":"{now_iso}","end":"{now_iso}","what":"Test booking","where":"Online"}}"#,
        ),
    ),
    (
        "github",
        with(
            Some("ping"),
            &[("X-GitHub-Delivery", "{uuid}"), ("X-GitHub-Hook-ID", "{n}")],
            r#"{"zen":"Keep it logically awesome.","hook_id":{n},"hook":{"type":"Repository","id":{n},"name":"web","active":true,"events":["push"],"config":{"content_type":"json","insecure_ssl":"0"}},"repository":{"id":1296269,"full_name":"octocat/Hello-World"},"sender":{"login":"octocat","id":1}}"#,
        ),
    ),
    (
        "gitlab",
        with(
            Some("Push Hook"),
            &[("X-Gitlab-Event-UUID", "{uuid}"), ("X-Gitlab-Instance", "https://gitlab.example.com")],
            r#"{"object_kind":"push","event_name":"push","before":"0000000000000000000000000000000000000000","after":"{id}00000000","ref":"refs/heads/main","user_username":"test","project":{"id":{n},"path_with_namespace":"group/project"},"commits":[],"total_commits_count":0}"#,
        ),
    ),
    (
        "okta",
        body(
            r#"{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","source":"https://example.okta.com/api/v1/eventHooks/who{n}","eventId":"{uuid}","eventTime":"{now_iso}","contentType":"application/json","data":{"events":[{"uuid":"{uuid}","eventType":"user.lifecycle.create","published":"{now_iso}","displayMessage":"Create Okta user"}]}}"#,
        ),
    ),
    (
        "bitbucket",
        with(
            Some("repo:push"),
            &[("X-Request-UUID", "{uuid}"), ("X-Hook-UUID", "{uuid}")],
            r#"{"push":{"changes":[]},"repository":{"type":"repository","full_name":"team/repo","uuid":"{{uuid}}"},"actor":{"type":"user","display_name":"Test User"}}"#,
        ),
    ),
    (
        "standard_webhooks",
        with(
            None,
            WEBHOOK_ID,
            r#"{"type":"test.event","timestamp":"{now_iso}","data":{"id":"{id}","message":"Test event"}}"#,
        ),
    ),
    ("svix", with(None, WEBHOOK_ID, r#"{"type":"test.event","timestamp":"{now_iso}","data":{"id":"{id}"}}"#)),
    (
        "clerk",
        with(
            None,
            WEBHOOK_ID,
            r#"{"type":"user.created","object":"event","timestamp":{now_ms},"data":{"id":"user_{id}","object":"user","first_name":"Test","email_addresses":[{"email_address":"test@example.com"}]}}"#,
        ),
    ),
    (
        "resend",
        with(
            None,
            WEBHOOK_ID,
            r#"{"type":"email.delivered","created_at":"{now_iso}","data":{"email_id":"{uuid}","from":"Acme <onboarding@resend.dev>","to":["delivered@resend.dev"],"subject":"Test event"}}"#,
        ),
    ),
    (
        "stripe",
        body(
            r#"{"id":"evt_test_{id}","object":"event","api_version":"2024-06-20","created":{now},"livemode":false,"pending_webhooks":1,"type":"payment_intent.succeeded","data":{"object":{"id":"pi_test_{id}","object":"payment_intent","amount":2000,"currency":"usd","status":"succeeded"}}}"#,
        ),
    ),
    (
        "shopify",
        with(
            Some("orders/create"),
            &[
                ("X-Shopify-Webhook-Id", "{uuid}"),
                ("X-Shopify-Event-Id", "{uuid}"),
                ("X-Shopify-Shop-Domain", "example.myshopify.com"),
                ("X-Shopify-API-Version", "2024-10"),
                ("X-Shopify-Triggered-At", "{now_iso}"),
            ],
            r##"{"id":{n},"admin_graphql_api_id":"gid://shopify/Order/{n}","name":"#1001","email":"customer@example.com","created_at":"{now_iso}","currency":"USD","total_price":"10.00","financial_status":"paid","test":true,"line_items":[{"id":{n},"title":"Test product","quantity":1,"price":"10.00"}]}"##,
        ),
    ),
    (
        "slack",
        body(
            r#"{"token":"verification-token","team_id":"T0001","api_app_id":"A0001","type":"event_callback","event_id":"Ev{id}","event_time":{now},"event":{"type":"app_mention","user":"U0001","text":"<@U0002> test","ts":"{now}.000100","channel":"C0001"}}"#,
        ),
    ),
    (
        "paddle",
        body(
            r#"{"event_id":"evt_{id}","event_type":"transaction.completed","occurred_at":"{now_iso}","notification_id":"ntf_{id}","data":{"id":"txn_{id}","status":"completed","currency_code":"USD"}}"#,
        ),
    ),
    (
        "pagerduty",
        body(
            r#"{"event":{"id":"{id}","event_type":"pagey.ping","resource_type":"pagey","occurred_at":"{now_iso}","agent":null,"client":null,"data":{"message":"Hello from your friend Pagey!","type":"ping"}}}"#,
        ),
    ),
    (
        "linear",
        body(
            r#"{"action":"create","type":"Issue","createdAt":"{now_iso}","webhookTimestamp":{now_ms},"webhookId":"{uuid}","url":"https://linear.app/team/issue/TST-1","data":{"id":"{uuid}","title":"Test issue","identifier":"TST-1"}}"#,
        ),
    ),
    (
        "zoom",
        body(
            r#"{"event":"meeting.started","event_ts":{now_ms},"payload":{"account_id":"AAAAAAAAAAAAAAAAAAAAAA","object":{"id":"{n}","uuid":"{id}","topic":"Test meeting","start_time":"{now_iso}"}}}"#,
        ),
    ),
    (
        "typeform",
        body(
            r#"{"event_id":"{id}","event_type":"form_response","form_response":{"form_id":"lT4Z3j","token":"{id}","submitted_at":"{now_iso}","answers":[{"type":"text","text":"Test answer","field":{"id":"JwWggjAKtOkA","type":"short_text"}}]}}"#,
        ),
    ),
    (
        "calendly",
        body(
            r#"{"event":"invitee.created","created_at":"{now_iso}","created_by":"https://api.calendly.com/users/AAAAAAAAAAAAAAAA","payload":{"uri":"https://api.calendly.com/scheduled_events/{id}/invitees/{id}","email":"test@example.com","name":"Test Invitee","status":"active"}}"#,
        ),
    ),
    (
        "zendesk",
        body(
            r#"{"type":"zen:event-type:ticket.created","account_id":{n},"id":"{uuid}","time":"{now_iso}","zendesk_event_version":"2022-11-06","subject":"zen:ticket:{n}","detail":{"id":"{n}","subject":"Test ticket","status":"NEW"}}"#,
        ),
    ),
    (
        "intercom",
        body(
            r#"{"type":"notification_event","app_id":"abc123","id":"notif_{id}","topic":"ping","delivery_attempts":1,"created_at":{now},"data":{"type":"notification_event_data","item":{"type":"ping","message":"something something interzen"}}}"#,
        ),
    ),
    (
        "jira",
        body(
            r#"{"timestamp":{now_ms},"webhookEvent":"jira:issue_created","issue_event_type_name":"issue_created","issue":{"id":"{n}","key":"TEST-1","fields":{"summary":"Test issue"}},"user":{"displayName":"Test User"}}"#,
        ),
    ),
    (
        "vercel",
        body(
            r#"{"id":"evt_{id}","type":"deployment.created","createdAt":{now_ms},"region":"iad1","payload":{"deployment":{"id":"dpl_{id}","url":"test-app.vercel.app","name":"test-app"},"project":{"id":"prj_test"},"target":"preview"}}"#,
        ),
    ),
    (
        "xero",
        body(
            r#"{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Invoices/{uuid}","resourceId":"{uuid}","eventDateUtc":"{now_iso}","eventType":"CREATE","eventCategory":"INVOICE","tenantId":"{uuid}","tenantType":"ORGANISATION"}],"firstEventSequence":1,"lastEventSequence":1,"entropy":"{id}"}"#,
        ),
    ),
    (
        "quickbooks",
        body(
            r#"{"eventNotifications":[{"realmId":"{n}","dataChangeEvent":{"entities":[{"name":"Customer","id":"{n}","operation":"Create","lastUpdated":"{now_iso}"}]}}]}"#,
        ),
    ),
    (
        "docusign",
        body(
            r#"{"event":"envelope-completed","apiVersion":"v2.1","uri":"/restapi/v2.1/accounts/{uuid}/envelopes/{uuid}","retryCount":0,"configurationId":{n},"generatedDateTime":"{now_iso}","data":{"accountId":"{uuid}","envelopeId":"{uuid}"}}"#,
        ),
    ),
    (
        "hubspot",
        body(
            r#"[{"eventId":{n},"subscriptionId":12345,"portalId":62515,"appId":54321,"occurredAt":{now_ms},"subscriptionType":"contact.creation","attemptNumber":0,"objectId":{n},"changeFlag":"CREATED","changeSource":"CRM"}]"#,
        ),
    ),
    (
        "twitch",
        with(
            Some("channel.follow"),
            &[
                ("Twitch-Eventsub-Message-Id", "{uuid}"),
                ("Twitch-Eventsub-Message-Type", "notification"),
                ("Twitch-Eventsub-Subscription-Version", "2"),
            ],
            r#"{"subscription":{"id":"{uuid}","type":"channel.follow","version":"2","status":"enabled","cost":0,"condition":{"broadcaster_user_id":"1337","moderator_user_id":"1337"},"transport":{"method":"webhook","callback":"https://example.com/webhooks/callback"},"created_at":"{now_iso}"},"event":{"user_id":"{n}","user_login":"test_user","user_name":"Test_User","broadcaster_user_id":"1337","broadcaster_user_login":"cooler_user","broadcaster_user_name":"Cooler_User","followed_at":"{now_iso}"}}"#,
        ),
    ),
    (
        "twilio",
        with(
            None,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "MessageSid=SM{id}&AccountSid=AC00000000000000000000000000000000&From=%2B15005550006&To=%2B15005550001&Body=Test+event&NumMedia=0",
        ),
    ),
    (
        "square",
        body(
            r#"{"merchant_id":"6SSW7HV8K2ST5","type":"payment.created","event_id":"{uuid}","created_at":"{now_iso}","data":{"type":"payment","id":"{id}","object":{"payment":{"id":"{id}","status":"APPROVED","amount_money":{"amount":100,"currency":"USD"}}}}}"#,
        ),
    ),
    (
        "discord",
        body(r#"{"version":1,"application_id":"{n}","type":0,"event":{"type":"APPLICATION_AUTHORIZED","timestamp":"{now_iso}","data":{}}}"#),
    ),
    (
        "sendgrid",
        body(r#"[{"email":"test@example.com","timestamp":{now},"event":"delivered","sg_event_id":"{id}","sg_message_id":"{id}.filter0001"}]"#),
    ),
    ("meta", META),
    (
        "whatsapp",
        body(
            r#"{"object":"whatsapp_business_account","entry":[{"id":"{n}","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"{n}"},"messages":[{"from":"15551234567","id":"wamid.{id}","timestamp":"{now}","type":"text","text":{"body":"Test event"}}]}}]}]}"#,
        ),
    ),
    (
        "instagram",
        body(
            r#"{"object":"instagram","entry":[{"id":"{n}","time":{now},"changes":[{"field":"comments","value":{"id":"{n}","text":"Test comment","from":{"id":"{n}","username":"test_user"},"media":{"id":"{n}"}}}]}]}"#,
        ),
    ),
    (
        "line",
        body(
            r#"{"destination":"U00000000000000000000000000000000","events":[{"type":"message","mode":"active","timestamp":{now_ms},"webhookEventId":"01{id}","deliveryContext":{"isRedelivery":false},"source":{"type":"user","userId":"U00000000000000000000000000000001"},"message":{"id":"{n}","type":"text","text":"Test event"}}]}"#,
        ),
    ),
    (
        "razorpay",
        body(
            r#"{"entity":"event","account_id":"acc_TestAccount01","event":"payment.captured","contains":["payment"],"created_at":{now},"payload":{"payment":{"entity":{"id":"pay_{id}","entity":"payment","amount":100,"currency":"INR","status":"captured"}}}}"#,
        ),
    ),
    (
        "gocardless",
        body(
            r#"{"events":[{"id":"EV{id}","created_at":"{now_iso}","resource_type":"payments","action":"confirmed","links":{"payment":"PM{n}"},"details":{"origin":"gocardless","cause":"payment_confirmed","description":"Test event"}}],"meta":{"webhook_id":"WB{n}"}}"#,
        ),
    ),
    (
        "coinbase_commerce",
        body(
            r#"{"attempt_number":1,"event":{"id":"{uuid}","api_version":"2018-03-22","created_at":"{now_iso}","type":"charge:confirmed","resource":"event","data":{"id":"{uuid}","code":"TEST{n}","name":"Test charge"}},"id":"{uuid}","scheduled_for":"{now_iso}"}"#,
        ),
    ),
    (
        "pusher",
        body(r#"{"time_ms":{now_ms},"events":[{"name":"channel_occupied","channel":"test-channel-{id}"}]}"#),
    ),
    (
        "onfido",
        body(
            r#"{"payload":{"resource_type":"check","action":"check.completed","object":{"id":"{uuid}","status":"complete","completed_at_iso8601":"{now_iso}","href":"https://api.onfido.com/v3.6/checks/{uuid}"}}}"#,
        ),
    ),
    (
        "lemonsqueezy",
        body(
            r#"{"meta":{"event_name":"order_created","test_mode":true,"webhook_id":"{uuid}"},"data":{"type":"orders","id":"{n}","attributes":{"status":"paid","total":999,"currency":"USD","created_at":"{now_iso}"}}}"#,
        ),
    ),
    (
        "sentry",
        with(
            Some("installation"),
            &[("Request-ID", "{uuid}")],
            r#"{"action":"created","installation":{"uuid":"{uuid}"},"data":{"installation":{"app":{"uuid":"{uuid}","slug":"test-app"},"organization":{"slug":"test-org"},"uuid":"{uuid}","status":"installed"}},"actor":{"type":"user","id":1,"name":"Test User"}}"#,
        ),
    ),
    (
        "cal_com",
        body(
            r#"{"triggerEvent":"PING","createdAt":"{now_iso}","payload":{"type":"Test","title":"Test Trigger","uid":"{id}","startTime":"{now_iso}","endTime":"{now_iso}","organizer":{"name":"Cal","email":"no-reply@cal.com","timeZone":"Europe/London"}}}"#,
        ),
    ),
    (
        "gitea",
        with(Some("push"), &[("X-Gitea-Delivery", "{uuid}")], FORGE_PUSH),
    ),
    (
        "forgejo",
        with(Some("push"), &[("X-Forgejo-Delivery", "{uuid}")], FORGE_PUSH),
    ),
    ("gogs", with(Some("push"), &[("X-Gogs-Delivery", "{uuid}")], FORGE_PUSH)),
    (
        "circleci",
        with(
            None,
            &[("circleci-event-type", "ping")],
            r#"{"type":"ping","id":"{uuid}","happened_at":"{now_iso}","webhook":{"id":"{uuid}","name":"Test webhook"}}"#,
        ),
    ),
    (
        "dropbox",
        body(r#"{"list_folder":{"accounts":["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]},"delta":{"users":[{n}]}}"#),
    ),
    (
        "airtable",
        body(r#"{"base":{"id":"appTest{n}"},"webhook":{"id":"ach{id}"},"timestamp":"{now_iso}"}"#),
    ),
    (
        "heroku",
        with(
            None,
            &[("Heroku-Webhook-Id", "{uuid}")],
            r#"{"id":"{uuid}","action":"update","actor":{"email":"test@example.com"},"created_at":"{now_iso}","data":{"app":{"name":"test-app"},"name":"test-app","release":{"version":1}},"resource":"app","version":"application/vnd.heroku+json; version=3.webhooks","webhook_metadata":{"attempt":{"id":"{uuid}"},"delivery":{"id":"{uuid}"},"event":{"id":"{uuid}","include":"api:app"},"webhook":{"id":"{uuid}"}}}"#,
        ),
    ),
    (
        "woocommerce",
        with(
            Some("order.created"),
            &[
                ("X-WC-Webhook-Delivery-ID", "{n}"),
                ("X-WC-Webhook-Resource", "order"),
                ("X-WC-Webhook-Event", "created"),
                ("X-WC-Webhook-Source", "https://shop.example.com/"),
            ],
            r#"{"id":{n},"status":"processing","currency":"USD","total":"10.00","date_created":"{now_iso}","billing":{"first_name":"Test","email":"test@example.com"},"line_items":[{"name":"Test product","quantity":1,"total":"10.00"}]}"#,
        ),
    ),
    (
        "workos",
        body(
            r#"{"id":"event_{id}","event":"user.created","created_at":"{now_iso}","data":{"object":"user","id":"user_{id}","email":"test@example.com","email_verified":false}}"#,
        ),
    ),
    (
        "box",
        with(
            None,
            &[("BOX-DELIVERY-ID", "{uuid}")],
            r#"{"type":"webhook_event","id":"{uuid}","created_at":"{now_iso}","trigger":"FILE.UPLOADED","webhook":{"id":"{n}","type":"webhook"},"source":{"id":"{n}","type":"file","name":"test.txt"}}"#,
        ),
    ),
    (
        "mux",
        body(
            r#"{"type":"video.asset.ready","id":"{uuid}","created_at":"{now_iso}","object":{"type":"asset","id":"{id}"},"environment":{"name":"Development","id":"test"},"data":{"id":"{id}","status":"ready"}}"#,
        ),
    ),
    (
        "persona",
        body(
            r#"{"data":{"type":"event","id":"evt_{id}","attributes":{"name":"inquiry.completed","created-at":"{now_iso}","payload":{"data":{"type":"inquiry","id":"inq_{id}","attributes":{"status":"completed"}}}}}}"#,
        ),
    ),
    (
        "sanity",
        with(
            None,
            &[("sanity-transaction-id", "{id}"), ("sanity-operation", "create")],
            r#"{"_id":"test-{id}","_type":"post","_createdAt":"{now_iso}","title":"Test document"}"#,
        ),
    ),
    (
        "buildkite",
        with(
            None,
            &[("X-Buildkite-Event", "ping")],
            r#"{"event":"ping","service":{"id":"{uuid}","provider":"webhook","settings":{"url":"https://example.com/webhooks/buildkite"}},"organization":{"slug":"test-org"},"sender":{"name":"Test User"}}"#,
        ),
    ),
    (
        "trello",
        body(
            r#"{"action":{"id":"{id}","idMemberCreator":"5a0000000000000000000001","type":"createCard","date":"{now_iso}","data":{"card":{"id":"5a0000000000000000000002","name":"Test card"},"board":{"id":"5a0000000000000000000003","name":"Test board"}}},"model":{"id":"5a0000000000000000000003","name":"Test board"}}"#,
        ),
    ),
    (
        "mandrill",
        with(
            None,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "mandrill_events=%5B%7B%22event%22%3A%22send%22%2C%22_id%22%3A%22{id}%22%2C%22ts%22%3A{now}%2C%22msg%22%3A%7B%22email%22%3A%22test%40example.com%22%2C%22subject%22%3A%22Test+event%22%7D%7D%5D",
        ),
    ),
    (
        "recurly",
        body(
            r#"{"id":"{id}","object_type":"account","site_id":"test-site","event_type":"created","event_time":"{now_iso}","account_code":"test-{n}"}"#,
        ),
    ),
    (
        "openai",
        with(
            None,
            WEBHOOK_ID,
            r#"{"id":"evt_{id}","object":"event","created_at":{now},"type":"response.completed","data":{"id":"resp_{id}"}}"#,
        ),
    ),
    (
        "elevenlabs",
        body(
            r#"{"type":"post_call_transcription","event_timestamp":{now},"data":{"agent_id":"test-agent","conversation_id":"conv_{id}","status":"done","transcript":[]}}"#,
        ),
    ),
    (
        "telnyx",
        body(
            r#"{"data":{"event_type":"message.received","id":"{uuid}","occurred_at":"{now_iso}","payload":{"id":"{uuid}","text":"Test event","direction":"inbound"},"record_type":"event"},"meta":{"attempt":1,"delivered_to":"https://example.com/webhooks"}}"#,
        ),
    ),
    (
        "mailgun",
        body(
            r#"{"signature":{"timestamp":"{now}","token":"{id}","signature":"(signed by Mailgun)"},"event-data":{"event":"delivered","id":"{id}","timestamp":{now},"recipient":"test@example.com"}}"#,
        ),
    ),
    (
        "telegram",
        body(
            r#"{"update_id":{n},"message":{"message_id":1,"date":{now},"chat":{"id":1,"type":"private","first_name":"Test"},"from":{"id":1,"is_bot":false,"first_name":"Test"},"text":"/start"}}"#,
        ),
    ),
    (
        "postmark",
        body(
            r#"{"RecordType":"Delivery","ServerID":23,"MessageStream":"outbound","MessageID":"{uuid}","Recipient":"john@example.com","Tag":"test","DeliveredAt":"{now_iso}","Details":"Test delivery webhook details"}"#,
        ),
    ),
    (
        "chargebee",
        body(
            r#"{"id":"ev_{id}","occurred_at":{now},"source":"admin_console","object":"event","api_version":"v2","event_type":"customer_created","webhook_status":"not_configured","content":{"customer":{"id":"test_{n}","email":"test@example.com"}}}"#,
        ),
    ),
    (
        "microsoft_graph",
        body(
            r##"{"value":[{"id":"{uuid}","subscriptionId":"{uuid}","subscriptionExpirationDateTime":"{now_iso}","clientState":"(the route's secret)","changeType":"created","resource":"Users/{uuid}/Messages/{id}","tenantId":"{uuid}","resourceData":{"@odata.type":"#Microsoft.Graph.Message","id":"{id}"}}]}"##,
        ),
    ),
];

/// Gitea, Forgejo and Gogs push events share a shape.
const FORGE_PUSH: &str = r#"{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","after":"{id}00000000","compare_url":"","commits":[],"repository":{"id":{n},"full_name":"test/repo"},"pusher":{"login":"test"},"sender":{"login":"test"}}"#;

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::presets::{row, TABLE};

    #[test]
    fn every_sample_is_a_preset_and_every_preset_has_one() {
        for (name, _) in SAMPLES {
            assert!(row(name).is_some(), "{name} is not a preset");
        }
        for row in TABLE {
            assert!(
                preset_sample(row.name).is_some(),
                "preset {} has no sample",
                row.name
            );
        }
    }

    #[test]
    fn each_rendering_is_a_new_event_with_the_presets_event_type() {
        let now = SystemTime::now();
        for row in TABLE {
            let sample = sample(row.name);
            let (a, b) = (sample.render(now), sample.render(now));
            assert!(
                !a.body.contains("{id}") && !a.body.contains("{n}"),
                "{}",
                row.name
            );
            assert_ne!(a.body, b.body, "{}: the body has no fresh value", row.name);
            let form = a
                .headers
                .iter()
                .any(|(n, v)| n == "Content-Type" && v.contains("form"));
            if !form {
                serde_json::from_str::<serde_json::Value>(&a.body)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{}", row.name, a.body));
            }
            let preset = row.preset();
            let Some(source) = preset.event_source() else {
                continue;
            };
            let mut headers = http::HeaderMap::new();
            for (n, v) in &a.headers {
                headers.insert(
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            match (source.header(), &a.event) {
                (Some(h), Some(e)) => {
                    headers.insert(h.clone(), e.parse().unwrap());
                }
                (Some(_), None) => panic!("{}: no event type for its header", row.name),
                (None, Some(_)) => panic!("{}: the event type is in the body", row.name),
                (None, None) => {}
            }
            let event = source
                .event_type(&headers, a.body.as_bytes())
                .unwrap_or_default();
            assert!(
                !event.is_empty(),
                "{}: no event type in its sample",
                row.name
            );
            // GitHub's test delivery is its `ping`, which the preset only
            // acknowledges; every other sample is forwarded.
            if row.name != "github" {
                assert!(
                    !preset.ack_only.contains(&event.as_str()),
                    "{}: the sample is only acknowledged",
                    row.name
                );
            }
        }
    }

    #[test]
    fn placeholders_are_filled() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let e = Sample {
            event: Some("e-{n}"),
            headers: &[("X-Id", "{uuid}")],
            body: r#"{"a":"{id}","t":{now},"ms":{now_ms},"iso":"{now_iso}"}"#,
        }
        .render(now);
        let v: serde_json::Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(v["t"], 1_700_000_000);
        assert_eq!(v["ms"], 1_700_000_000_123u64);
        assert_eq!(v["iso"], "2023-11-14T22:13:20Z");
        assert_eq!(v["a"].as_str().unwrap().len(), 32);
        assert_eq!(e.headers[0].1.len(), 36);
        assert_eq!(e.headers[0].1.replace('-', ""), v["a"].as_str().unwrap());
        assert_eq!(e.event.unwrap().len(), 14);
    }
}

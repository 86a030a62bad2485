//! What each preset does, derived from its row: the headers it reads, what
//! each signature form signs, its timestamp and window, the default dedup
//! key, where the event type is and whether the signature covers it.
//! `hookgate presets` prints it (text or JSON), and the preset tables of
//! README.md and docs/configuration.md are generated from it
//! ([`markdown_reference`], [`markdown_summary`]; `docs_tests.rs` fails when
//! the committed docs disagree).

use serde::Serialize;

use super::{row_headers, Row, TABLE};
use crate::dedup::key::{signed_body_digest, BODY_SHA256};
use crate::verify::timestamp::TimestampSpec;
use crate::verify::{Algorithm, PublicKeySpec, SignatureSource};

use super::PresetKind;

/// One preset, described.
#[derive(Debug, Clone, Serialize)]
pub struct Description {
    pub name: &'static str,
    /// `hmac`, `public_key`, `shared_secret` or `basic_auth`.
    pub verification: &'static str,
    /// What the route configures: `secrets`, `public_keys`, or both (one
    /// or the other).
    pub credentials: Vec<&'static str>,
    /// Other route fields the preset needs (`public_url`).
    pub requires: Vec<&'static str>,
    /// Every request header the preset reads to verify.
    pub headers: Vec<String>,
    /// Each accepted signature form, in order of preference (the first
    /// whose header is present is checked).
    pub signatures: Vec<Form>,
    /// What a route without `dedup.key` is deduplicated by.
    pub default_dedup_key: String,
    /// Where the event type is (`header:NAME`, `json:/pointer`).
    pub events_from: Option<String>,
    /// Whether every signature form covers the event type.
    pub events_signed: Option<bool>,
    pub ack_only: Vec<&'static str>,
    pub handshake: Option<&'static str>,
    /// The test event the console's "Send test event" pre-fills, with
    /// placeholders (`{uuid}`, `{id}`, `{n}`, `{now}`, …) filled afresh each
    /// time (see [`super::samples`]).
    pub sample: &'static super::samples::Sample,
}

/// One signature form.
#[derive(Debug, Clone, Serialize)]
pub struct Form {
    /// The header(s) holding it.
    pub header: String,
    /// What is in the header: `sha256=<hex HMAC-SHA256 of {body}>`.
    pub signed: String,
    /// The list separator, when the header holds a list.
    pub separator: Option<String>,
    /// The form applies only when this header has this value.
    pub only_when: Option<String>,
    pub timestamp: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timestamp {
    /// `header:NAME`, `signature:KEY` or `json:/pointer`.
    pub source: String,
    /// `seconds`, `milliseconds` or `rfc3339`.
    pub unit: &'static str,
    /// Accepted distance from now, past and future.
    pub tolerance_secs: u64,
}

fn timestamp(t: &Option<TimestampSpec>) -> Option<Timestamp> {
    t.as_ref().map(|t| Timestamp {
        source: t.source.describe(),
        unit: t.unit.as_str(),
        tolerance_secs: t.tolerance.as_secs(),
    })
}

fn hmac_form(s: &SignatureSource) -> Form {
    let mac = match s.algorithm {
        Algorithm::SecretPrefixedSha256 => "SHA-256 of the secret followed by".to_string(),
        a => format!("HMAC-{} of", a.as_str().to_uppercase()),
    };
    let mut header = match &s.body_signature {
        Some(p) => format!("body json:{}", p.as_str()),
        None => s.header.to_string(),
    };
    if let Some(last) = s.more_headers.last() {
        header = if s.more_headers.len() > 1 {
            format!("{header} … {last}")
        } else {
            format!("{header} or {last}")
        };
    }
    let mut signed = format!(
        "{}<{} {mac} {}>",
        s.prefix,
        s.encoding.as_str(),
        s.payload.describe()
    );
    if s.url_decode_reserved {
        signed.push_str(" ({url} also tried with %3A, %2F, %3F, … decoded)");
    }
    if s.algorithm_header.is_some() {
        signed.push_str(" (HMAC-SHA256 when the algorithm header says so)");
    }
    Form {
        header,
        signed,
        separator: s.separator.clone(),
        only_when: s.only_when.as_ref().map(|(h, v)| format!("{h}: {v}")),
        timestamp: timestamp(&s.timestamp),
    }
}

fn public_key_form(s: &PublicKeySpec) -> Form {
    Form {
        header: s.header.to_string(),
        signed: format!(
            "{}<{} {} signature of {}>",
            s.prefix,
            s.encoding.as_str(),
            s.algorithm.as_str(),
            s.payload.describe()
        ),
        separator: s.separator.clone(),
        only_when: None,
        timestamp: timestamp(&s.timestamp),
    }
}

/// A form with a header and what it carries, nothing else.
fn plain_form(header: &str, signed: &str) -> Form {
    Form {
        header: header.to_string(),
        signed: signed.to_string(),
        separator: None,
        only_when: None,
        timestamp: None,
    }
}

/// A preset kind's verification, the credentials it takes, and its forms.
fn kind_forms(kind: &PresetKind) -> (&'static str, Vec<&'static str>, Vec<Form>) {
    match kind {
        PresetKind::Hmac(spec) => (
            "hmac",
            vec!["secrets"],
            spec.sources.iter().map(hmac_form).collect(),
        ),
        PresetKind::PublicKey(spec) => (
            "public_key",
            vec!["public_keys"],
            vec![public_key_form(spec)],
        ),
        PresetKind::Header(h) => (
            "shared_secret",
            vec!["secrets"],
            vec![plain_form(h.as_str(), "<one of the secrets, verbatim>")],
        ),
        PresetKind::ClientState => (
            "client_state",
            vec!["secrets"],
            vec![plain_form(
                "body json:/value/*/clientState",
                "<one of the secrets, verbatim, in every notification>",
            )],
        ),
        PresetKind::BasicAuth => (
            "basic_auth",
            vec!["secrets"],
            vec![plain_form(
                "authorization",
                "Basic <base64 of one of the secrets, written user:password>",
            )],
        ),
    }
}

/// The description of one row.
pub fn describe(row: &Row) -> Description {
    let preset = row.preset();
    let public_key = row.public_key.map(|f| f());
    let (verification, mut credentials, mut signatures) = kind_forms(&preset.kind);
    if let Some(pk) = &public_key {
        credentials.push("public_keys");
        signatures.push(public_key_form(pk));
    }
    let requires = match &preset.kind {
        PresetKind::Hmac(spec)
            if spec
                .sources
                .iter()
                .any(|s| s.payload.uses(&crate::verify::template::Part::Url)) =>
        {
            vec!["public_url"]
        }
        _ => vec![],
    };
    let coverage = preset.coverage();
    let default_dedup_key = match (row.dedup_key, &coverage) {
        (Some(key), _) => key.to_string(),
        (None, Some(c)) => signed_body_digest(c).to_string(),
        (None, None) => BODY_SHA256.to_string(),
    };
    let events_signed = preset.event_source().map(|source| {
        let mut forms = coverage.iter().cloned().chain(
            public_key
                .as_ref()
                .map(crate::verify::Coverage::of_public_key),
        );
        coverage.is_some() && forms.all(|c| source.signed_by(&c))
    });
    Description {
        name: row.name,
        verification,
        credentials,
        requires,
        headers: row_headers(row).iter().map(|h| h.to_string()).collect(),
        signatures,
        default_dedup_key,
        events_from: preset.event_source().map(|s| s.describe()),
        events_signed,
        ack_only: row.ack_only.to_vec(),
        handshake: row.handshake.map(|h| h.describe()),
        sample: super::samples::sample(row.name),
    }
}

/// Every preset, in table order.
pub fn all() -> Vec<Description> {
    TABLE.iter().map(describe).collect()
}

fn window(secs: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

impl Form {
    /// One line: `header: what` (list, condition and timestamp included).
    pub fn line(&self) -> String {
        let mut s = format!("{}: {}", self.header, self.signed);
        if let Some(sep) = &self.separator {
            s.push_str(&format!(", in a list split on {sep:?}"));
        }
        if let Some(when) = &self.only_when {
            s.push_str(&format!(", when {when}"));
        }
        if let Some(t) = &self.timestamp {
            s.push_str(&format!(
                "; timestamp {} ({}) within {}",
                t.source,
                t.unit,
                window(t.tolerance_secs)
            ));
        }
        s
    }
}

impl Description {
    /// The block `hookgate presets` prints.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}\n  verification  {} ({})\n",
            self.name,
            self.verification,
            self.credentials.join(" or ")
        );
        if !self.requires.is_empty() {
            out.push_str(&format!("  requires      {}\n", self.requires.join(", ")));
        }
        out.push_str(&format!("  headers       {}\n", self.headers.join(", ")));
        for form in &self.signatures {
            out.push_str(&format!("  signature     {}\n", form.line()));
        }
        out.push_str(&format!("  dedup key     {}\n", self.default_dedup_key));
        out.push_str(&format!("  events        {}\n", self.events_text()));
        if let Some(h) = self.handshake {
            out.push_str(&format!("  handshake     {h}\n"));
        }
        out
    }

    fn events_text(&self) -> String {
        let mut s = match (&self.events_from, self.events_signed) {
            (None, _) => "—".to_string(),
            (Some(from), Some(true)) => format!("{from} (signed)"),
            (Some(from), _) => format!("{from} (unsigned)"),
        };
        if !self.ack_only.is_empty() {
            s.push_str(&format!(", ack-only {}", self.ack_only.join(", ")));
        }
        s
    }

    /// The timestamp windows of its forms, e.g. `5m`, or empty.
    fn windows(&self) -> String {
        let mut w: Vec<String> = self
            .signatures
            .iter()
            .filter_map(|f| f.timestamp.as_ref().map(|t| window(t.tolerance_secs)))
            .collect();
        w.dedup();
        w.join(", ")
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn code(text: &str) -> String {
    format!("`{}`", text.replace('`', ""))
}

/// The preset table of docs/configuration.md.
pub fn markdown_reference() -> String {
    let mut out = String::from(
        "| preset | verification | signature (per accepted form) | default dedup key | events from |\n|---|---|---|---|---|\n",
    );
    for d in all() {
        let mut verification = format!("{} ({})", d.verification, d.credentials.join(" or "));
        for r in &d.requires {
            verification.push_str(&format!("; needs `{r}`"));
        }
        let forms: Vec<String> = d.signatures.iter().map(|f| code(&f.line())).collect();
        let mut events = match &d.events_from {
            None => String::new(),
            Some(from) => format!(
                "{} ({})",
                code(from),
                if d.events_signed == Some(true) {
                    "signed"
                } else {
                    "unsigned"
                }
            ),
        };
        if !d.ack_only.is_empty() {
            events.push_str(&format!(", ack-only {}", d.ack_only.join(", ")));
        }
        if let Some(h) = d.handshake {
            if !events.is_empty() {
                events.push_str("; ");
            }
            events.push_str(h);
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            d.name,
            cell(&verification),
            cell(&forms.join("<br>")),
            code(&d.default_dedup_key),
            cell(&events)
        ));
    }
    out
}

/// The shorter preset table of README.md.
pub fn markdown_summary() -> String {
    let mut out = String::from(
        "| preset | signature header(s) | window | event type from |\n|---|---|---|---|\n",
    );
    for d in all() {
        let mut headers: Vec<String> = Vec::new();
        for f in &d.signatures {
            if !headers.contains(&f.header) {
                headers.push(f.header.clone());
            }
        }
        let headers: Vec<String> = headers.iter().map(|h| code(h)).collect();
        let mut what = headers.join(", ");
        match d.verification {
            "shared_secret" => what.push_str(" (shared secret)"),
            "basic_auth" => what.push_str(" (HTTP basic auth)"),
            "public_key" => what.push_str(" (public key)"),
            _ if d.credentials.contains(&"public_keys") => what.push_str(" (or public key)"),
            _ => {}
        }
        let events = match (&d.events_from, d.events_signed) {
            (None, _) => String::new(),
            (Some(from), Some(true)) => code(from),
            (Some(from), _) => format!("{}, unsigned", code(from)),
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            d.name,
            cell(&what),
            d.windows(),
            cell(&events)
        ));
    }
    out
}

//! `verify:`: which fields a scheme takes, then its spec.

use std::time::Duration;

use http::HeaderName;

use super::super::leaf::{unknown, Parsed, Secret};
use super::super::raw::RawVerify;
use super::super::ConfigError;
use super::keys::{check_secrets_decode, public_keys, secrets};
use super::{hmac, jwt, At};
use crate::presets::{self, Preset, PresetKind};
use crate::verify::template::Part;
use crate::verify::{HmacSpec, Presented, PublicKeySpec, SpecKind, VerifySpec};
use secrecy::ExposeSecret;

/// `scheme: api_key` without `header`.
const DEFAULT_API_KEY_HEADER: HeaderName = HeaderName::from_static("x-api-key");

/// Every optional field of the generic `scheme: hmac`.
const GENERIC_HMAC: &[&str] = &[
    "header",
    "algorithm",
    "encoding",
    "prefix",
    "separator",
    "secret_encoding",
    "payload",
    "timestamp",
    "tolerance",
    "public_url",
    "secrets",
];

/// The route's spec, and its preset (which also contributes to the
/// route's event policy).
pub fn verify(at: &At, mut raw: RawVerify) -> Result<(VerifySpec, Option<Preset>), ConfigError> {
    let scheme = raw.scheme.clone();
    let preset = presets::preset(&scheme);
    // A preset verified with the sender's public keys: its only form
    // (discord, sendgrid), or standard_webhooks' `v1a` form.
    let public_key_spec = presets::public_key_preset(&scheme);
    let preset_fields = preset_fields(preset.as_ref(), public_key_spec.is_some());
    let allowed: &[&str] = match scheme.as_str() {
        "none" => &[],
        "header" | "api_key" => &["header", "secrets"],
        "hmac" => GENERIC_HMAC,
        "jwt" => jwt::FIELDS,
        _ if preset.is_some() => &preset_fields,
        other => {
            let expected = format!(
                "expected one of none, header, api_key, hmac, jwt, {}",
                presets::NAMES.join(", ")
            );
            return Err(at
                .field("scheme")
                .error(unknown("scheme", other, &expected)));
        }
    };
    check_given(at, &raw, allowed, &preset_fields, preset.is_some())?;
    let tolerance = raw.tolerance.take().map(Parsed::into_inner);
    let public_url = raw.public_url.take().map(|Parsed(u)| u.0);
    let public_key_form = matches!(
        preset.as_ref().map(|p| &p.kind),
        Some(PresetKind::PublicKey(_))
    ) || (public_key_spec.is_some() && raw.public_keys.is_some());
    let kind = match (public_key_form, scheme.as_str()) {
        (true, _) => public_key_kind(at, raw, public_key_spec, tolerance)?,
        (false, "none") => SpecKind::None,
        (false, "jwt") => jwt::kind(at, raw)?,
        (false, "header") => SpecKind::Header {
            presented: Presented::Verbatim,
            header: raw
                .header
                .ok_or_else(|| at.field("header").error("required for scheme `header`"))?
                .0,
            secrets: secrets(at, raw.secrets)?,
        },
        (false, "api_key") => SpecKind::ApiKey {
            header: raw
                .header
                .map_or(DEFAULT_API_KEY_HEADER, Parsed::into_inner),
            secrets: secrets(at, raw.secrets)?,
        },
        (false, "hmac") => {
            let raw_secrets = raw.secrets.take();
            let source = hmac::generic_source(at, raw, tolerance, public_url)?;
            hmac_kind(
                at,
                HmacSpec {
                    sources: vec![source],
                },
                raw_secrets,
            )?
        }
        (false, _) => {
            let preset = preset.as_ref().expect("unknown schemes were refused above");
            preset_kind(
                at,
                raw,
                preset,
                public_key_spec.is_some(),
                tolerance,
                public_url,
            )?
        }
    };
    Ok((VerifySpec { scheme, kind }, preset))
}

/// Meta's `verify_token`: only for a preset that answers Meta's
/// subscription `GET`.
pub fn verify_token(
    at: &At,
    raw: Option<Secret>,
    preset: Option<&Preset>,
) -> Result<Option<secrecy::SecretString>, ConfigError> {
    let Some(Secret(token)) = raw else {
        return Ok(None);
    };
    if preset.and_then(|p| p.handshake) != Some(crate::events::Handshake::MetaSubscription) {
        return Err(at.field("verify_token").error(
            "applies only to the meta, whatsapp and instagram schemes (Meta's subscription GET)",
        ));
    }
    Ok(Some(token))
}

/// The fields a preset leaves to the route: its secrets or keys, and
/// `tolerance` and `public_url` where its signature uses them.
fn preset_fields(preset: Option<&Preset>, has_public_key_form: bool) -> Vec<&'static str> {
    let mut fields = vec![];
    match preset.map(|p| &p.kind) {
        Some(PresetKind::PublicKey(_)) | None => {}
        Some(_) => fields.push("secrets"),
    }
    if has_public_key_form {
        fields.push("public_keys");
    }
    let timestamped = match preset.map(|p| &p.kind) {
        Some(PresetKind::Hmac(spec)) => spec.sources.iter().any(|s| s.timestamp.is_some()),
        Some(PresetKind::PublicKey(spec)) => spec.timestamp.is_some(),
        _ => false,
    };
    if timestamped {
        fields.push("tolerance");
    }
    if let Some(PresetKind::Hmac(spec)) = preset.map(|p| &p.kind) {
        if spec.sources.iter().any(|s| s.payload.uses(&Part::Url)) {
            fields.push("public_url");
        }
    }
    fields
}

/// Refuses the first field written that the scheme does not take, saying
/// why.
fn check_given(
    at: &At,
    raw: &RawVerify,
    allowed: &[&str],
    preset_fields: &[&str],
    is_preset: bool,
) -> Result<(), ConfigError> {
    let given = [
        ("header", raw.header.is_some()),
        ("algorithm", raw.algorithm.is_some()),
        ("encoding", raw.encoding.is_some()),
        ("prefix", raw.prefix.is_some()),
        ("separator", raw.separator.is_some()),
        ("secret_encoding", raw.secret_encoding.is_some()),
        ("payload", raw.payload.is_some()),
        ("timestamp", raw.timestamp.is_some()),
        ("tolerance", raw.tolerance.is_some()),
        ("public_url", raw.public_url.is_some()),
        ("secrets", raw.secrets.is_some()),
        ("public_keys", raw.public_keys.is_some()),
        ("algorithms", raw.algorithms.is_some()),
        ("keys", raw.keys.is_some()),
        ("jwks_url", raw.jwks_url.is_some()),
        ("jwks_refresh", raw.jwks_refresh.is_some()),
        ("jwks_min_refetch", raw.jwks_min_refetch.is_some()),
        ("jwks_timeout", raw.jwks_timeout.is_some()),
        ("issuer", raw.issuer.is_some()),
        ("audience", raw.audience.is_some()),
        ("required_claims", raw.required_claims.is_some()),
        ("claims", raw.claims.is_some()),
        ("leeway", raw.leeway.is_some()),
        ("max_age", raw.max_age.is_some()),
        ("body_sha256_claim", raw.body_sha256_claim.is_some()),
    ];
    let Some((field, _)) = given
        .into_iter()
        .find(|(field, present)| *present && !allowed.contains(field))
    else {
        return Ok(());
    };
    let scheme = &raw.scheme;
    let takes = preset_fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let why = if is_preset && field == "secrets" {
        format!("`{scheme}` checks signatures with the sender's public keys: it takes {takes}, no shared secrets")
    } else if field == "public_keys" {
        let rest = if is_preset {
            format!("; it takes {takes}")
        } else {
            String::new()
        };
        format!("`{scheme}` takes no public keys (they apply to discord, sendgrid and standard_webhooks){rest}")
    } else if is_preset {
        format!("is fixed by the `{scheme}` preset; it takes only {takes}")
    } else {
        format!("does not apply to scheme `{scheme}`")
    };
    Err(at.field(field).error(why))
}

/// A signature made with the sender's private key: `public_keys`, never
/// `secrets`.
fn public_key_kind(
    at: &At,
    raw: RawVerify,
    spec: Option<PublicKeySpec>,
    tolerance: Option<Duration>,
) -> Result<SpecKind, ConfigError> {
    if raw.secrets.is_some() {
        return Err(at.field("secrets").error(format!(
            "`{}` with `public_keys` checks signatures made with the sender's private key and takes no `secrets`: give one or the other",
            raw.scheme
        )));
    }
    let mut spec = spec.expect("public-key presets have a public-key form");
    if let (Some(ts), Some(t)) = (&mut spec.timestamp, tolerance) {
        ts.tolerance = t;
    }
    let keys = public_keys(at, &spec, raw.public_keys)?;
    Ok(SpecKind::PublicKey { spec, keys })
}

/// A preset's fixed spec, with the route's `tolerance` and `public_url`.
fn preset_kind(
    at: &At,
    raw: RawVerify,
    preset: &Preset,
    has_public_key_form: bool,
    tolerance: Option<Duration>,
    public_url: Option<String>,
) -> Result<SpecKind, ConfigError> {
    let scheme = &raw.scheme;
    let mut spec = match preset.kind.clone() {
        PresetKind::Header(header) => {
            return Ok(SpecKind::Header {
                header,
                presented: Presented::Verbatim,
                secrets: secrets(at, raw.secrets)?,
            })
        }
        PresetKind::BasicAuth => {
            let secrets = secrets(at, raw.secrets)?;
            // `user:password`: without the colon no basic credentials can
            // ever match (the secret's value is never quoted).
            if let Some(i) = secrets
                .iter()
                .position(|s| !s.expose_secret().contains(':'))
            {
                return Err(at.field("secrets").index(i).error(format!(
                    "`{scheme}` uses HTTP basic authentication: write the secret as `user:password`"
                )));
            }
            return Ok(SpecKind::Header {
                header: http::header::AUTHORIZATION,
                presented: Presented::Basic,
                secrets,
            });
        }
        PresetKind::ClientState => {
            return Ok(SpecKind::ClientState {
                secrets: secrets(at, raw.secrets)?,
            })
        }
        PresetKind::Hmac(spec) => spec,
        PresetKind::PublicKey(_) => unreachable!("public-key presets are handled by the caller"),
    };
    for source in &mut spec.sources {
        if let (Some(ts), Some(t)) = (&mut source.timestamp, tolerance) {
            ts.tolerance = t;
        }
        if source.payload.uses(&Part::Url) {
            source.public_url = Some(public_url.clone().ok_or_else(|| {
                at.field("public_url").error(format!(
                    "required for `{scheme}`: the URL the sender posts to, which it signs"
                ))
            })?);
        }
    }
    if raw.secrets.is_none() && has_public_key_form {
        return Err(at.field("secrets").error(format!(
            "`{scheme}` needs `secrets` (HMAC signatures) or `public_keys` (public-key signatures)"
        )));
    }
    hmac_kind(at, spec, raw.secrets)
}

/// HMAC with the route's secrets, each decoding to a key.
fn hmac_kind(
    at: &At,
    spec: HmacSpec,
    raw_secrets: Option<Vec<Secret>>,
) -> Result<SpecKind, ConfigError> {
    let secrets = secrets(at, raw_secrets)?;
    check_secrets_decode(at, &spec, &secrets)?;
    Ok(SpecKind::Hmac { spec, secrets })
}

//! `verify: { scheme: jwt, … }`: the algorithms, where their keys come
//! from, and the claims a token must carry. Errors name a key or a secret
//! by index, never by value.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::super::leaf::Parsed;
use super::super::raw::RawVerify;
use super::super::ConfigError;
use super::keys::secrets;
use super::At;
use crate::verify::jwt::keys::MIN_SECRET_BYTES;
use crate::verify::{JwksSource, JwtAlgorithm, JwtKey, JwtSpec, SpecKind};

/// Every field `scheme: jwt` takes.
pub const FIELDS: &[&str] = &[
    "header",
    "algorithms",
    "secrets",
    "keys",
    "jwks_url",
    "jwks_refresh",
    "jwks_min_refetch",
    "jwks_timeout",
    "issuer",
    "audience",
    "required_claims",
    "claims",
    "leeway",
    "max_age",
    "body_sha256_claim",
];

const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(3600);
const DEFAULT_JWKS_MIN_REFETCH: Duration = Duration::from_secs(60);
const DEFAULT_JWKS_TIMEOUT: Duration = Duration::from_secs(5);

fn duration(raw: Option<Parsed<Duration>>, default: Duration) -> Duration {
    raw.map_or(default, Parsed::into_inner)
}

/// The route's JWT spec and inline keys.
pub fn kind(at: &At, mut raw: RawVerify) -> Result<SpecKind, ConfigError> {
    let algorithms = algorithms(at, raw.algorithms.take())?;
    let keys = key_material(at, &mut raw, &algorithms)?;
    let jwks = jwks_source(at, &mut raw)?;
    let audiences = raw.audience.map(|a| a.into_vec()).unwrap_or_default();
    let claims: Vec<(String, serde_json::Value)> =
        raw.claims.unwrap_or_default().into_iter().collect();
    // A JWKS such as Google's signs tokens for every one of its customers:
    // without something naming this receiver, theirs would pass here.
    if jwks.is_some()
        && audiences.is_empty()
        && claims.is_empty()
        && raw.body_sha256_claim.is_none()
    {
        return Err(at.field("audience").error(
            "required with `jwks_url`: the key server signs tokens for other receivers too, which would be accepted here; set `audience` (or `claims`, or `body_sha256_claim`)",
        ));
    }
    let spec = JwtSpec {
        header: raw
            .header
            .map_or(http::header::AUTHORIZATION, Parsed::into_inner),
        algorithms,
        jwks,
        issuers: raw.issuer.map(|i| i.into_vec()).unwrap_or_default(),
        audiences,
        required_claims: raw.required_claims.unwrap_or_default(),
        claims,
        leeway: duration(raw.leeway, DEFAULT_LEEWAY),
        max_age: raw.max_age.map(Parsed::into_inner),
        body_sha256_claim: raw.body_sha256_claim,
    };
    Ok(SpecKind::Jwt { spec, keys })
}

fn algorithms(at: &At, raw: Option<Vec<String>>) -> Result<Vec<JwtAlgorithm>, ConfigError> {
    let at = at.field("algorithms");
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Err(at.error(
            "required for scheme `jwt`: the `alg` values accepted, from HS256, RS256, ES256, EdDSA",
        ));
    }
    let mut out = Vec::new();
    for (i, name) in raw.iter().enumerate() {
        let alg = JwtAlgorithm::parse(name).ok_or_else(|| {
            let why = if name.eq_ignore_ascii_case("none") {
                "`none` means an unsigned token and is never accepted".to_string()
            } else {
                format!("unknown algorithm `{name}`: expected one of HS256, RS256, ES256, EdDSA (case-sensitive)")
            };
            at.index(i).error(why)
        })?;
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    Ok(out)
}

/// HS256 secrets and inline JWKs, each matching `algorithms`.
fn key_material(
    at: &At,
    raw: &mut RawVerify,
    algorithms: &[JwtAlgorithm],
) -> Result<Vec<JwtKey>, ConfigError> {
    let hs256 = algorithms.contains(&JwtAlgorithm::Hs256);
    let public = algorithms.iter().any(|a| *a != JwtAlgorithm::Hs256);
    let mut keys = Vec::new();
    match (hs256, raw.secrets.take()) {
        (true, secrets_raw) => {
            let secrets = secrets(at, secrets_raw).map_err(|_| {
                at.field("secrets").error(format!(
                    "HS256 needs `secrets` (each at least {MIN_SECRET_BYTES} bytes; list several to rotate)"
                ))
            })?;
            for (i, s) in secrets.iter().enumerate() {
                if s.expose_secret().len() < MIN_SECRET_BYTES {
                    return Err(at.field("secrets").index(i).error(format!(
                        "an HS256 secret must be at least {MIN_SECRET_BYTES} bytes"
                    )));
                }
                keys.push(JwtKey::secret(s.expose_secret().as_bytes()));
            }
        }
        (false, Some(_)) => {
            return Err(at.field("secrets").error(
                "`secrets` are HS256 keys, and `algorithms` does not list HS256: public-key algorithms take `keys` (JWKs) or `jwks_url`",
            ))
        }
        (false, None) => {}
    }
    if !public && (raw.keys.is_some() || raw.jwks_url.is_some()) {
        let field = if raw.keys.is_some() {
            "keys"
        } else {
            "jwks_url"
        };
        return Err(at.field(field).error(
            "public keys apply to RS256, ES256 and EdDSA; HS256 tokens are checked with `secrets` only",
        ));
    }
    if public && raw.keys.is_none() && raw.jwks_url.is_none() {
        return Err(at.field("jwks_url").error(
            "public-key algorithms need the sender's keys: `jwks_url` (fetched) or `keys` (JWKs written inline)",
        ));
    }
    for (i, jwk) in raw.keys.take().unwrap_or_default().iter().enumerate() {
        let at = at.field("keys").index(i);
        let key = JwtKey::from_jwk(jwk).map_err(|why| at.error(why))?;
        if !algorithms.contains(&key.algorithm()) {
            return Err(at.error(format!(
                "this is a {} key, and `algorithms` does not list {0}",
                key.algorithm().as_str()
            )));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn jwks_source(at: &At, raw: &mut RawVerify) -> Result<Option<JwksSource>, ConfigError> {
    let Some(url) = raw.jwks_url.take() else {
        let tuning = [
            ("jwks_refresh", raw.jwks_refresh.is_some()),
            ("jwks_min_refetch", raw.jwks_min_refetch.is_some()),
            ("jwks_timeout", raw.jwks_timeout.is_some()),
        ];
        if let Some((field, _)) = tuning.iter().find(|(_, given)| *given) {
            return Err(at.field(field).error("applies only with `jwks_url`"));
        }
        return Ok(None);
    };
    let at_url = at.field("jwks_url");
    let uri: http::Uri = url
        .parse()
        .map_err(|_| at_url.error("not a URL (expected https://host/path)"))?;
    if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
        return Err(at_url.error("expected an http:// or https:// URL with a host"));
    }
    let source = JwksSource {
        url: uri,
        refresh: duration(raw.jwks_refresh.take(), DEFAULT_JWKS_REFRESH),
        min_refetch: duration(raw.jwks_min_refetch.take(), DEFAULT_JWKS_MIN_REFETCH),
        timeout: duration(raw.jwks_timeout.take(), DEFAULT_JWKS_TIMEOUT),
    };
    if source.min_refetch < Duration::from_secs(1) {
        return Err(at
            .field("jwks_min_refetch")
            .error("at least 1s: it bounds how often the key server is asked"));
    }
    if source.timeout.is_zero() {
        return Err(at.field("jwks_timeout").error("must be more than zero"));
    }
    Ok(Some(source))
}

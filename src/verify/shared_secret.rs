//! Shared-secret headers: `scheme: header` (TIMIFY's custom header),
//! `scheme: api_key` (with `Authorization: Bearer <key>`), and HTTP basic
//! authentication (`Authorization: Basic <base64 of user:password>`, the
//! secret written `user:password`: Postmark, Chargebee).
//!
//! The presented value and every secret are hashed to SHA-256 and the
//! fixed-length digests compared in constant time, so neither the secret's
//! content nor its length leaks through timing. Every secret is compared,
//! with no early exit.

use http::{HeaderMap, HeaderName};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::{Verified, VerifyError};

/// How the secret is written in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// The whole value is the secret.
    Verbatim,
    /// `Bearer <key>` (API keys in `Authorization`).
    Bearer,
    /// `Basic <base64 of user:password>` (RFC 7617); the secret is
    /// `user:password`.
    Basic,
}

pub struct SharedSecretVerifier {
    header: HeaderName,
    presented: Presented,
    digests: Vec<[u8; 32]>,
}

impl SharedSecretVerifier {
    pub fn new(header: HeaderName, presented: Presented, secrets: &[SecretString]) -> Self {
        let digests = secrets
            .iter()
            .map(|s| Sha256::digest(s.expose_secret().as_bytes()).into())
            .collect();
        SharedSecretVerifier {
            header,
            presented,
            digests,
        }
    }

    pub fn verify(&self, headers: &HeaderMap) -> Result<Verified, VerifyError> {
        let value = headers
            .get(&self.header)
            .ok_or(VerifyError::MissingCredentials)?
            .as_bytes();
        let digest: [u8; 32] = match self.presented {
            Presented::Verbatim => Sha256::digest(value).into(),
            Presented::Bearer => {
                Sha256::digest(bearer_token(value).ok_or(VerifyError::BadCredentials)?).into()
            }
            Presented::Basic => {
                Sha256::digest(basic_credentials(value).ok_or(VerifyError::BadCredentials)?).into()
            }
        };

        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, expected) in self.digests.iter().enumerate() {
            let hit = digest.ct_eq(expected) & !found;
            index.conditional_assign(&(i as u32), hit);
            found |= hit;
        }
        if bool::from(found) {
            Ok(Verified {
                secret_index: Some(index as usize),
                strip_header: Some(self.header.clone()),
            })
        } else {
            Err(VerifyError::BadCredentials)
        }
    }
}

/// The decoded `user:password` of `Basic <base64>`, the scheme matched
/// case-insensitively (RFC 7617).
fn basic_credentials(value: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let (scheme, encoded) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .ok()?;
    decoded.contains(&b':').then_some(decoded)
}

/// `Bearer <token>`, the scheme matched case-insensitively (RFC 6750).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::secrets;
    use http::HeaderValue;

    fn with(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn custom_header_matches_any_secret_and_is_stripped() {
        let v = SharedSecretVerifier::new(
            HeaderName::from_static("x-timify-secret"),
            Presented::Verbatim,
            &secrets(&["old", "new"]),
        );
        let ok = v.verify(&with("X-Timify-Secret", "new")).unwrap();
        assert_eq!(ok.secret_index, Some(1));
        assert_eq!(ok.strip_header.unwrap(), "x-timify-secret");
        assert_eq!(
            v.verify(&with("X-Timify-Secret", "old"))
                .unwrap()
                .secret_index,
            Some(0)
        );
    }

    #[test]
    fn wrong_prefix_suffix_and_missing_values_are_rejected() {
        let v = SharedSecretVerifier::new(
            HeaderName::from_static("x-timify-secret"),
            Presented::Verbatim,
            &secrets(&["secret"]),
        );
        for bad in ["secre", "secret ", "secretx", "SECRET", ""] {
            assert_eq!(
                v.verify(&with("X-Timify-Secret", bad)),
                Err(VerifyError::BadCredentials),
                "{bad:?}"
            );
        }
        assert_eq!(
            v.verify(&HeaderMap::new()),
            Err(VerifyError::MissingCredentials)
        );
        assert_eq!(
            v.verify(&with("X-Other", "secret")),
            Err(VerifyError::MissingCredentials)
        );
    }

    #[test]
    fn bearer_api_keys() {
        let v = SharedSecretVerifier::new(
            http::header::AUTHORIZATION,
            Presented::Bearer,
            &secrets(&["k1"]),
        );
        assert!(v.verify(&with("Authorization", "Bearer k1")).is_ok());
        assert!(v.verify(&with("Authorization", "bearer k1")).is_ok());
        // Another seven-byte scheme before the right key is not Bearer
        // (kills the mutant that accepts any scheme with a token).
        for bad in [
            "k1",
            "Basic k1",
            "Bearer k2",
            "Bearer ",
            "Bearerk1",
            "Digest k1",
            "Token: k1",
        ] {
            assert_eq!(
                v.verify(&with("Authorization", bad)),
                Err(VerifyError::BadCredentials),
                "{bad}"
            );
        }
    }

    /// RFC 7617 section 2's example (`Aladdin:open sesame`), with every
    /// rotated secret tried.
    #[test]
    fn basic_auth_credentials() {
        let v = SharedSecretVerifier::new(
            http::header::AUTHORIZATION,
            Presented::Basic,
            &secrets(&["old:pw", "Aladdin:open sesame"]),
        );
        let ok = v
            .verify(&with("Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="))
            .unwrap();
        assert_eq!(ok.secret_index, Some(1));
        assert_eq!(ok.strip_header.unwrap(), "authorization");
        assert!(v.verify(&with("Authorization", "basic b2xkOnB3")).is_ok());
        for bad in [
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZR==",
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZA==",
            "Bearer QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "Basic !!!",
            "Basic ",
            "Aladdin:open sesame",
        ] {
            assert_eq!(
                v.verify(&with("Authorization", bad)),
                Err(VerifyError::BadCredentials),
                "{bad}"
            );
        }
        assert_eq!(
            v.verify(&HeaderMap::new()),
            Err(VerifyError::MissingCredentials)
        );
    }
}

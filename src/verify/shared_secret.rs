//! Shared-secret headers: `scheme: header` (TIMIFY's custom header) and
//! `scheme: api_key` (with `Authorization: Bearer <key>`).
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

pub struct SharedSecretVerifier {
    header: HeaderName,
    /// The value is `Bearer <key>` (API keys in `Authorization`).
    bearer: bool,
    digests: Vec<[u8; 32]>,
}

impl SharedSecretVerifier {
    pub fn new(header: HeaderName, bearer: bool, secrets: &[SecretString]) -> Self {
        let digests = secrets
            .iter()
            .map(|s| Sha256::digest(s.expose_secret().as_bytes()).into())
            .collect();
        SharedSecretVerifier {
            header,
            bearer,
            digests,
        }
    }

    pub fn verify(&self, headers: &HeaderMap) -> Result<Verified, VerifyError> {
        let value = headers
            .get(&self.header)
            .ok_or(VerifyError::MissingCredentials)?
            .as_bytes();
        let presented = if self.bearer {
            bearer_token(value).ok_or(VerifyError::BadCredentials)?
        } else {
            value
        };
        let digest: [u8; 32] = Sha256::digest(presented).into();

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
            false,
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
            false,
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
        let v = SharedSecretVerifier::new(http::header::AUTHORIZATION, true, &secrets(&["k1"]));
        assert!(v.verify(&with("Authorization", "Bearer k1")).is_ok());
        assert!(v.verify(&with("Authorization", "bearer k1")).is_ok());
        for bad in ["k1", "Basic k1", "Bearer k2", "Bearer ", "Bearerk1"] {
            assert_eq!(
                v.verify(&with("Authorization", bad)),
                Err(VerifyError::BadCredentials),
                "{bad}"
            );
        }
    }
}

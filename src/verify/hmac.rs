//! HMAC signatures over the raw body (`scheme: hmac` and its presets).
//!
//! The signature header is decoded (hex or base64) and compared, in constant
//! time, with the MAC computed from each configured secret. It is never
//! string-compared, so upper-case hex verifies, and a signature of the wrong
//! length is malformed rather than "almost right".

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::{Verified, VerifyError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "sha1" => Some(Algorithm::Sha1),
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn output_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

impl Encoding {
    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "hex" => Some(Encoding::Hex),
            "base64" => Some(Encoding::Base64),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        }
    }

    fn decode(self, text: &[u8]) -> Option<Vec<u8>> {
        match self {
            Encoding::Hex => hex::decode(text).ok(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        }
    }
}

/// Where a signature is and how it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureSource {
    pub header: HeaderName,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Text before the encoded MAC, e.g. `sha1=`; matched case-insensitively.
    pub prefix: String,
}

/// The signature sources in order of preference: the first one whose header
/// is present is the one checked (GitHub sends SHA-256 and legacy SHA-1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacSpec {
    pub sources: Vec<SignatureSource>,
}

/// A keyed MAC state, computed once per secret at start-up and cloned per
/// request, so the key schedule is not redone on every request.
#[derive(Clone)]
enum KeyedMac {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

impl KeyedMac {
    fn new(algorithm: Algorithm, key: &[u8]) -> KeyedMac {
        // HMAC accepts keys of any length, so this cannot fail.
        const ANY_LENGTH: &str = "HMAC takes keys of any length";
        match algorithm {
            Algorithm::Sha1 => KeyedMac::Sha1(Hmac::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::Sha256 => KeyedMac::Sha256(Hmac::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::Sha512 => KeyedMac::Sha512(Hmac::new_from_slice(key).expect(ANY_LENGTH)),
        }
    }

    fn compute(&self, body: &[u8]) -> Vec<u8> {
        match self.clone() {
            KeyedMac::Sha1(mut m) => {
                m.update(body);
                m.finalize().into_bytes().to_vec()
            }
            KeyedMac::Sha256(mut m) => {
                m.update(body);
                m.finalize().into_bytes().to_vec()
            }
            KeyedMac::Sha512(mut m) => {
                m.update(body);
                m.finalize().into_bytes().to_vec()
            }
        }
    }
}

pub struct HmacVerifier {
    /// Each source with one keyed MAC per secret, in secret order.
    sources: Vec<(SignatureSource, Vec<KeyedMac>)>,
}

impl HmacVerifier {
    pub fn new(spec: HmacSpec, secrets: &[SecretString]) -> HmacVerifier {
        let sources = spec
            .sources
            .into_iter()
            .map(|source| {
                let keys = secrets
                    .iter()
                    .map(|s| KeyedMac::new(source.algorithm, s.expose_secret().as_bytes()))
                    .collect();
                (source, keys)
            })
            .collect();
        HmacVerifier { sources }
    }

    pub fn verify(&self, headers: &HeaderMap, body: &Bytes) -> Result<Verified, VerifyError> {
        let (source, keys) = self
            .sources
            .iter()
            .find(|(source, _)| headers.contains_key(&source.header))
            .ok_or(VerifyError::MissingCredentials)?;

        // Every value of the header is a candidate (a sender may repeat it).
        let candidates: Vec<Vec<u8>> = headers
            .get_all(&source.header)
            .iter()
            .filter_map(|value| decode_candidate(source, value.as_bytes()))
            .collect();
        if candidates.is_empty() {
            return Err(VerifyError::MalformedSignature);
        }

        for (index, key) in keys.iter().enumerate() {
            let expected = key.compute(body);
            let matched = candidates
                .iter()
                .fold(subtle::Choice::from(0), |acc, c| acc | expected.ct_eq(c));
            if bool::from(matched) {
                return Ok(Verified {
                    secret_index: Some(index),
                    strip_header: None,
                });
            }
        }
        Err(VerifyError::BadSignature)
    }
}

/// Strips the prefix and decodes; `None` when the value is not a signature
/// of this source's shape.
fn decode_candidate(source: &SignatureSource, value: &[u8]) -> Option<Vec<u8>> {
    let value = value.trim_ascii();
    let prefix = source.prefix.as_bytes();
    if value.len() < prefix.len() || !value[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let decoded = source.encoding.decode(&value[prefix.len()..])?;
    (decoded.len() == source.algorithm.output_len()).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{presets::hmac_preset, secrets};
    use http::HeaderValue;

    fn sign(alg: Algorithm, secret: &str, body: &[u8]) -> Vec<u8> {
        KeyedMac::new(alg, secret.as_bytes()).compute(body)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn trutac(secrets_: &[&str]) -> HmacVerifier {
        HmacVerifier::new(hmac_preset("trutac").unwrap(), &secrets(secrets_))
    }

    #[test]
    fn trutac_sign_verify_tamper() {
        let body = Bytes::from_static(br#"{"action":"clocking.created","clocking":{"id":7}}"#);
        let sig = format!(
            "sha1={}",
            hex::encode(sign(Algorithm::Sha1, "s3cret", &body))
        );
        let v = trutac(&["s3cret"]);
        let ok = v.verify(&headers(&[("TT-Hook-Signature", &sig)]), &body);
        assert_eq!(ok.unwrap().secret_index, Some(0));

        let tampered = Bytes::from_static(br#"{"action":"clocking.created","clocking":{"id":8}}"#);
        assert_eq!(
            v.verify(&headers(&[("TT-Hook-Signature", &sig)]), &tampered),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            trutac(&["other"]).verify(&headers(&[("TT-Hook-Signature", &sig)]), &body),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn upper_case_hex_and_prefix_verify() {
        let body = Bytes::from_static(b"ping");
        let mac = hex::encode_upper(sign(Algorithm::Sha1, "k", &body));
        let v = trutac(&["k"]);
        for sig in [format!("sha1={mac}"), format!("SHA1={mac}")] {
            assert!(v
                .verify(&headers(&[("tt-hook-signature", &sig)]), &body)
                .is_ok());
        }
    }

    #[test]
    fn every_rotated_secret_is_tried() {
        let body = Bytes::from_static(b"{}");
        let sig = format!("sha1={}", hex::encode(sign(Algorithm::Sha1, "new", &body)));
        let v = trutac(&["old", "new"]);
        let ok = v
            .verify(&headers(&[("TT-Hook-Signature", &sig)]), &body)
            .unwrap();
        assert_eq!(ok.secret_index, Some(1));
    }

    #[test]
    fn missing_and_malformed_signatures() {
        let body = Bytes::from_static(b"{}");
        let v = trutac(&["k"]);
        assert_eq!(
            v.verify(&headers(&[]), &body),
            Err(VerifyError::MissingCredentials)
        );
        let good_hex = hex::encode(sign(Algorithm::Sha1, "k", &body));
        for bad in [
            "sha1=zz".to_string(),
            "sha1=".to_string(),
            good_hex.clone(),                   // no prefix
            format!("sha256={good_hex}"),       // wrong prefix
            format!("sha1={}", &good_hex[2..]), // wrong length
            "garbage".to_string(),
        ] {
            assert_eq!(
                v.verify(&headers(&[("TT-Hook-Signature", &bad)]), &body),
                Err(VerifyError::MalformedSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn any_repeated_header_value_may_match() {
        let body = Bytes::from_static(b"x");
        let good = format!("sha1={}", hex::encode(sign(Algorithm::Sha1, "k", &body)));
        let v = trutac(&["k"]);
        let h = headers(&[
            ("TT-Hook-Signature", "sha1=00"),
            ("TT-Hook-Signature", &good),
        ]);
        assert!(v.verify(&h, &body).is_ok());
    }

    #[test]
    fn github_prefers_sha256_and_falls_back_to_sha1() {
        let body = Bytes::from_static(b"{\"zen\":\"x\"}");
        let v = HmacVerifier::new(hmac_preset("github").unwrap(), &secrets(&["gh"]));
        let s256 = format!(
            "sha256={}",
            hex::encode(sign(Algorithm::Sha256, "gh", &body))
        );
        let s1 = format!("sha1={}", hex::encode(sign(Algorithm::Sha1, "gh", &body)));
        assert!(v
            .verify(&headers(&[("X-Hub-Signature-256", &s256)]), &body)
            .is_ok());
        assert!(v
            .verify(&headers(&[("X-Hub-Signature", &s1)]), &body)
            .is_ok());
        // When both are sent, the SHA-256 one decides: a bad SHA-256 is not
        // rescued by a good SHA-1.
        let bad256 = format!("sha256={}", hex::encode([0u8; 32]));
        assert_eq!(
            v.verify(
                &headers(&[("X-Hub-Signature-256", &bad256), ("X-Hub-Signature", &s1)]),
                &body
            ),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn generic_base64_sha512() {
        let body = Bytes::from_static(b"payload");
        let spec = HmacSpec {
            sources: vec![SignatureSource {
                header: HeaderName::from_static("x-sig"),
                algorithm: Algorithm::Sha512,
                encoding: Encoding::Base64,
                prefix: String::new(),
            }],
        };
        let v = HmacVerifier::new(spec, &secrets(&["k"]));
        let sig =
            base64::engine::general_purpose::STANDARD.encode(sign(Algorithm::Sha512, "k", &body));
        assert!(v.verify(&headers(&[("x-sig", &sig)]), &body).is_ok());
        assert_eq!(
            v.verify(&headers(&[("x-sig", "not base64!")]), &body),
            Err(VerifyError::MalformedSignature)
        );
    }
}

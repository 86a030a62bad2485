//! Microsoft Graph change notifications carry no signature: each
//! notification in the body's `value` array carries the `clientState` the
//! subscription was created with, a shared secret. A request is verified
//! when it holds at least one notification and every one's `clientState`
//! equals one of the route's secrets (several during a rotation).
//!
//! As for shared-secret headers (`shared_secret.rs`), the presented value
//! and every secret are hashed to SHA-256 and the digests compared in
//! constant time, every secret each time. The body is forwarded as
//! received, `clientState` included: the consumer may check it too.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::{Verified, VerifyError};

pub struct ClientStateVerifier {
    digests: Vec<[u8; 32]>,
}

impl ClientStateVerifier {
    pub fn new(secrets: &[SecretString]) -> Self {
        ClientStateVerifier {
            digests: secrets
                .iter()
                .map(|s| Sha256::digest(s.expose_secret().as_bytes()).into())
                .collect(),
        }
    }

    pub fn verify(&self, body: &[u8]) -> Result<Verified, VerifyError> {
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| VerifyError::MissingCredentials)?;
        let notifications = doc
            .get("value")
            .and_then(serde_json::Value::as_array)
            .filter(|v| !v.is_empty())
            .ok_or(VerifyError::MissingCredentials)?;
        let mut first = None;
        for n in notifications {
            let state = n
                .get("clientState")
                .and_then(serde_json::Value::as_str)
                .ok_or(VerifyError::MissingCredentials)?;
            let index = self.matching(state).ok_or(VerifyError::BadCredentials)?;
            first.get_or_insert(index);
        }
        Ok(Verified {
            secret_index: first,
            strip_header: None,
        })
    }

    /// The index of the secret `presented` equals, comparing with all.
    fn matching(&self, presented: &str) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        let mut index = 0u32;
        for (i, expected) in self.digests.iter().enumerate() {
            let hit = digest.ct_eq(expected) & !found;
            index.conditional_assign(&(i as u32), hit);
            found |= hit;
        }
        bool::from(found).then_some(index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::secrets;

    fn body(states: &[&str]) -> Vec<u8> {
        let value: Vec<_> = states
            .iter()
            .map(|s| serde_json::json!({"subscriptionId": "s", "changeType": "created", "clientState": s}))
            .collect();
        serde_json::to_vec(&serde_json::json!({ "value": value })).unwrap()
    }

    #[test]
    fn every_notification_must_carry_a_configured_client_state() {
        let v = ClientStateVerifier::new(&secrets(&["old-state", "new-state"]));
        assert_eq!(
            v.verify(&body(&["new-state"])).unwrap().secret_index,
            Some(1)
        );
        // During a rotation, both.
        assert_eq!(
            v.verify(&body(&["old-state", "new-state"]))
                .unwrap()
                .secret_index,
            Some(0)
        );
        for (states, error) in [
            (&["new-state", "guess"][..], VerifyError::BadCredentials),
            (&["new-stat"][..], VerifyError::BadCredentials),
            (&[][..], VerifyError::MissingCredentials),
        ] {
            assert_eq!(v.verify(&body(states)).unwrap_err(), error, "{states:?}");
        }
        for bad in [
            &br#"{"value":[{"changeType":"created"}]}"#[..],
            br#"{"value":[{"clientState":1}]}"#,
            br#"{"value":{}}"#,
            b"not json",
            b"",
        ] {
            assert_eq!(
                v.verify(bad).unwrap_err(),
                VerifyError::MissingCredentials,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! Console sessions: held in memory, each under a random 256-bit id sent
//! as an `HttpOnly`, `SameSite=Strict` cookie, with its own random CSRF
//! token. A session ends at logout, after [`SESSION_LIFETIME`], or as soon
//! as `admin.token` changes (each session remembers a digest of the token
//! it was opened with). Ids and tokens come from the OS's CSPRNG and are
//! compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a session lasts, whatever its use.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions held at most; logging in past it ends the oldest.
const MAX_SESSIONS: usize = 1000;
/// The cookie's name.
pub const COOKIE: &str = "hookgate_session";

/// A logged-in operator.
#[derive(Clone)]
pub struct Session {
    /// The CSRF token every state-changing form carries.
    pub csrf: String,
    expires: Instant,
    /// SHA-256 of the `admin.token` this session was opened with.
    token: [u8; 32],
}

#[derive(Default)]
pub struct Sessions {
    /// By SHA-256 of the session id: the map never holds a usable id.
    open: Mutex<HashMap<[u8; 32], Session>>,
}

/// SHA-256, as a fixed-length value to compare in constant time.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// 32 random bytes, hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

/// Whether `presented` is the admin token (constant time, as the bearer
/// check: fixed-length digests, so neither content nor length leaks).
pub fn token_matches(presented: &[u8], token: &SecretString) -> bool {
    bool::from(digest(presented).ct_eq(&digest(token.expose_secret().as_bytes())))
}

impl Sessions {
    /// Opens a session for the holder of `token`; returns its id.
    pub fn open(&self, token: &SecretString) -> String {
        let id = random_hex();
        let session = Session {
            csrf: random_hex(),
            expires: Instant::now() + SESSION_LIFETIME,
            token: digest(token.expose_secret().as_bytes()),
        };
        let mut open = self.open.lock().unwrap();
        let now = Instant::now();
        open.retain(|_, s| s.expires > now);
        if open.len() >= MAX_SESSIONS {
            if let Some(oldest) = open.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                open.remove(&oldest);
            }
        }
        open.insert(digest(id.as_bytes()), session);
        id
    }

    /// The session `id` names, if it is open, unexpired and was opened with
    /// the current `token`; otherwise it is ended.
    pub fn find(&self, id: &str, token: &SecretString) -> Option<Session> {
        let key = digest(id.as_bytes());
        let mut open = self.open.lock().unwrap();
        let session = open.get(&key)?;
        let current = digest(token.expose_secret().as_bytes());
        if session.expires > Instant::now() && bool::from(session.token.ct_eq(&current)) {
            return Some(session.clone());
        }
        open.remove(&key);
        None
    }

    /// Ends the session `id` names.
    pub fn close(&self, id: &str) {
        self.open.lock().unwrap().remove(&digest(id.as_bytes()));
    }
}

impl Session {
    /// Whether a form's CSRF field is this session's (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(digest(presented.as_bytes()).ct_eq(&digest(self.csrf.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_with_its_token_only_and_ends_when_the_token_changes() {
        let sessions = Sessions::default();
        let token = SecretString::from("first-token");
        let id = sessions.open(&token);
        assert_eq!(id.len(), 64, "256 bits, hex");
        let s = sessions.find(&id, &token).expect("open");
        assert!(s.csrf_matches(&s.csrf.clone()));
        assert!(!s.csrf_matches("forged"));
        assert!(!s.csrf_matches(""));
        assert!(sessions.find("not-an-id", &token).is_none());
        // A token change on reload ends it, even if the old token returns.
        assert!(sessions.find(&id, &SecretString::from("second")).is_none());
        assert!(sessions.find(&id, &token).is_none());
        let id = sessions.open(&token);
        sessions.close(&id);
        assert!(sessions.find(&id, &token).is_none());
    }

    #[test]
    fn ids_and_csrf_tokens_differ_between_sessions() {
        let sessions = Sessions::default();
        let token = SecretString::from("t");
        let (a, b) = (sessions.open(&token), sessions.open(&token));
        assert_ne!(a, b);
        let (sa, sb) = (
            sessions.find(&a, &token).unwrap(),
            sessions.find(&b, &token).unwrap(),
        );
        assert_ne!(sa.csrf, sb.csrf);
        assert!(token_matches(b"t", &token));
        assert!(!token_matches(b"T", &token));
    }
}

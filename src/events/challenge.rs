//! Handshakes answered from the query string, before any body is read:
//! Meta's subscription `GET` (`hub.mode=subscribe`, `hub.verify_token`,
//! `hub.challenge`), Dropbox's verification `GET` (`challenge`) and
//! Microsoft Graph's validation (`validationToken`, on a `POST` or `GET`).
//!
//! Unlike the rest of `events`, these are reached by requests that carry no
//! signature: the senders do not sign them. So an answer here only ever
//! echoes one bounded query value, as `text/plain` with `nosniff` (never
//! something a browser would render as HTML), Meta's token is compared in
//! constant time and never logged, and nothing of the request goes further
//! than this module: the caller answers and stops.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response};
use http_body_util::Full;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Handshake;

/// The longest challenge echoed, in bytes after URL-decoding. Meta's
/// challenges are short numbers, Dropbox's and Graph's short opaque
/// strings; anything longer is not theirs.
pub const MAX_CHALLENGE_BYTES: usize = 1024;

/// Why a handshake request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Meta: not `subscribe`, or the verify token is missing, wrong, or
    /// not configured (403).
    Forbidden,
    /// The challenge is missing, repeated or longer than
    /// [`MAX_CHALLENGE_BYTES`] (400).
    BadChallenge,
}

/// A route's query-string handshake, ready to answer.
pub struct QueryHandshake {
    kind: Handshake,
    /// SHA-256 of Meta's verify token: compared digest to digest, in
    /// constant time, so neither its content nor its length leaks.
    verify_token: Option<[u8; 32]>,
}

impl QueryHandshake {
    /// The route's query-string handshake, if its handshake is one.
    pub fn new(kind: Handshake, verify_token: Option<&SecretString>) -> Option<QueryHandshake> {
        match kind {
            Handshake::MetaSubscription
            | Handshake::DropboxChallenge
            | Handshake::GraphValidation => Some(QueryHandshake {
                kind,
                verify_token: verify_token
                    .map(|t| Sha256::digest(t.expose_secret().as_bytes()).into()),
            }),
            _ => None,
        }
    }

    /// The answer to a request with this method and query, `None` when it
    /// is not this handshake (it then goes through the pipeline as any
    /// other request would).
    pub fn answer(
        &self,
        method: &Method,
        query: Option<&str>,
    ) -> Option<Result<Response<Full<Bytes>>, Refusal>> {
        let query = query.unwrap_or("");
        match self.kind {
            Handshake::MetaSubscription if method == Method::GET => {
                // A GET without `hub.mode` is not the handshake.
                param(query, "hub.mode")?;
                Some(self.meta(query))
            }
            Handshake::DropboxChallenge if method == Method::GET => {
                param(query, "challenge")?;
                Some(echo(query, "challenge"))
            }
            Handshake::GraphValidation if method == Method::GET || method == Method::POST => {
                param(query, "validationToken")?;
                Some(echo(query, "validationToken"))
            }
            _ => None,
        }
    }

    fn meta(&self, query: &str) -> Result<Response<Full<Bytes>>, Refusal> {
        let mode = single(query, "hub.mode").ok_or(Refusal::Forbidden)?;
        let given = single(query, "hub.verify_token").ok_or(Refusal::Forbidden)?;
        let expected = self.verify_token.as_ref().ok_or(Refusal::Forbidden)?;
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let token_ok: bool = given.ct_eq(expected).into();
        if mode != "subscribe" || !token_ok {
            return Err(Refusal::Forbidden);
        }
        echo(query, "hub.challenge")
    }
}

/// The first value of `name`, URL-decoded; `None` when absent.
fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The value of `name` when it is given exactly once: a repeated parameter
/// is refused rather than guessed at (a proxy might read the other one).
fn single(query: &str, name: &str) -> Option<String> {
    let mut values = form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == name);
    let value = values.next()?.1.into_owned();
    values.next().is_none().then_some(value)
}

/// `name`'s value as the whole body, `text/plain` and `nosniff`.
fn echo(query: &str, name: &str) -> Result<Response<Full<Bytes>>, Refusal> {
    let value = single(query, name)
        .filter(|v| !v.is_empty() && v.len() <= MAX_CHALLENGE_BYTES)
        .ok_or(Refusal::BadChallenge)?;
    let mut r = Response::new(Full::new(Bytes::from(value)));
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn meta(token: Option<&str>) -> QueryHandshake {
        let token = token.map(|t| SecretString::from(t.to_string()));
        QueryHandshake::new(Handshake::MetaSubscription, token.as_ref()).unwrap()
    }

    async fn body(r: Response<Full<Bytes>>) -> String {
        let headers = r.headers().clone();
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn meta_answers_only_the_right_verify_token() {
        let m = meta(Some("tok-1"));
        let ok = "hub.mode=subscribe&hub.verify_token=tok-1&hub.challenge=1158201444";
        let r = m.answer(&Method::GET, Some(ok)).unwrap().unwrap();
        assert_eq!(body(r).await, "1158201444");
        for refused in [
            "hub.mode=subscribe&hub.verify_token=tok-2&hub.challenge=1",
            "hub.mode=subscribe&hub.verify_token=tok-&hub.challenge=1",
            "hub.mode=subscribe&hub.challenge=1",
            "hub.mode=unsubscribe&hub.verify_token=tok-1&hub.challenge=1",
            "hub.mode=subscribe&hub.verify_token=tok-1&hub.verify_token=x&hub.challenge=1",
        ] {
            let r = m.answer(&Method::GET, Some(refused)).unwrap();
            assert_eq!(r.unwrap_err(), Refusal::Forbidden, "{refused}");
        }
        // Without a configured token nothing is answered.
        let r = meta(None).answer(&Method::GET, Some(ok)).unwrap();
        assert_eq!(r.unwrap_err(), Refusal::Forbidden);
        // Not the handshake: a GET without hub.mode, and any POST.
        assert!(m.answer(&Method::GET, None).is_none());
        assert!(m.answer(&Method::POST, Some(ok)).is_none());
    }

    #[tokio::test]
    async fn challenges_are_echoed_decoded_and_bounded() {
        let dropbox = QueryHandshake::new(Handshake::DropboxChallenge, None).unwrap();
        let r = dropbox.answer(&Method::GET, Some("challenge=a%3Cb%3E+c"));
        assert_eq!(body(r.unwrap().unwrap()).await, "a<b> c");
        let long = format!("challenge={}", "x".repeat(MAX_CHALLENGE_BYTES + 1));
        let r = dropbox.answer(&Method::GET, Some(&long)).unwrap();
        assert_eq!(r.unwrap_err(), Refusal::BadChallenge);
        let r = dropbox.answer(&Method::GET, Some("challenge=")).unwrap();
        assert_eq!(r.unwrap_err(), Refusal::BadChallenge);
        assert!(dropbox.answer(&Method::POST, Some("challenge=a")).is_none());

        let graph = QueryHandshake::new(Handshake::GraphValidation, None).unwrap();
        for method in [Method::GET, Method::POST] {
            let r = graph.answer(&method, Some("validationToken=Validation%3A+Testing"));
            assert_eq!(body(r.unwrap().unwrap()).await, "Validation: Testing");
        }
        assert!(graph.answer(&Method::POST, None).is_none());
        assert!(QueryHandshake::new(Handshake::OktaVerification, None).is_none());
    }
}

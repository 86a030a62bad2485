//! HTTP leaves: header names and values, the upstream URL.

use std::fmt;

use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::{Leaf, Parsed};
use crate::reserved_headers::{is_gateway_managed, is_hop_by_hop};

impl Leaf for HeaderName {
    const EXPECTING: &'static str = "a header name";

    fn parse(text: &str) -> Result<Self, String> {
        HeaderName::from_bytes(text.as_bytes()).map_err(|_| "not a valid header name".to_string())
    }
}

/// True for headers that describe the message framing or the connection,
/// which hookgate sets itself on every forwarded request.
fn is_framing(name: &HeaderName) -> bool {
    is_hop_by_hop(name) || name == HOST || name == CONTENT_LENGTH
}

/// A header name in `upstream.forward_headers` or `upstream.relay_headers`:
/// none that hookgate sets or removes itself (listing one would be
/// silently ignored, so it is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedHeader(pub HeaderName);

impl Leaf for ListedHeader {
    const EXPECTING: &'static str = "a header name";

    fn parse(text: &str) -> Result<Self, String> {
        let name = <HeaderName as Leaf>::parse(text)?;
        if is_framing(&name) || is_gateway_managed(&name) {
            return Err(format!(
                "`{name}` is set or removed by hookgate and cannot be listed"
            ));
        }
        Ok(ListedHeader(name))
    }
}

/// A header name that `upstream.headers` may set.
struct SettableName(HeaderName);

impl Leaf for SettableName {
    const EXPECTING: &'static str = "a header name";

    fn parse(text: &str) -> Result<Self, String> {
        let name = <HeaderName as Leaf>::parse(text)?;
        if is_framing(&name) {
            return Err("this header is managed by hookgate and cannot be set".into());
        }
        Ok(SettableName(name))
    }
}

/// Values are marked sensitive: they may carry the upstream's own
/// credentials, and are then never logged.
impl Leaf for HeaderValue {
    const EXPECTING: &'static str = "a header value";

    fn parse(text: &str) -> Result<Self, String> {
        let mut value = HeaderValue::from_str(text)
            .map_err(|_| "the value is not a valid header value".to_string())?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// `upstream.headers`: added to every forwarded request. An error names
/// the header (`upstream.headers.Connection`), never its value.
#[derive(Debug, Clone, Default)]
pub struct SettableHeaders(pub HeaderMap);

impl<'de> Deserialize<'de> for SettableHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = SettableHeaders;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut headers = HeaderMap::new();
                while let Some(Parsed(SettableName(name))) = map.next_key()? {
                    let Parsed(value): Parsed<HeaderValue> = map.next_value()?;
                    headers.insert(name, value);
                }
                Ok(SettableHeaders(headers))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

/// `upstream.url`: an absolute `http://` URL without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl(pub Uri);

impl Leaf for UpstreamUrl {
    const EXPECTING: &'static str = "an http:// URL";

    fn parse(text: &str) -> Result<Self, String> {
        let url: Uri = text.parse().map_err(|e| format!("not a valid URL: {e}"))?;
        match url.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err("https upstreams are not supported yet; use http:// (hookgate usually runs next to its upstream)".into())
            }
            _ => return Err("must be an absolute http:// URL".into()),
        }
        let authority = url.authority().ok_or("the URL has no host")?;
        if authority.as_str().contains('@') {
            return Err(
                "credentials in the URL are not supported; send them with `upstream.headers`"
                    .into(),
            );
        }
        Ok(UpstreamUrl(url))
    }
}

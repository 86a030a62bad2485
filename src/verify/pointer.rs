//! The scalar at an RFC 6901 JSON pointer, found in one pass over the body
//! without building the document: values off the pointer's path are skipped
//! (`serde::de::IgnoredAny`), so a 1.5 KB event costs a scan, not a tree of
//! allocations. The whole body is still checked to be one JSON document.
//!
//! Answers exactly what `serde_json::Value::pointer` on the parsed body
//! would, in the bytes a dedup key uses: a string's text, a number as
//! `serde_json::Number` prints it, `true`/`false`; `None` for null, objects,
//! arrays, a missing path or a body that is not JSON. A key that appears
//! twice in an object counts by its last value, as in `serde_json::Value`.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A parsed pointer: its reference tokens, unescaped (`~1` is `/`, `~0` is `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    source: String,
    tokens: Vec<String>,
}

/// What a pointer finds in a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A string's text, a number as `serde_json::Number` prints it, or
    /// `true`/`false`.
    Scalar(Vec<u8>),
    /// `null`, an object or an array.
    NotScalar,
    /// Nothing at that path.
    Missing,
}

impl Pointer {
    /// `source` starts with `/` (the callers' parsers check).
    pub fn parse(source: &str) -> Pointer {
        let tokens = source
            .split('/')
            .skip(1)
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        Pointer {
            source: source.to_string(),
            tokens,
        }
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The scalar at this pointer in `body`, as key bytes.
    pub fn find(&self, body: &[u8]) -> Option<Vec<u8>> {
        match self.lookup(body)? {
            Found::Scalar(v) => Some(v),
            Found::NotScalar | Found::Missing => None,
        }
    }

    /// What is at this pointer in `body`; `None` when the body is not one
    /// JSON document.
    pub fn lookup(&self, body: &[u8]) -> Option<Found> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let found = Step(&self.tokens).deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(found)
    }
}

/// Follows the remaining tokens into the value being read.
struct Step<'p>(&'p [String]);

impl Step<'_> {
    /// A scalar: found when the pointer ends here, else the path goes on
    /// into something that has no children.
    fn scalar(&self, bytes: impl FnOnce() -> Vec<u8>) -> Found {
        if self.0.is_empty() {
            Found::Scalar(bytes())
        } else {
            Found::Missing
        }
    }

    /// A container (or null) the pointer ends at.
    fn ends_here(&self) -> Option<Found> {
        self.0.is_empty().then_some(Found::NotScalar)
    }
}

impl<'de> DeserializeSeed<'de> for Step<'_> {
    type Value = Found;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Step<'_> {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some((token, rest)) = self.0.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Found::NotScalar);
        };
        let mut found = Found::Missing;
        while let Some(matches) = map.next_key_seed(KeyIs(token))? {
            if matches {
                found = map.next_value_seed(Step(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted = match self.0.split_first() {
            Some((token, rest)) => index(token).map(|i| (i, rest)),
            None => None,
        };
        let mut found = self.ends_here().unwrap_or(Found::Missing);
        let mut i = 0;
        loop {
            match wanted {
                Some((at, rest)) if at == i => match seq.next_element_seed(Step(rest))? {
                    Some(value) => found = value,
                    None => break,
                },
                _ => {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        break;
                    }
                }
            }
            i += 1;
        }
        Ok(found)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.scalar(|| v.as_bytes().to_vec()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(self.scalar(|| v.to_string().into_bytes()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.scalar(|| v.to_string().into_bytes()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.scalar(|| v.to_string().into_bytes()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // Printed as serde_json prints the number it would have stored.
        Ok(self.scalar(|| {
            serde_json::Number::from_f64(v)
                .map(|n| n.to_string().into_bytes())
                .unwrap_or_default()
        }))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.ends_here().unwrap_or(Found::Missing))
    }
}

/// Whether the object key being read is `token`, without keeping the key.
struct KeyIs<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

/// An array index token as RFC 6901 spells it: digits, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.starts_with('0') && token.len() != 1) {
        return None;
    }
    token.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the key used before this scanner: the parsed document's pointer.
    fn via_value(body: &[u8], pointer: &str) -> Option<Vec<u8>> {
        let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
        match doc.pointer(pointer)? {
            serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
            serde_json::Value::Number(n) => Some(n.to_string().into_bytes()),
            serde_json::Value::Bool(b) => Some(b.to_string().into_bytes()),
            _ => None,
        }
    }

    #[test]
    fn agrees_with_serde_json_value_pointer() {
        let bodies: &[&str] = &[
            r#"{"id":"evt_1","data":{"object":{"id":"obj_2","n":[1,2,{"x":"deep"}]}}}"#,
            r#"{"id":42,"neg":-7,"big":18446744073709551615,"f":1.5,"e":1e21,"t":true,"z":null}"#,
            r#"{"a/b":"slash","m~n":"tilde","":"empty","esc\"aped":"q","\u0069d":"unicode-escaped key"}"#,
            r#"{"id":"first","id":"second"}"#,
            r#"{"id":{"nested":1},"arr":[],"obj":{}}"#,
            r#"[{"id":"in array"},"x",["y"]]"#,
            r#"{"s":"line\nbreak \u00e9 \ud83d\ude00"}"#,
            r#""just a string""#,
            r#"{"id":"ok"} trailing"#,
            r#"{"id":"unterminated"#,
            r#"{"id":"ok",}"#,
            "not json",
            "",
        ];
        let pointers = [
            "/id",
            "/data/object/id",
            "/data/object/n/0",
            "/data/object/n/2/x",
            "/data/object/n/3",
            "/data/object/n/01",
            "/data/object/n/+1",
            "/neg",
            "/big",
            "/f",
            "/e",
            "/t",
            "/z",
            "/a~1b",
            "/m~0n",
            "/",
            "/esc\"aped",
            "/id/nested",
            "/arr",
            "/obj",
            "/0/id",
            "/1",
            "/2/0",
            "/s",
            "/missing",
            "/id/0",
        ];
        for body in bodies {
            for pointer in pointers {
                assert_eq!(
                    Pointer::parse(pointer).find(body.as_bytes()),
                    via_value(body.as_bytes(), pointer),
                    "body {body:?}, pointer {pointer:?}"
                );
            }
        }
    }

    /// `lookup` tells a missing path from a value that is not a scalar,
    /// as `Value::pointer` does (timestamps answer them differently).
    #[test]
    fn lookup_agrees_with_serde_json_value_pointer() {
        let body = br#"{"a":{"b":[1,null,{}]},"s":"x","n":null}"#;
        for pointer in [
            "/a", "/a/b", "/a/b/0", "/a/b/1", "/a/b/2", "/a/b/3", "/s", "/s/x", "/n", "/n/x", "/z",
            "",
        ] {
            let doc: serde_json::Value = serde_json::from_slice(body).unwrap();
            let expected = match doc.pointer(pointer) {
                None => Found::Missing,
                Some(serde_json::Value::String(s)) => Found::Scalar(s.as_bytes().to_vec()),
                Some(serde_json::Value::Number(n)) => Found::Scalar(n.to_string().into_bytes()),
                Some(_) => Found::NotScalar,
            };
            assert_eq!(
                Pointer::parse(pointer).lookup(body),
                Some(expected),
                "{pointer:?}"
            );
        }
        assert_eq!(Pointer::parse("/a").lookup(b"{"), None);
        assert_eq!(Pointer::parse("/a").as_str(), "/a");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let body = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(Pointer::parse("/0").find(body.as_bytes()), None);
    }
}

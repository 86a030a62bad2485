//! Config error messages that never print a value.
//!
//! A field's value may be a secret once `${VAR}` or `${file:…}` has been
//! expanded into it, and every config error reaches `hookgate check`'s
//! output, the log and the `/admin/reload` answer. So serde's messages are
//! rewritten to name the expected type only (serde would print
//! `invalid type: string "<value>", expected u64`), and any message is
//! scrubbed of every expanded value before it leaves `Config::from_yaml`.

/// Replaces expanded values in place of a message.
const REDACTED: &str = "<redacted>";

/// serde's message for a deserialisation error, without the value it
/// found: `invalid type: string "…", expected u64` becomes
/// `expected u64, found a string`. Messages that can only hold names
/// written in the file (unknown or missing fields) are kept as they are;
/// any other shape becomes a generic one. Messages from our own typed
/// leaves are kept as they are.
pub fn serde_message(message: &str) -> String {
    // Our own leaves' messages never hold a value (`leaf.rs`).
    if let Some(own) = message.strip_prefix(super::leaf::OWN_MESSAGE) {
        return own.to_string();
    }
    let kept = [
        "unknown field",
        "missing field",
        "duplicate field",
        "invalid length",
    ];
    if kept.iter().any(|k| message.starts_with(k)) {
        return message.to_string();
    }
    let expected = message
        .rfind(", expected ")
        .map(|at| &message[at + ", expected ".len()..]);
    if let Some(found) = message.strip_prefix("invalid type: ") {
        // What was found is a kind, then its value: `string "…"`,
        // `integer `5``, `map`. Only the kind is told.
        let kind = found
            .split(['"', '`', '\'', ','])
            .next()
            .unwrap_or_default()
            .trim();
        return match expected {
            Some(expected) => format!("expected {expected}, found {}", article(kind)),
            None => format!("wrong type: found {}", article(kind)),
        };
    }
    if message.starts_with("invalid value:") || message.starts_with("unknown variant") {
        return match expected {
            Some(expected) => format!("invalid value: expected {expected}"),
            None => "invalid value".to_string(),
        };
    }
    "invalid value for this field".to_string()
}

fn article(kind: &str) -> String {
    match kind {
        "" => "another type".to_string(),
        k if k.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {k}"),
        k => format!("a {k}"),
    }
}

/// `message` with every expanded value in `values` replaced, longest
/// first (a value may contain another).
pub fn redact(message: &str, values: &[String]) -> String {
    let mut values: Vec<&String> = values.iter().filter(|v| !v.is_empty()).collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = message.to_string();
    for value in values {
        if out.contains(value.as_str()) {
            out = out.replace(value.as_str(), REDACTED);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_keep_the_expected_type_and_drop_the_value() {
        let cases = [
            (
                r#"invalid type: string "sk_live_0123, expected x", expected u64"#,
                "expected u64, found a string",
            ),
            (
                "invalid type: integer `42`, expected a string",
                "expected a string, found an integer",
            ),
            (
                "invalid type: map, expected a sequence",
                "expected a sequence, found a map",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "invalid value: expected u32",
            ),
            (
                "unknown variant `sk_live`, expected `a` or `b`",
                "invalid value: expected `a` or `b`",
            ),
            (
                "unknown field `secretz`, expected one of `secrets`",
                "unknown field `secretz`, expected one of `secrets`",
            ),
            ("missing field `url`", "missing field `url`"),
            ("something new: sk_live", "invalid value for this field"),
        ];
        let own = format!(
            "{}not a duration: write e.g. 10s",
            super::super::leaf::OWN_MESSAGE
        );
        for (serde, ours) in cases {
            assert_eq!(serde_message(serde), ours, "{serde}");
        }
        assert_eq!(serde_message(&own), "not a duration: write e.g. 10s");
    }

    #[test]
    fn redact_replaces_every_expanded_value_longest_first() {
        let values = vec![
            "sk_live".to_string(),
            "Bearer sk_live".to_string(),
            String::new(),
        ];
        assert_eq!(
            redact(r#""Bearer sk_live" is not valid; sk_live"#, &values),
            r#""<redacted>" is not valid; <redacted>"#
        );
        assert_eq!(redact("nothing here", &values), "nothing here");
    }
}

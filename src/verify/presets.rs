//! Providers as data: each preset is a named [`HmacSpec`].
//!
//! Adding a provider whose math is "HMAC of the raw body in a header" is one
//! entry here plus its published test vectors in `tests/vectors/`.

use http::HeaderName;

use super::{Algorithm, Encoding, HmacSpec, SignatureSource};

/// Names of every preset, for error messages and docs.
pub const NAMES: &[&str] = &["trutac", "github"];

/// The preset called `name`, if there is one.
pub fn hmac_preset(name: &str) -> Option<HmacSpec> {
    let source = |header: &'static str, algorithm, prefix: &str| SignatureSource {
        header: HeaderName::from_static(header),
        algorithm,
        encoding: Encoding::Hex,
        prefix: prefix.to_string(),
    };
    let sources = match name {
        // TruTac: `TT-Hook-Signature: sha1=<hex HMAC-SHA1 of the raw body>`.
        "trutac" => vec![source("tt-hook-signature", Algorithm::Sha1, "sha1=")],
        // GitHub: `X-Hub-Signature-256: sha256=<hex>`. The legacy SHA-1
        // header is only consulted when the SHA-256 one is absent.
        "github" => vec![
            source("x-hub-signature-256", Algorithm::Sha256, "sha256="),
            source("x-hub-signature", Algorithm::Sha1, "sha1="),
        ],
        _ => return None,
    };
    Some(HmacSpec { sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_resolves() {
        for name in NAMES {
            assert!(hmac_preset(name).is_some(), "{name}");
        }
        assert!(hmac_preset("nope").is_none());
    }
}

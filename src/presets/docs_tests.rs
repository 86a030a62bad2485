//! The preset tables of README.md and docs/configuration.md are generated
//! from the table (`describe.rs`), between marker comments. This test
//! fails when the committed docs disagree with the table; rewrite them
//! after changing a row:
//!
//!     HOOKGATE_WRITE_PRESET_DOCS=1 cargo test --lib preset_docs

use super::describe::{markdown_reference, markdown_summary};

const BEGIN: &str = "<!-- presets:begin: generated from src/presets/mod.rs by `HOOKGATE_WRITE_PRESET_DOCS=1 cargo test --lib preset_docs`; do not edit by hand -->\n";
const END: &str = "<!-- presets:end -->";

/// `text` with what lies between the markers replaced by `table`; `None`
/// when the markers are missing.
fn with_table(text: &str, table: &str) -> Option<String> {
    let start = text.find(BEGIN)? + BEGIN.len();
    let end = start + text[start..].find(END)?;
    Some(format!("{}{table}{}", &text[..start], &text[end..]))
}

#[test]
fn preset_docs_are_generated_from_the_table() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    for (file, table) in [
        ("README.md", markdown_summary()),
        ("docs/configuration.md", markdown_reference()),
    ] {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let wanted = with_table(&text, &table)
            .unwrap_or_else(|| panic!("{file} has no preset table markers ({BEGIN:?} … {END:?})"));
        if wanted != text {
            if std::env::var_os("HOOKGATE_WRITE_PRESET_DOCS").is_some() {
                std::fs::write(&path, wanted).unwrap();
            } else {
                stale.push(file);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "the preset tables of {stale:?} differ from the table (rewrite them: HOOKGATE_WRITE_PRESET_DOCS=1 cargo test --lib preset_docs)"
    );
}

#[test]
fn every_row_is_in_both_tables() {
    for name in super::NAMES {
        let cell = format!("| `{name}` |");
        assert!(markdown_summary().contains(&cell), "{name}");
        assert!(markdown_reference().contains(&cell), "{name}");
    }
}

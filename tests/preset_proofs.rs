//! `docs/testing.md` says, for every preset `hookgate presets` lists, which
//! test proves it against its sender's own material (an official SDK, or a
//! vector the sender published). This fails when a preset has no row, when
//! a row names a test that does not exist or does not mention the preset,
//! when an unproven row does not say why, and when the count above the
//! table is wrong.

use std::path::Path;

const BEGIN: &str = "<!-- preset-proofs:begin -->";
const END: &str = "<!-- preset-proofs:end -->";

struct Row {
    name: String,
    proof: String,
    test: Option<(String, String)>,
}

fn rows(table: &str) -> Vec<Row> {
    table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 3, "{line}");
            let test = (cells[2] != "—").then(|| {
                let parts: Vec<&str> = cells[2]
                    .split('`')
                    .filter(|p| !p.trim().is_empty())
                    .collect();
                assert_eq!(parts.len(), 2, "{line}: the test is `file` `function`");
                (parts[0].to_string(), parts[1].to_string())
            });
            Row {
                name: cells[0].trim_matches('`').to_string(),
                proof: cells[1].to_string(),
                test,
            }
        })
        .collect()
}

#[test]
fn every_preset_has_a_proof_row_naming_a_test_that_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/testing.md")).unwrap();
    let start = doc
        .find(BEGIN)
        .expect("docs/testing.md has the proof table markers")
        + BEGIN.len();
    let end = start + doc[start..].find(END).unwrap();
    let table = &doc[start..end];
    let rows = rows(table);

    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        hookgate::presets::NAMES,
        "docs/testing.md's proof table lists the presets of `hookgate presets`, in order"
    );

    let mut proven = 0;
    for row in &rows {
        let name = &row.name;
        match &row.test {
            None => assert!(
                row.proof.starts_with("none: "),
                "{name}: a row without a test says `none: ` and why"
            ),
            Some((file, function)) => {
                assert!(!row.proof.starts_with("none"), "{name}");
                let text = std::fs::read_to_string(root.join(file))
                    .unwrap_or_else(|e| panic!("{name}: {file}: {e}"));
                assert!(
                    text.contains(&format!("fn {function}(")),
                    "{name}: {file} has no test {function}"
                );
                assert!(
                    text.contains(&format!("\"{name}\""))
                        || text.contains(&format!("scheme: {name}")),
                    "{name}: {file} does not mention the preset"
                );
                proven += 1;
            }
        }
    }
    let count = format!("{proven} of {} presets are proven", rows.len());
    assert!(table.contains(&count), "the table should say: {count}");
}

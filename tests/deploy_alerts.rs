//! The edge tier's alerts and recording rules, through Prometheus' own
//! `promtool`: the PrometheusRule's spec must pass `promtool check rules`,
//! and the unit tests in `deploy/prometheus/hookgate-rules.test.yaml`
//! (consumer down at low volume, a reload failure that persists, every
//! target gone, error-budget burn rates, ...) must pass `promtool test
//! rules`.
//!
//! promtool comes with Debian's `prometheus` package (.ci/run installs it).
//! Without it this test fails rather than skips: an alert that was never
//! evaluated is not known to work.

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool: {e}. Install it (Debian: apt-get install prometheus; .ci/run does) to test the alerts"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let text =
        std::fs::read_to_string(root().join("deploy/kubernetes/edge/prometheusrule.yaml")).unwrap();
    let rule: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hookgate-rules.yaml"),
        serde_yaml::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let tests = "hookgate-rules.test.yaml";
    std::fs::copy(
        root().join("deploy/prometheus").join(tests),
        dir.path().join(tests),
    )
    .unwrap();

    let checked = promtool(&["check", "rules", "hookgate-rules.yaml"], dir.path());
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", tests], dir.path());
    assert!(tested.contains("SUCCESS"), "{tested}");

    // The cases the alerts were written for are there (a renamed or
    // deleted case would otherwise pass unnoticed).
    let cases: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.path().join(tests)).unwrap()).unwrap();
    let names: Vec<&str> = cases["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for needed in [
        "consumer down at low volume",
        "reload failure that persists",
        "all targets gone",
        "burn rate, fast",
        "burn rate, slow only",
        "burn rate, within budget",
    ] {
        assert!(names.contains(&needed), "no promtool case {needed:?}");
    }
}

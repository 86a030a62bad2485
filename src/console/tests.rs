use super::*;

fn config(yaml: &str) -> Config {
    Config::from_yaml(yaml, &Default::default()).unwrap()
}

const ROUTES: &str = r#"
routes:
  - name: gh
    path: /gh
    verify: { scheme: github, secrets: ["gh-secret-value"] }
    upstream:
      url: "http://127.0.0.1:9/hooks?token=upstream-token"
      headers: { x-upstream-auth: "upstream-credential" }
"#;

#[test]
fn headers_that_carry_signatures_or_credentials_are_masked() {
    let config = config(ROUTES);
    let route = config.route("gh");
    let stored: Vec<(String, String)> = [
        ("x-hub-signature-256", "sha256=abc"),
        ("authorization", "Bearer x"),
        ("cookie", "a=b"),
        ("x-upstream-auth", "upstream-credential"),
        ("x-custom-token", "t"),
        ("x-api-key", "k"),
        ("x-github-event", "push"),
        ("content-type", "application/json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let masked = mask_headers(&config, route, &stored);
    let value = |name: &str| masked.iter().find(|(k, _)| k == name).unwrap().1.clone();
    for name in [
        "x-hub-signature-256",
        "authorization",
        "cookie",
        "x-upstream-auth",
        "x-custom-token",
        "x-api-key",
    ] {
        assert_eq!(value(name), MASKED, "{name}");
    }
    assert_eq!(value("x-github-event"), "push");
    assert_eq!(value("content-type"), "application/json");
}

#[test]
fn destinations_never_show_the_query_string() {
    let config = config(ROUTES);
    let shown = destination(config.route("gh").unwrap());
    assert_eq!(shown, "http://127.0.0.1:9/hooks?…");
    assert!(!shown.contains("upstream-token"));
}

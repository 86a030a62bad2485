//! Who may read the store: it holds event bodies and signature headers.
//! A real gateway creates its data_dir and store files on disk.

mod support;

use http::StatusCode;
use support::*;

#[cfg(unix)]
#[tokio::test]
async fn the_store_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let upstream = Upstream::start().await;
    let yaml = format!(
        "data_dir: \"{}\"\nroutes:\n  - {{ name: r, path: /r, ack: async, verify: {{ scheme: none }}, upstream: {{ url: \"{}\" }} }}\n",
        data.display(),
        upstream.url("/")
    );
    let gateway = Gateway::start(&yaml).await;
    assert_eq!(
        post(&gateway.url("/r"), &[], "{}").await.status,
        StatusCode::OK
    );
    eventually("the event is delivered", || upstream.received().len() == 1).await;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&data), 0o700);
    // Bodies and signature headers live in all three.
    for file in ["hookgate.db", "hookgate.db-wal", "hookgate.db-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    drop(gateway);
}

//! PostgreSQL for tests: a schema of its own on the shared server
//! (`HOOKGATE_TEST_POSTGRES_URL`, else the local one at 127.0.0.1:5432,
//! which `.ci/run` starts), dropped when the test ends, and a private
//! cluster for tests that must stop or restart the server (never the
//! shared one: other tests use it at the same time).
//!
//! No test skips when PostgreSQL is unreachable: it fails, saying where it
//! looked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hookgate::config::PostgresConfig;
use secrecy::SecretString;

/// The shared test server's URL.
pub fn test_url() -> String {
    match std::env::var("HOOKGATE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => "postgres://postgres@127.0.0.1:5432/postgres".to_string(),
    }
}

/// A schema name no other test uses.
pub fn unique_schema() -> String {
    format!(
        "hg_test_{}_{:012x}",
        std::process::id(),
        fastrand::u64(..) >> 16
    )
}

/// A schema of this test's own on a server; dropped (with everything in
/// it) when this goes, also when the test fails.
pub struct TestSchema {
    pub name: String,
    pub url: String,
}

impl TestSchema {
    /// On the shared test server.
    pub fn new() -> TestSchema {
        TestSchema::on(&test_url())
    }

    pub fn on(url: &str) -> TestSchema {
        TestSchema {
            name: unique_schema(),
            url: url.to_string(),
        }
    }

    /// hookgate's settings for this schema.
    pub fn config(&self) -> PostgresConfig {
        PostgresConfig {
            url: SecretString::from(self.url.clone()),
            schema: self.name.clone(),
            pool_size: 8,
        }
    }

    /// A connection of the test's own (to inject faults, to look).
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: use a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(conn);
                let _ = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await;
            })
        })
        .join();
    }
}

/// Connects to `url`, failing the test with where it looked.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL must be reachable for this test at {} ({e}); .ci/run starts it, HOOKGATE_TEST_POSTGRES_URL overrides",
                url.split('@').next_back().unwrap_or_default()
            )
        });
    tokio::spawn(conn);
    client
}

/// A PostgreSQL cluster of the test's own, on a free port with its data in
/// a temporary directory, which the test may stop, kill and start again.
/// `initdb` refuses to run as root, so as root it runs as `postgres`.
pub struct PgCluster {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl PgCluster {
    pub fn start() -> PgCluster {
        let bin = pg_bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let cluster = PgCluster {
            port: super::free_port(),
            dir,
            bin,
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown to postgres failed");
        }
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "--no-instructions",
            ],
        );
        cluster.up();
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server and waits until it accepts connections.
    pub fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the test cluster did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once, as a crash would (`immediate`: no
    /// checkpoint; what was committed is in the WAL).
    pub fn kill(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", path.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl");
        let data = self.data();
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = command
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    // SAFETY-free: `id -u` rather than libc.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `/usr/lib/postgresql/<version>/bin`, the newest installed.
fn pg_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("PostgreSQL's server binaries are not in {} ({e}): install the postgresql package (.ci/run does)", root.display()))
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).expect(
        "no /usr/lib/postgresql/*/bin/initdb: install the postgresql package (.ci/run does)",
    )
}

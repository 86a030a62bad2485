//! The `hookgate` command line: `serve`, `check`, `sign`, `presets` and
//! the admin API clients.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use hookgate::config::Config;
use hookgate::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(name = "hookgate", version, about = "Webhook verification gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

mod admin_cli;
mod verify_cli;

#[derive(Subcommand)]
enum Command {
    /// Inspect async deliveries through the admin API.
    Deliveries {
        #[command(subcommand)]
        command: admin_cli::Deliveries,
    },
    /// Inspect, replay or drop dead letters through the admin API.
    DeadLetters {
        #[command(subcommand)]
        command: admin_cli::DeadLetters,
    },
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Log format on stderr; overrides `log.format`. HOOKGATE_LOG
        /// overrides `log.level`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Load and validate the configuration, print a summary of its routes.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check a captured request offline against a route and say which step
    /// fails: no route, method, missing header, malformed or bad signature
    /// (with the shape of the expected signed payload), stale timestamp
    /// (with the clock difference), or a filtered event. Exit status 0 when
    /// the request would be forwarded. Prints no secret and no expected MAC.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// The route to check the request against.
        #[arg(long)]
        route: String,
        /// The request: raw HTTP (request line, headers, blank line, body),
        /// the `> ` lines of `curl -v`, or a HAR file; `-` for standard
        /// input.
        #[arg(long)]
        request: PathBuf,
        /// The body, when the request file has none (curl -v shows none).
        #[arg(long)]
        body: Option<PathBuf>,
        /// Check as if it were this Unix time (seconds), e.g. when the
        /// request was captured; default now.
        #[arg(long)]
        at: Option<u64>,
    },
    /// List every preset: the headers it reads, what it signs, its
    /// timestamp window, default dedup key and event type source.
    Presets {
        /// `text` (one block per preset) or `json` (an array of objects).
        #[arg(long, value_enum, default_value = "text")]
        format: PresetsFormat,
    },
    /// Print the headers a sender would send for a body, signed now with
    /// the route's first secret: one `Name: value` per line.
    Sign {
        #[command(flatten)]
        config: ConfigArg,
        /// The route whose verification to sign for.
        #[arg(long)]
        route: String,
        /// The body file, or `-` for standard input.
        #[arg(long, default_value = "-")]
        body: PathBuf,
        /// Also print the event header, for routes that read the event
        /// type from a header.
        #[arg(long)]
        event: Option<String>,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Configuration file.
    #[arg(
        short = 'c',
        long = "config",
        env = "HOOKGATE_CONFIG",
        default_value = "hookgate.yaml"
    )]
    path: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum PresetsFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

/// `hookgate verify`: the report on stdout; exit 0 when the request would
/// be forwarded, 1 when a step fails, 2 when the input cannot be read.
fn run_verify(
    config: &std::path::Path,
    env: &std::collections::HashMap<String, String>,
    route: &str,
    request: &std::path::Path,
    body: Option<&std::path::Path>,
    at: Option<u64>,
) -> ExitCode {
    match verify_request(config, env, route, request, body, at) {
        Ok(report) => {
            let code = write_stdout(&(report.lines.join("\n") + "\n"));
            if report.ok {
                code
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// `hookgate presets`: every preset's description, as text or JSON.
fn run_presets(format: PresetsFormat) -> ExitCode {
    let presets = hookgate::presets::describe::all();
    let out = match format {
        PresetsFormat::Text => presets
            .iter()
            .map(|p| p.text())
            .collect::<Vec<_>>()
            .join("\n"),
        PresetsFormat::Json => match serde_json::to_string_pretty(&presets) {
            Ok(json) => json + "\n",
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    write_stdout(&out)
}

/// `hookgate verify`: reads the captured request, then checks it.
fn verify_request(
    config: &std::path::Path,
    env: &std::collections::HashMap<String, String>,
    route: &str,
    request: &std::path::Path,
    body: Option<&std::path::Path>,
    at: Option<u64>,
) -> anyhow::Result<verify_cli::Report> {
    use std::io::Read;
    let raw = if request.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the request from standard input")?;
        buf
    } else {
        std::fs::read(request).with_context(|| format!("reading {}", request.display()))?
    };
    let mut captured = verify_cli::parse_request(&raw)?;
    if let Some(path) = body {
        if !captured.body.is_empty() {
            anyhow::bail!(
                "the request file already has a body; --body is for requests without one (curl -v)"
            );
        }
        captured.body =
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    }
    let now = match at {
        Some(secs) => std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
        None => std::time::SystemTime::now(),
    };
    verify_cli::check(config, env, route, &captured, now)
}

/// Writes `text` to standard output; a closed pipe (`| head`) ends the
/// command quietly instead of a panic.
fn write_stdout(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = std::env::vars().collect();
    match cli.command {
        Command::Deliveries { command } => print_or_fail(admin_cli::deliveries(command)),
        Command::DeadLetters { command } => print_or_fail(admin_cli::dead_letters(command)),
        Command::Verify {
            config,
            route,
            request,
            body,
            at,
        } => run_verify(&config.path, &env, &route, &request, body.as_deref(), at),
        Command::Presets { format } => run_presets(format),
        Command::Check { config } => match Config::load(&config.path, &env) {
            Ok(config) => {
                for warning in config.warnings() {
                    eprintln!("warning: {warning}");
                }
                print!("{}", summary(&config));
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Sign {
            config,
            route,
            body,
            event,
        } => match sign(&config.path, &env, &route, &body, event.as_deref()) {
            Ok(lines) => {
                print!("{lines}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Command::Serve { config, log_format } => {
            let path = config.path;
            let config = match Config::load(&path, &env) {
                Ok(config) => config,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::FAILURE;
                }
            };
            let json = match log_format {
                Some(LogFormatArg::Json) => true,
                Some(LogFormatArg::Text) => false,
                None => config.log.json,
            };
            telemetry::init_logging(
                if json {
                    LogFormat::Json
                } else {
                    LogFormat::Text
                },
                &config.log.level,
            );
            match serve(config, path, env) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `hookgate sign`: the headers for `body`, signed with the route's first
/// secret at the current time.
fn sign(
    path: &std::path::Path,
    env: &std::collections::HashMap<String, String>,
    route: &str,
    body: &std::path::Path,
    event: Option<&str>,
) -> anyhow::Result<String> {
    use std::io::Read;

    let config = Config::load(path, env)?;
    let Some(route) = config.route(route) else {
        let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
        anyhow::bail!("no route {route:?}; routes: {}", names.join(", "));
    };
    let body = if body.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the body from standard input")?;
        buf
    } else {
        std::fs::read(body).with_context(|| format!("reading {}", body.display()))?
    };
    let signed = hookgate::sign::sign(route, &body, event, std::time::SystemTime::now())?;
    if let Some(note) = &signed.note {
        eprintln!("note: {note}");
    }
    let mut out = String::new();
    for (name, value) in signed.headers {
        out.push_str(&format!("{name}: {value}\n"));
    }
    Ok(out)
}

fn print_or_fail(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    config: Config,
    path: PathBuf,
    env: std::collections::HashMap<String, String>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // Before the store is opened: its first write may already hit the limit.
        handle_file_size_limit()?;
        let shutdown = shutdown_signal()?;
        let reloads = reload_signal()?;
        let server = hookgate::Server::bind(config).await?.with_source(path, env);
        server.serve_with_reloads(shutdown, reloads).await;
        Ok(())
    })
}

/// SIGHUP asks for a configuration reload (systemd's `ExecReload`).
#[cfg(unix)]
fn reload_signal() -> anyhow::Result<tokio::sync::mpsc::Receiver<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP received: reloading the configuration");
            // A reload already queued covers this one too.
            let _ = tx.try_send(());
        }
    });
    Ok(rx)
}

#[cfg(not(unix))]
fn reload_signal() -> anyhow::Result<tokio::sync::mpsc::Receiver<()>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    std::mem::forget(tx);
    Ok(rx)
}

/// A write past the file-size limit (`RLIMIT_FSIZE`, e.g. `ulimit -f` or
/// systemd's `LimitFSIZE=`) raises SIGXFSZ, whose default action kills the
/// process: every event in memory and every connection would be lost over
/// one failed write. With the signal handled, the write fails with EFBIG
/// instead; the store reports the error, the sender gets a 503, and writes
/// succeed again once the limit is raised (as PostgreSQL does it).
#[cfg(unix)]
fn handle_file_size_limit() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // SIGXFSZ is 25 on Linux (except MIPS), macOS and the BSDs.
    const SIGXFSZ: i32 = if cfg!(all(
        target_os = "linux",
        any(target_arch = "mips", target_arch = "mips64")
    )) {
        31
    } else {
        25
    };
    let mut exceeded = signal(SignalKind::from_raw(SIGXFSZ)).context("listening for SIGXFSZ")?;
    tokio::spawn(async move {
        // One line a minute at most: every failed write raises the signal,
        // and the store logs each failure itself.
        let mut last: Option<std::time::Instant> = None;
        let mut unlogged = 0u64;
        while exceeded.recv().await.is_some() {
            unlogged += 1;
            if last.map_or(true, |at| {
                at.elapsed() >= std::time::Duration::from_secs(60)
            }) {
                tracing::warn!(
                    signals = unlogged,
                    "SIGXFSZ: writes exceeded the file-size limit (RLIMIT_FSIZE) and failed"
                );
                last = Some(std::time::Instant::now());
                unlogged = 0;
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn handle_file_size_limit() -> anyhow::Result<()> {
    Ok(())
}

/// Registers SIGTERM (Kubernetes, systemd) and SIGINT (Ctrl-C) handlers now,
/// before the listeners are up, so a signal that arrives during start-up is
/// not lost (the default action would kill the process without draining);
/// the returned future resolves on the first of them.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn dedup_summary(config: &Config, route: &hookgate::config::Route) -> String {
    use hookgate::config::{DedupBackend, DedupMode};
    match &route.dedup {
        DedupMode::Off => "off".to_string(),
        DedupMode::On(d) => {
            let backend = match (d.backend, &config.redis) {
                (DedupBackend::Redis, Some(redis)) => format!("redis {}", redis.redacted_url()),
                (backend, _) => backend.as_str().to_string(),
            };
            format!(
                "key {}{} for {:?}, {backend}, on store error: {}",
                d.key.as_str(),
                if d.unsigned_key_allowed {
                    " (unsigned parts allowed: no replay protection)"
                } else {
                    ""
                },
                d.ttl,
                d.on_store_error.as_str()
            )
        }
    }
}

/// A route's upstream for `hookgate check`: where, and which headers it
/// adds, forwards and relays (names only: `upstream.headers` may hold
/// credentials).
fn upstream_summary(upstream: &hookgate::config::Upstream) -> String {
    use std::fmt::Write;
    let names = |list: &mut dyn Iterator<Item = &http::HeaderName>| {
        list.map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
    };
    let mut text = format!("{} (timeout {:?}", upstream.url, upstream.timeout);
    if !upstream.headers.is_empty() {
        let _ = write!(
            text,
            ", adds headers: {}",
            names(&mut upstream.headers.keys())
        );
    }
    if let Some(only) = &upstream.forward_headers {
        let _ = write!(
            text,
            ", forwards only the sender's: {}",
            names(&mut only.iter())
        );
    }
    if !upstream.relay_headers.is_empty() {
        let relay = names(&mut upstream.relay_headers.iter());
        let _ = write!(text, ", relays too: {relay}");
    }
    text.push(')');
    text
}

/// One destination for `hookgate check`: its kind and address (no
/// credentials), and how it is delivered to.
fn destination_summary(
    route: &hookgate::config::Route,
    index: usize,
    d: &hookgate::config::Destination,
) -> String {
    use hookgate::config::DestinationKind;
    use std::fmt::Write;
    let address = match &d.kind {
        DestinationKind::Http(upstream) => upstream_summary(upstream),
        other => format!("{} {}", other.as_str(), other.describe()),
    };
    let mut text = format!("    destination {} {address}", d.name);
    if index == 0 && route.ack == hookgate::config::AckMode::Sync {
        text.push_str("; forwarded while the sender waits");
        return text;
    }
    let r = &d.retry;
    let _ = write!(
        text,
        "; delivery: {} in flight, {} attempts, backoff {:?}..{:?}, max age {:?}",
        d.concurrency, r.max_attempts, r.initial_backoff, r.max_backoff, r.max_age
    );
    if let hookgate::config::RetryOn::Only { classes, statuses } = &d.retry_on {
        let on: Vec<String> = classes
            .iter()
            .map(|c| format!("{c}xx"))
            .chain(statuses.iter().map(u16::to_string))
            .collect();
        let _ = write!(text, ", retried on [{}] only", on.join(", "));
    }
    if let Some(rate) = &d.rate_limit {
        let _ = write!(
            text,
            ", at most {}/s (burst {})",
            rate.per_second, rate.burst
        );
    }
    if let Some(key) = &d.ordering {
        let _ = write!(text, ", in order per {}", key.as_str());
    }
    text
}

/// What `hookgate check` prints: every setting that matters, no secret.
fn summary(config: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let l = &config.limits;
    let _ = writeln!(out, "configuration OK");
    let _ = match config.runtime.ingress {
        hookgate::config::IngressThreads::PerCore => writeln!(
            out,
            "ingress  {} ({} serving threads, each with its own listener and upstream pool)",
            config.listen,
            config.runtime.serving_threads()
        ),
        hookgate::config::IngressThreads::Shared => writeln!(
            out,
            "ingress  {} (served on the shared multi-threaded runtime)",
            config.listen
        ),
    };
    let _ = writeln!(
        out,
        "admin    {} (/healthz /readyz /metrics)",
        config.admin_listen
    );
    let _ = writeln!(
        out,
        "limits   body {} bytes, headers within {:?}, body within {:?}, idle connections closed after {:?}",
        l.max_body_bytes, l.header_read_timeout, l.body_read_timeout, l.idle_timeout
    );
    let _ = match &config.store.postgres {
        // The URL without its password.
        Some(pg) => writeln!(
            out,
            "store    postgres {} schema {} (pool of {}, durability: the server's synchronous_commit, delivered events kept {:?})",
            pg.redacted_url(),
            pg.schema,
            pg.pool_size,
            config.store.retention
        ),
        None => writeln!(
            out,
            "store    sqlite {} (fsync {}, delivered events kept {:?})",
            config.data_dir.join("hookgate.db").display(),
            if config.store.fsync { "on" } else { "off" },
            config.store.retention
        ),
    };
    let _ = writeln!(
        out,
        "admin API {}",
        match (&config.admin_token, config.admin_listen.ip().is_loopback()) {
            (Some(_), _) => "requires a bearer token",
            (None, true) => "open to this machine (no admin.token, loopback admin.listen)",
            (None, false) => "refused with 403 admin_token_required (no admin.token)",
        }
    );
    let _ = writeln!(out, "routes   {}", config.routes.len());
    for route in &config.routes {
        let _ = writeln!(out, "- {} POST {}", route.name, route.path);
        let _ = writeln!(out, "    verify    {}", route.verify.summary());
        let _ = match route.ack {
            hookgate::config::AckMode::Sync => writeln!(
                out,
                "    ack       sync (the first destination's answer is relayed)"
            ),
            hookgate::config::AckMode::Async => writeln!(
                out,
                "    ack       async: {} once spooled (max {} pending)",
                route.ack_status.as_u16(),
                route.max_pending,
            ),
        };
        let _ = writeln!(out, "    dedup     {}", dedup_summary(config, route));
        let _ = writeln!(out, "    events    {}", route.events.summary());
        for (i, d) in route.destinations.iter().enumerate() {
            let _ = writeln!(out, "{}", destination_summary(route, i, d));
        }
    }
    out
}

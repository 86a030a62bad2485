//! Metrics and logs. Metric names are an API: they live in [`names`], are
//! described once, and carry labels only from bounded sets (route names from
//! the config, outcome and reason codes), never raw paths or request data.

pub mod metrics;
pub mod names;
pub mod traces;

pub use self::metrics::{
    DedupResult, DeliveryResult, Metrics, Outcome, RouteMetrics, UpstreamClass,
};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global tracing subscriber. The filter comes from
/// `HOOKGATE_LOG` (tracing `EnvFilter` syntax) when set, else `level` (the
/// config's `log.level`). Access log lines use the target
/// `hookgate::access` (silence them with `hookgate::access=off`).
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOOKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in collected logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

//! Readiness probes, one per backend the routes depend on.
//!
//! Each backend builds itself together with its [`Healthcheck`] (as
//! vector's sinks return `(Sink, Healthcheck)`), and `/readyz` runs every
//! probe it was given, in order: no list of backends is kept anywhere else.
//! A probe answers whether the backend serves a cheap request now; why it
//! failed goes to the log, and only the component name to the response.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type Probe =
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync + 'static;

/// A named readiness probe.
#[derive(Clone)]
pub struct Healthcheck {
    component: &'static str,
    probe: Arc<Probe>,
}

impl Healthcheck {
    /// `component` is the name `/readyz` reports as `failing` (e.g.
    /// `local_store`, `redis`); `probe` asks the backend a cheap question.
    pub fn new<F, Fut, E>(component: &'static str, probe: F) -> Healthcheck
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        Healthcheck {
            component,
            probe: Arc::new(move || {
                let check = probe();
                Box::pin(async move { check.await.map_err(|e| e.to_string()) })
            }),
        }
    }

    pub fn component(&self) -> &'static str {
        self.component
    }

    /// Runs the probe; the error is the backend's own message, for the log.
    pub async fn run(&self) -> Result<(), String> {
        (self.probe)().await
    }
}

impl std::fmt::Debug for Healthcheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Healthcheck")
            .field("component", &self.component)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_probe_reports_its_backend_each_time_it_runs() {
        let up = Arc::new(AtomicBool::new(true));
        let probe = {
            let up = up.clone();
            Healthcheck::new("redis", move || {
                let up = up.load(Ordering::SeqCst);
                async move {
                    if up {
                        Ok(())
                    } else {
                        Err("connection refused")
                    }
                }
            })
        };
        assert_eq!(probe.component(), "redis");
        assert_eq!(probe.run().await, Ok(()));
        up.store(false, Ordering::SeqCst);
        assert_eq!(probe.run().await, Err("connection refused".to_string()));
        up.store(true, Ordering::SeqCst);
        assert_eq!(probe.run().await, Ok(()));
    }
}

//! A test seam in every store's group commit: a process-wide gate that a
//! test closes to hold each commit just before it happens, so that what
//! the gateway does while an event is *not yet committed* can be observed
//! deterministically (no race against a microsecond window, no sleep).
//!
//! Each store's writer calls [`before_commit`] (or, from an async task,
//! [`before_commit_async`]) right before it commits a group. While the gate is open (always, outside tests) that is one
//! relaxed atomic load. A test closes it with [`CommitGate::close`], waits
//! until a writer is held there ([`CommitGate::wait_for_held`]), checks
//! that nobody was acknowledged, and opens it again by dropping the guard.
//! The gate is global to the process: a test that closes it runs in its
//! own test binary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

static CLOSED: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<State> = Mutex::new(State {
    closed: false,
    held: 0,
});
static CHANGED: Condvar = Condvar::new();

struct State {
    closed: bool,
    /// Writers waiting at the gate.
    held: usize,
}

/// Called by a store's writer right before it commits a group; returns
/// once the gate is open.
pub fn before_commit() {
    if !CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    state.held += 1;
    CHANGED.notify_all();
    while state.closed {
        state = CHANGED.wait(state).unwrap_or_else(|p| p.into_inner());
    }
    state.held -= 1;
    CHANGED.notify_all();
}

/// [`before_commit`] for a writer running as an async task (PostgreSQL):
/// while the gate is closed it waits on a blocking thread, never on the
/// runtime's own.
pub async fn before_commit_async() {
    if !CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let _ = tokio::task::spawn_blocking(before_commit).await;
}

/// The closed gate; dropping it opens the gate again.
pub struct CommitGate(());

impl CommitGate {
    /// Closes the gate: from now on every commit waits.
    pub fn close() -> CommitGate {
        let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
        state.closed = true;
        CLOSED.store(true, Ordering::SeqCst);
        CommitGate(())
    }

    /// Waits until at least one writer is held at the gate; false if none
    /// arrives within `limit`.
    pub fn wait_for_held(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
        while state.held == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = CHANGED
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl Drop for CommitGate {
    fn drop(&mut self) {
        let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
        state.closed = false;
        CLOSED.store(false, Ordering::SeqCst);
        CHANGED.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_holds_the_writer_until_it_opens() {
        let gate = CommitGate::close();
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            before_commit();
            tx.send(()).unwrap();
        });
        assert!(gate.wait_for_held(Duration::from_secs(10)));
        assert!(rx.try_recv().is_err(), "the writer passed a closed gate");
        drop(gate);
        rx.recv().unwrap();
        writer.join().unwrap();
        // Open: no wait at all.
        before_commit();
    }
}

//! Graceful shutdown: a signal every task can watch, and a count of live connections
//! the server waits on (up to a grace period) before it exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

/// The flag and the wake-up every watch shares.
#[derive(Debug, Default)]
struct Signal {
    down: AtomicBool,
    notify: Notify,
}

/// Starts the shutdown that [`ShutdownWatch`]es observe.
#[derive(Debug)]
pub struct ShutdownTrigger {
    signal: Arc<Signal>,
}

/// Observes whether shutdown has started. Cheap to clone; waiting on it is a small
/// future (every idle connection holds one).
#[derive(Debug, Clone)]
pub struct ShutdownWatch {
    signal: Arc<Signal>,
}

impl ShutdownTrigger {
    /// A trigger and its first watch.
    pub fn new() -> (Self, ShutdownWatch) {
        let signal = Arc::new(Signal::default());
        (
            ShutdownTrigger {
                signal: signal.clone(),
            },
            ShutdownWatch { signal },
        )
    }

    /// Start shutting down: listeners stop accepting, idle connections close, busy ones
    /// finish their request and close.
    pub fn trigger(&self) {
        self.signal.down.store(true, Ordering::Release);
        self.signal.notify.notify_waiters();
    }
}

impl ShutdownWatch {
    /// A watch that never fires (for serving outside a [`Server`](super::Server)).
    pub fn never() -> Self {
        ShutdownWatch {
            signal: Arc::new(Signal::default()),
        }
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.signal.down.load(Ordering::Acquire)
    }

    /// Wait until shutdown starts.
    pub async fn wait(&self) {
        loop {
            // Registered before the flag is checked, so a trigger in between is seen.
            let notified = self.signal.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_shutting_down() {
                return;
            }
            notified.await;
        }
    }
}

/// Counts live connections so shutdown can wait for them.
#[derive(Debug, Default)]
pub struct ConnectionTracker {
    live: AtomicUsize,
    idle: Notify,
}

/// Held by a connection's task; its drop marks the connection finished.
#[derive(Debug)]
pub struct ConnectionGuard {
    tracker: Arc<ConnectionTracker>,
}

impl ConnectionTracker {
    /// Register a new connection.
    pub fn enter(self: &Arc<Self>) -> ConnectionGuard {
        self.live.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard {
            tracker: self.clone(),
        }
    }

    /// Connections alive now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Wait until no connection is alive.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.tracker.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tracker.idle.notify_waiters();
        }
    }
}

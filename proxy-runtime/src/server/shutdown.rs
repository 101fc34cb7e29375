//! Graceful shutdown: a signal every task can watch, and a count of live connections
//! the server waits on (up to a grace period) before it exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// Starts the shutdown that [`ShutdownWatch`]es observe.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// Observes whether shutdown has started. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ShutdownWatch {
    rx: watch::Receiver<bool>,
}

impl ShutdownTrigger {
    /// A trigger and its first watch.
    pub fn new() -> (Self, ShutdownWatch) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, ShutdownWatch { rx })
    }

    /// Start shutting down: listeners stop accepting, idle connections close, busy ones
    /// finish their request and close.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl ShutdownWatch {
    /// A watch that never fires (for serving outside a [`Server`](super::Server)).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive forever so the receiver never reports closure.
        std::mem::forget(tx);
        ShutdownWatch { rx }
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        *self.rx.borrow()
    }

    /// Wait until shutdown starts.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        if rx.wait_for(|down| *down).await.is_err() {
            // The trigger is gone without firing: shutdown will never come.
            std::future::pending::<()>().await;
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

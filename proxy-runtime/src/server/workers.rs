//! The runtimes a server's connections run on, in one of two layouts
//! ([`RuntimeLayout`]): one multi-threaded work-stealing runtime, or one
//! single-threaded runtime per worker thread, each accepting on listeners of its own
//! (`SO_REUSEPORT`), so that a connection and all its tasks stay on one thread.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind, ErrorSource, Result};

/// How worker threads run connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeLayout {
    /// One tokio multi-threaded runtime: every listener is accepted on by one task and
    /// idle workers steal tasks from busy ones. Evens out uneven connections; pays for
    /// cross-thread wake-ups and shared queues.
    WorkStealing,
    /// One single-threaded runtime per worker thread. Every worker accepts on its own
    /// listening socket bound to the same address with `SO_REUSEPORT` (the kernel
    /// spreads new connections), and a connection's tasks never leave its thread.
    /// Unix sockets and listeners bound by the caller are shared by the workers
    /// instead.
    ///
    /// The default: with two workers on a 2-core machine it spent 27 % less CPU per
    /// request than work stealing and served 35 % more requests per second
    /// (`docs/src/performance.md`, "Runtime layouts").
    #[default]
    PerCore,
}

impl std::str::FromStr for RuntimeLayout {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "work_stealing" | "work-stealing" => Ok(RuntimeLayout::WorkStealing),
            "per_core" | "per-core" => Ok(RuntimeLayout::PerCore),
            other => Err(format!(
                "unknown runtime layout `{other}` (expected `work_stealing` or `per_core`)"
            )),
        }
    }
}

/// The runtimes services spawn their accept loops on: one handle for the work-stealing
/// layout, one per worker thread for the per-core one.
#[derive(Debug, Clone)]
pub struct Workers {
    handles: Vec<Handle>,
    reuse_port: bool,
}

impl Workers {
    /// The runtime this is called from, as the only worker (no `SO_REUSEPORT`).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn current() -> Self {
        Workers {
            handles: vec![Handle::current()],
            reuse_port: false,
        }
    }

    /// How many runtimes accept connections.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Never true: there is always at least one runtime.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Whether every worker binds listening sockets of its own (`SO_REUSEPORT`).
    pub fn reuse_port(&self) -> bool {
        self.reuse_port
    }

    /// The runtime of worker `i`.
    pub fn handle(&self, i: usize) -> &Handle {
        &self.handles[i % self.handles.len()]
    }
}

/// The threads of the per-core layout beyond the calling one, which runs worker 0.
pub(crate) struct ExtraWorkers {
    threads: Vec<(JoinHandle<()>, oneshot::Sender<()>)>,
}

impl ExtraWorkers {
    /// Start `count` threads, each running a single-threaded runtime until
    /// [`ExtraWorkers::stop`]; returns them with their runtime handles.
    pub(crate) fn start(count: usize) -> Result<(Self, Vec<Handle>)> {
        let mut threads = Vec::with_capacity(count);
        let mut handles = Vec::with_capacity(count);
        for i in 1..=count {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("proxy-worker-{i}"))
                .spawn(move || {
                    let runtime = match single_thread_runtime() {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = handle_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(runtime.handle().clone()));
                    // A single-threaded runtime runs its tasks only inside `block_on`.
                    runtime.block_on(async {
                        let _ = stop_rx.await;
                    });
                    runtime.shutdown_timeout(Duration::from_secs(1));
                })
                .map_err(|e| internal("cannot start a worker thread", e))?;
            let handle = handle_rx
                .recv()
                .map_err(|e| internal("a worker thread ended at start-up", e))??;
            threads.push((thread, stop_tx));
            handles.push(handle);
        }
        Ok((ExtraWorkers { threads }, handles))
    }

    /// Stop the runtimes (their remaining tasks are dropped) and join the threads.
    pub(crate) fn stop(self) {
        for (thread, stop) in self.threads {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// The runtime of one per-core worker.
pub(crate) fn single_thread_runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| internal("cannot start runtime", e))
}

/// The set of workers for `layout`: worker 0 is the runtime this is called from.
pub(crate) fn workers(layout: RuntimeLayout, extra: Vec<Handle>) -> Arc<Workers> {
    let mut handles = vec![Handle::current()];
    handles.extend(extra);
    Arc::new(Workers {
        reuse_port: layout == RuntimeLayout::PerCore && handles.len() > 1,
        handles,
    })
}

fn internal(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Box<Error> {
    Error::because(ErrorKind::Internal, ErrorSource::Internal, what, e)
}

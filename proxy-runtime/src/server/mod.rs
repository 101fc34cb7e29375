//! The server: services, listeners, the runtime, signals and graceful shutdown.
//!
//! ```no_run
//! use proxy_runtime::prelude::*;
//! # struct P;
//! # impl ProxyHttp for P {
//! #     type CTX = ();
//! #     fn new_ctx(&self) {}
//! #     async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<HttpPeer> {
//! #         HttpPeer::new("127.0.0.1:8000", false, "")
//! #     }
//! # }
//! let mut server = Server::new(ServerConf::default());
//! let mut proxy = http_proxy_service(&server.configuration, P);
//! proxy.add_tcp("0.0.0.0:8080");
//! server.add_service(proxy);
//! server.run_forever();
//! ```
//!
//! On SIGTERM or SIGINT the server stops accepting, closes idle connections, lets
//! in-flight requests finish (their responses say `Connection: close`) for up to the
//! grace period, then exits.

mod listener;
mod service;
mod shutdown;
mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use listener::{ListenAddr, Listener};
pub use service::{
    BoxFuture, HttpProxyService, HttpProxyServiceBuilder, Service, http_proxy_service,
    http_proxy_service_with_name,
};
pub use shutdown::{ConnectionGuard, ConnectionTracker, ShutdownTrigger, ShutdownWatch};
pub use workers::{RuntimeLayout, Workers};

use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::protocols::SocketAddress;
use crate::protocols::h1::H1ServerOptions;
use crate::proxy::ProxyOptions;

/// Server-wide settings.
#[derive(Debug, Clone)]
pub struct ServerConf {
    /// Worker threads of the runtime (default: one per core).
    pub threads: usize,
    /// How the worker threads run connections (default: one single-threaded runtime
    /// per worker, [`RuntimeLayout::PerCore`]).
    /// With one thread both layouts are the same single-threaded runtime.
    pub runtime: RuntimeLayout,
    /// How long in-flight requests may take to finish after shutdown starts.
    pub grace_period: Duration,
    /// Default engine options for proxy services.
    pub proxy: ProxyOptions,
    /// Default client-side limits and timeouts for proxy services.
    pub downstream: H1ServerOptions,
}

impl Default for ServerConf {
    fn default() -> Self {
        ServerConf {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            runtime: RuntimeLayout::default(),
            grace_period: Duration::from_secs(30),
            proxy: ProxyOptions::default(),
            downstream: H1ServerOptions::default(),
        }
    }
}

/// Runs services on worker threads (see [`RuntimeLayout`]) until told to stop.
pub struct Server {
    /// The settings services are built from.
    pub configuration: Arc<ServerConf>,
    services: Vec<Box<dyn Service>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("configuration", &self.configuration)
            .field("services", &self.services.len())
            .finish()
    }
}

impl Server {
    /// A server with these settings and no services yet.
    pub fn new(conf: ServerConf) -> Self {
        Server {
            configuration: Arc::new(conf),
            services: Vec::new(),
        }
    }

    /// Add a service.
    pub fn add_service(&mut self, service: impl Service) {
        self.services.push(Box::new(service));
    }

    /// Run until SIGTERM/SIGINT, shut down gracefully, and exit the process.
    pub fn run_forever(self) -> ! {
        match self.run() {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                tracing::error!("server failed: {e}");
                eprintln!("error: {e}");
                std::process::exit(1)
            }
        }
    }

    /// Run until SIGTERM/SIGINT, then shut down gracefully.
    pub fn run(self) -> Result<()> {
        self.run_until(termination_signal(), |_| {})
    }

    /// Run until `stop` completes, then shut down gracefully. `on_bound` is told every
    /// bound address once all listeners are up.
    pub fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
        on_bound: impl FnOnce(&[SocketAddress]),
    ) -> Result<()> {
        let threads = self.configuration.threads.max(1);
        let layout = self.configuration.runtime;
        let (runtime, extra) = if threads == 1 || layout == RuntimeLayout::PerCore {
            // This thread runs worker 0; the per-core layout starts the others, each
            // with a single-threaded runtime of its own. One worker: everything on this
            // thread, no cross-thread wake-ups.
            let (extra, handles) = workers::ExtraWorkers::start(threads - 1)?;
            (workers::single_thread_runtime()?, Some((extra, handles)))
        } else {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .enable_all()
                .thread_name("proxy-worker")
                .build()
                .map_err(|e| {
                    Error::because(
                        ErrorKind::Internal,
                        ErrorSource::Internal,
                        "cannot start runtime",
                        e,
                    )
                })?;
            (runtime, None)
        };
        let (extra, extra_handles) = match extra {
            Some((extra, handles)) => (Some(extra), handles),
            None => (None, Vec::new()),
        };
        let grace = self.configuration.grace_period;
        let result = runtime.block_on(async move {
            let workers = workers::workers(layout, extra_handles);
            let (trigger, watch) = ShutdownTrigger::new();
            let tracker = Arc::new(ConnectionTracker::default());
            let mut services = self.services;
            let mut bound = Vec::new();
            for s in services.iter_mut() {
                let addrs = s.bind(&workers).await?;
                for a in &addrs {
                    tracing::info!(service = s.name(), "listening on {a}");
                }
                bound.extend(addrs);
            }
            on_bound(&bound);
            let mut running = Vec::new();
            for s in services {
                running.push(tokio::spawn(s.serve(
                    workers.clone(),
                    watch.clone(),
                    tracker.clone(),
                )));
            }
            stop.await;
            tracing::info!(
                live = tracker.live(),
                "shutting down: no new connections, finishing in-flight requests"
            );
            trigger.trigger();
            for r in running {
                let _ = r.await;
            }
            if tokio::time::timeout(grace, tracker.wait_idle())
                .await
                .is_err()
            {
                tracing::warn!(
                    live = tracker.live(),
                    "grace period over; closing remaining connections"
                );
            }
            Ok(())
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
        if let Some(extra) = extra {
            extra.stop();
        }
        result
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

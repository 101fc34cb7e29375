//! Services: what a [`Server`](super::Server) runs. [`HttpProxyService`] serves a
//! [`ProxyHttp`] on its listeners; [`HttpProxyServiceBuilder`] sets its options.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::ServerConf;
use super::listener::{ListenAddr, Listener};
use super::shutdown::{ConnectionTracker, ShutdownWatch};
use super::workers::Workers;
use crate::error::Result;
use crate::protocols::SocketAddress;
use crate::protocols::h1::H1ServerOptions;
use crate::protocols::tls::{TlsAcceptor, TlsServerSettings};
use crate::proxy::{HttpProxy, ProxyOptions};
use crate::proxy_trait::ProxyHttp;

/// A boxed future, for the object-safe [`Service`] trait (called once per service).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something a [`Server`](super::Server) runs: binds its listeners, then serves until
/// shutdown.
pub trait Service: Send + 'static {
    /// The name used in logs.
    fn name(&self) -> &str;

    /// Bind every listener (once per worker when `workers` asks for `SO_REUSEPORT`);
    /// an error names the address that failed.
    fn bind<'a>(&'a mut self, workers: &'a Workers) -> BoxFuture<'a, Result<Vec<SocketAddress>>>;

    /// Serve until `shutdown` fires, accepting on every worker's runtime; every
    /// connection holds a guard from `tracker`.
    fn serve(
        self: Box<Self>,
        workers: Arc<Workers>,
        shutdown: ShutdownWatch,
        tracker: Arc<ConnectionTracker>,
    ) -> BoxFuture<'static, ()>;
}

/// A proxy service: a [`ProxyHttp`] served on TCP and Unix listeners.
#[derive(Debug)]
pub struct HttpProxyService<P> {
    name: String,
    proxy: Arc<HttpProxy<P>>,
    addrs: Vec<ListenAddr>,
    tls_addrs: Vec<(ListenAddr, Arc<TlsAcceptor>)>,
    prebound: Vec<std::net::TcpListener>,
    /// Bound listeners: one per address, or one per worker with `SO_REUSEPORT`.
    listeners: Vec<(Vec<Listener>, Option<Arc<TlsAcceptor>>)>,
}

/// A proxy service named "proxy" with the server's default options.
pub fn http_proxy_service<P: ProxyHttp>(conf: &ServerConf, proxy: P) -> HttpProxyService<P> {
    http_proxy_service_with_name(conf, proxy, "proxy")
}

/// A proxy service with a name (used in logs) and the server's default options.
pub fn http_proxy_service_with_name<P: ProxyHttp>(
    conf: &ServerConf,
    proxy: P,
    name: &str,
) -> HttpProxyService<P> {
    HttpProxyServiceBuilder::new(proxy)
        .name(name)
        .proxy_options(conf.proxy.clone())
        .server_options(conf.downstream.clone())
        .build()
}

impl<P: ProxyHttp> HttpProxyService<P> {
    /// Listen on a TCP address (`"0.0.0.0:8080"`).
    pub fn add_tcp(&mut self, addr: &str) {
        self.addrs.push(ListenAddr::Tcp(addr.to_string()));
    }

    /// Listen on a Unix domain socket path.
    pub fn add_uds(&mut self, path: impl Into<PathBuf>) {
        self.addrs.push(ListenAddr::Unix(path.into()));
    }

    /// Listen for TLS on a TCP address. Certificates and keys are loaded now: an error
    /// names the file that could not be used.
    pub fn add_tls(&mut self, addr: &str, settings: TlsServerSettings) -> Result<()> {
        let acceptor = Arc::new(TlsAcceptor::new(settings)?);
        self.tls_addrs
            .push((ListenAddr::Tcp(addr.to_string()), acceptor));
        Ok(())
    }

    /// Serve on a TCP listener the caller already bound (e.g. to port 0, to learn the
    /// port before the server starts).
    pub fn add_std_listener(&mut self, listener: std::net::TcpListener) {
        self.prebound.push(listener);
    }

    /// The user's proxy.
    pub fn app_logic(&self) -> &P {
        &self.proxy.inner
    }

    /// The engine around it (connector, pool).
    pub fn proxy(&self) -> &Arc<HttpProxy<P>> {
        &self.proxy
    }

    /// The addresses this service will listen on.
    pub fn listen_addrs(&self) -> &[ListenAddr] {
        &self.addrs
    }

    /// Serve connections from an already bound listener until `shutdown` (for embedding
    /// and tests; a [`Server`](super::Server) does this for every listener).
    pub async fn serve_listener(
        proxy: Arc<HttpProxy<P>>,
        listener: Listener,
        shutdown: ShutdownWatch,
        tracker: Arc<ConnectionTracker>,
    ) {
        Self::accept_loop(proxy, listener, None, shutdown, tracker).await;
    }

    /// Like [`HttpProxyService::serve_listener`], with a TLS handshake on every
    /// connection (bounded by the header read timeout).
    pub async fn serve_tls_listener(
        proxy: Arc<HttpProxy<P>>,
        listener: Listener,
        acceptor: Arc<TlsAcceptor>,
        shutdown: ShutdownWatch,
        tracker: Arc<ConnectionTracker>,
    ) {
        acceptor.watch(Duration::from_secs(5));
        Self::accept_loop(proxy, listener, Some(acceptor), shutdown, tracker).await;
    }

    async fn accept_loop(
        proxy: Arc<HttpProxy<P>>,
        listener: Listener,
        tls: Option<Arc<TlsAcceptor>>,
        shutdown: ShutdownWatch,
        tracker: Arc<ConnectionTracker>,
    ) {
        loop {
            let accepted = tokio::select! {
                biased;
                () = shutdown.wait() => return,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok(stream) => {
                    let guard = tracker.enter();
                    let proxy = proxy.clone();
                    let shutdown = shutdown.clone();
                    let tls = tls.clone();
                    tokio::spawn(async move {
                        let stream = match tls {
                            None => stream,
                            Some(acceptor) => {
                                let limit = proxy.downstream.header_read_timeout;
                                // Boxed: the handshake's state (~1.4 KiB) would otherwise
                                // be part of every connection's task, cleartext ones too.
                                // A handshake still going on when shutdown starts is
                                // given up: it would hold the grace period to its end.
                                let handshake = Box::pin(async {
                                    tokio::select! {
                                        biased;
                                        () = shutdown.wait() => None,
                                        done = tokio::time::timeout(limit, acceptor.accept(stream)) => Some(done),
                                    }
                                });
                                match handshake.await {
                                    Some(Ok(Ok(s))) => s,
                                    Some(Ok(Err(e))) => {
                                        tracing::debug!("TLS handshake failed: {e}");
                                        return;
                                    }
                                    Some(Err(_)) => {
                                        tracing::debug!("TLS handshake timed out");
                                        return;
                                    }
                                    None => {
                                        tracing::debug!("shutting down: TLS handshake given up");
                                        return;
                                    }
                                }
                            }
                        };
                        proxy.serve_connection(stream, shutdown).await;
                        drop(guard);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}

impl<P: ProxyHttp> Service for HttpProxyService<P> {
    fn name(&self) -> &str {
        &self.name
    }

    fn bind<'a>(&'a mut self, workers: &'a Workers) -> BoxFuture<'a, Result<Vec<SocketAddress>>> {
        Box::pin(async move {
            let mut bound = Vec::new();
            for std_listener in self.prebound.drain(..) {
                let l = std_listener
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(std_listener))
                    .map_err(|e| {
                        crate::Error::because(
                            crate::ErrorKind::Config,
                            crate::ErrorSource::Internal,
                            "cannot use a pre-bound listener",
                            e,
                        )
                    })?;
                let l = Listener::Tcp(l);
                if let Some(a) = l.local_addr() {
                    bound.push(a);
                }
                self.listeners.push((vec![l], None));
            }
            let plain = self.addrs.iter().map(|a| (a, None));
            let tls = self.tls_addrs.iter().map(|(a, t)| (a, Some(t.clone())));
            let mut bound_now = Vec::new();
            let per_worker = if workers.reuse_port() {
                workers.len()
            } else {
                1
            };
            for (addr, tls) in plain.chain(tls) {
                let group = Listener::bind_per_worker(addr, per_worker).await?;
                if let Some(a) = group.first().and_then(Listener::local_addr) {
                    bound.push(a);
                }
                bound_now.push((group, tls));
            }
            self.listeners.extend(bound_now);
            Ok(bound)
        })
    }

    fn serve(
        self: Box<Self>,
        workers: Arc<Workers>,
        shutdown: ShutdownWatch,
        tracker: Arc<ConnectionTracker>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let this = *self;
            let mut tasks = Vec::new();
            for (group, tls) in this.listeners {
                for (worker, l) in spread_over_workers(group, &workers) {
                    let proxy = this.proxy.clone();
                    let (shutdown, tracker, tls) = (shutdown.clone(), tracker.clone(), tls.clone());
                    tasks.push(workers.handle(worker).spawn(async move {
                        match tls {
                            None => Self::serve_listener(proxy, l, shutdown, tracker).await,
                            Some(acceptor) => {
                                Self::serve_tls_listener(proxy, l, acceptor, shutdown, tracker)
                                    .await;
                            }
                        }
                    }));
                }
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    }
}

/// Which worker accepts on which listener: with one listener per worker
/// (`SO_REUSEPORT`) each moves to its worker's runtime; a single listener is shared by
/// every worker (one accept queue). A listener that cannot be handed to a worker is
/// logged and left to the others.
fn spread_over_workers(group: Vec<Listener>, workers: &Workers) -> Vec<(usize, Listener)> {
    let n = workers.len();
    if n == 1 {
        return group.into_iter().map(|l| (0, l)).collect();
    }
    let mut out = Vec::with_capacity(n);
    if group.len() == n {
        for (i, l) in group.into_iter().enumerate() {
            // Worker 0 is the runtime the listeners were bound on.
            let moved = if i == 0 {
                Ok(l)
            } else {
                l.move_to(workers.handle(i))
            };
            match moved {
                Ok(l) => out.push((i, l)),
                Err(e) => tracing::warn!("worker {i} cannot accept on its listener: {e}"),
            }
        }
        return out;
    }
    for l in group {
        for i in 1..n {
            match l.share_with(workers.handle(i)) {
                Ok(shared) => out.push((i, shared)),
                Err(e) => tracing::warn!("worker {i} cannot share a listener: {e}"),
            }
        }
        out.push((0, l));
    }
    out
}

/// Builds an [`HttpProxyService`] with explicit options.
///
/// ```
/// use std::time::Duration;
/// use proxy_runtime::prelude::*;
/// # struct P;
/// # impl ProxyHttp for P {
/// #     type CTX = ();
/// #     fn new_ctx(&self) {}
/// #     async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<HttpPeer> {
/// #         HttpPeer::new("127.0.0.1:1", false, "")
/// #     }
/// # }
/// let service = HttpProxyServiceBuilder::new(P)
///     .name("edge")
///     .listen_tcp("127.0.0.1:8080")
///     .max_retries(1)
///     .keepalive_timeout(Duration::from_secs(30))
///     .build();
/// ```
#[derive(Debug)]
pub struct HttpProxyServiceBuilder<P> {
    proxy: P,
    name: String,
    opts: ProxyOptions,
    downstream: H1ServerOptions,
    addrs: Vec<ListenAddr>,
    tls_addrs: Vec<(ListenAddr, Arc<TlsAcceptor>)>,
}

impl<P: ProxyHttp> HttpProxyServiceBuilder<P> {
    /// Start from defaults.
    pub fn new(proxy: P) -> Self {
        HttpProxyServiceBuilder {
            proxy,
            name: "proxy".to_string(),
            opts: ProxyOptions::default(),
            downstream: H1ServerOptions::default(),
            addrs: Vec::new(),
            tls_addrs: Vec::new(),
        }
    }

    /// The service name (logs).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Replace all engine options.
    pub fn proxy_options(mut self, opts: ProxyOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Replace all client-side limits and timeouts.
    pub fn server_options(mut self, opts: H1ServerOptions) -> Self {
        self.downstream = opts;
        self
    }

    /// Listen on a TCP address.
    pub fn listen_tcp(mut self, addr: &str) -> Self {
        self.addrs.push(ListenAddr::Tcp(addr.to_string()));
        self
    }

    /// Listen on a Unix domain socket.
    pub fn listen_uds(mut self, path: impl Into<PathBuf>) -> Self {
        self.addrs.push(ListenAddr::Unix(path.into()));
        self
    }

    /// Listen for TLS on a TCP address; certificates are loaded now.
    pub fn listen_tls(mut self, addr: &str, settings: TlsServerSettings) -> Result<Self> {
        let acceptor = Arc::new(TlsAcceptor::new(settings)?);
        self.tls_addrs
            .push((ListenAddr::Tcp(addr.to_string()), acceptor));
        Ok(self)
    }

    /// Relay large response bodies socket to socket in the kernel (see
    /// [`ProxyOptions::splice`]).
    pub fn splice(mut self, on: bool) -> Self {
        self.opts.splice = on;
        self
    }

    /// Retries after the first attempt.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.opts.max_retries = n;
        self
    }

    /// Idle time allowed between requests on a client connection.
    pub fn keepalive_timeout(mut self, d: Duration) -> Self {
        self.downstream.keepalive_timeout = d;
        self
    }

    /// Time allowed to receive a complete request head.
    pub fn header_read_timeout(mut self, d: Duration) -> Self {
        self.downstream.header_read_timeout = d;
        self
    }

    /// Time allowed for one read of a request body.
    pub fn body_read_timeout(mut self, d: Duration) -> Self {
        self.downstream.body_read_timeout = d;
        self
    }

    /// Time allowed for one write to a client.
    pub fn write_timeout(mut self, d: Duration) -> Self {
        self.downstream.write_timeout = d;
        self
    }

    /// Build the service.
    pub fn build(self) -> HttpProxyService<P> {
        HttpProxyService {
            name: self.name,
            proxy: Arc::new(HttpProxy::new(self.proxy, self.opts, self.downstream)),
            addrs: self.addrs,
            tls_addrs: self.tls_addrs,
            prebound: Vec::new(),
            listeners: Vec::new(),
        }
    }
}

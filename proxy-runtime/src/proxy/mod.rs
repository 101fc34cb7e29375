//! The proxy loops: from a client connection, through the phases, to an origin and back.
//!
//! - [`HttpProxy`] wraps a user's [`ProxyHttp`] with the engine's state (connector and
//!   pool, options, modules) and serves client connections;
//! - `common.rs` holds what every protocol shares: the phase order, the retry loop,
//!   error handling and logging, hop-by-hop header rules;
//! - `h1.rs` exchanges a request with an HTTP/1.x origin (and tunnels upgrades);
//! - `h2.rs` serves HTTP/2 clients and exchanges requests with HTTP/2 origins;
//! - `custom.rs` exchanges requests over a peer's custom transport
//!   ([`crate::protocols::custom`]);
//! - `cache.rs` puts the response cache between the two (see [`crate::cache`](mod@crate::cache)).

mod cache;
mod common;
mod custom;
mod h1;
mod h2;
pub mod mirror;
mod splice;

use std::sync::Arc;
use std::time::Duration;

use crate::modules::HttpModules;
use crate::protocols::Prefixed;
use crate::protocols::Stream;
use crate::protocols::h1::io::ConnIo;
use crate::protocols::h1::server::{ReadOutcome, close_idle, read_request};
use crate::protocols::h1::{H1ServerOptions, HeadLimits};
use crate::protocols::h2::{H2Options, PREFACE};
use crate::protocols::timeout::{lazy_timeout, lazy_timeout_at};
use crate::proxy_trait::ProxyHttp;
use crate::server::ShutdownWatch;
use crate::session::Session;
use crate::upstream::{Connector, PoolOptions};

/// Engine options of a proxy service (the client-side limits are in [`H1ServerOptions`]).
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Attempts after the first one for retryable failures (default 2: three tries).
    pub max_retries: u32,
    /// Request body bytes kept to replay on a retry (default 64 KiB). A request with a
    /// larger body is not retried once its body started to flow.
    pub retry_buffer_limit: usize,
    /// Limits on response heads from origins.
    pub upstream_head: HeadLimits,
    /// Idle timeout of an upgraded (e.g. WebSocket) connection.
    pub tunnel_idle_timeout: Duration,
    /// Size of the upstream connection pool.
    pub pool: PoolOptions,
    /// HTTP/2 settings and protections towards clients.
    pub h2: H2Options,
    /// Relay large response bodies from the origin's socket to the client's inside the
    /// kernel (`splice(2)`) when the proxy allows it (default `true`; see
    /// [`ProxyHttp::response_body_passthrough`]).
    pub splice: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            max_retries: 2,
            retry_buffer_limit: 64 * 1024,
            upstream_head: HeadLimits::default(),
            tunnel_idle_timeout: Duration::from_secs(300),
            h2: H2Options::default(),
            pool: PoolOptions::default(),
            splice: true,
        }
    }
}

/// A user's proxy with the engine around it.
#[derive(Debug)]
pub struct HttpProxy<P> {
    /// The user's phases.
    pub inner: P,
    pub(crate) connector: Connector,
    pub(crate) opts: ProxyOptions,
    pub(crate) downstream: Arc<H1ServerOptions>,
    pub(crate) modules: HttpModules,
}

impl<P: ProxyHttp> HttpProxy<P> {
    /// Wrap `inner` with these options.
    pub fn new(inner: P, opts: ProxyOptions, downstream: H1ServerOptions) -> Self {
        let mut modules = HttpModules::default();
        inner.init_downstream_modules(&mut modules);
        HttpProxy {
            connector: Connector::new(opts.pool),
            inner,
            opts,
            downstream: Arc::new(downstream),
            modules,
        }
    }

    /// The upstream connector (and its pool).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// Serve one client connection until it closes, request after request.
    pub async fn serve_connection(self: Arc<Self>, stream: Stream, shutdown: ShutdownWatch) {
        let client_addr = stream.peer_addr();
        let server_addr = stream.local_addr();
        if stream.alpn() == Some(b"h2".as_slice()) {
            // Boxed, like every large sub-future here: an idle HTTP/1 connection's task
            // then holds a few hundred bytes instead of the largest state it may reach.
            return Box::pin(self.serve_h2(stream, shutdown, client_addr, server_addr, true)).await;
        }
        let mut io = ConnIo::new(stream);
        // The first request's head (and an h2c preface) must be complete within the
        // header timeout of the connection's start, however the bytes trickle in.
        let first_head_by = tokio::time::Instant::now() + self.downstream.header_read_timeout;
        if !io.stream.is_tls() {
            // Cleartext: HTTP/2 with prior knowledge (h2c) starts with its preface.
            let sniffed = tokio::select! {
                biased;
                s = sniff_h2c(&mut io, first_head_by) => s,
                () = shutdown.wait() => return,
            };
            match sniffed {
                Sniffed::H2 => {
                    let prefix = io.rbuf.split().freeze();
                    let io = Prefixed::new(prefix, io.stream);
                    return Box::pin(self.serve_h2(io, shutdown, client_addr, server_addr, false))
                        .await;
                }
                Sniffed::Closed => return,
                Sniffed::H1 => {}
            }
        }
        // One wait for shutdown for the connection's whole life, shared by the waits
        // below: it registers with the shutdown signal once, instead of registering and
        // unregistering (a lock each) at every request.
        let shutdown_wait = shutdown.wait();
        let mut shutdown_wait = std::pin::pin!(shutdown_wait);
        let mut served = 0u64;
        loop {
            if io.rbuf.is_empty() {
                // Idle between requests in a small state: buffers given back, waiting
                // for the next bytes (or shutdown). Reading and parsing the head happen
                // in their own allocation below, so an idle connection's task does not
                // carry the larger state a partly received head needs.
                io.release_buffers();
                let keepalive = self.downstream.keepalive_timeout;
                let waited = tokio::select! {
                    biased;
                    r = async {
                        // TLS may hold decrypted bytes the socket no longer shows: a TLS
                        // connection waits by reading (the buffer goes back while nothing
                        // comes). The clock is read only if the wait is pending.
                        match (served == 0, io.stream.is_tls()) {
                            (true, false) => lazy_timeout_at(first_head_by, io.stream.readable()).await,
                            (false, false) => lazy_timeout(keepalive, io.stream.readable()).await,
                            (true, true) => lazy_timeout_at(first_head_by, read_some(&mut io)).await,
                            (false, true) => lazy_timeout(keepalive, read_some(&mut io)).await,
                        }
                    } => match r {
                        Ok(Ok(())) => IdleWait::Arrived,
                        Ok(Err(_)) => IdleWait::Failed,
                        Err(_) => IdleWait::TimedOut,
                    },
                    () = &mut shutdown_wait => IdleWait::ShuttingDown,
                };
                match waited {
                    IdleWait::Arrived => {}
                    IdleWait::Failed => return,
                    IdleWait::TimedOut | IdleWait::ShuttingDown => {
                        // A deliberate close: over TLS, with `close_notify`.
                        close_idle(io, &self.downstream).await;
                        return;
                    }
                }
            }
            let reading = crate::boxed::pin_in_place(|| {
                let head_by = (served == 0).then_some(first_head_by);
                read_request(io, &self.downstream, served, client_addr.as_ref(), head_by)
            });
            let outcome = tokio::select! {
                biased;
                outcome = reading => outcome,
                // Idle (or still sending a head) when shutdown starts: just close.
                () = &mut shutdown_wait => return,
            };
            let h1 = match outcome {
                ReadOutcome::Request(h1) => h1,
                ReadOutcome::Closed => return,
            };
            // The request's phases live in their own allocation while it runs: the
            // connection's task stays small between requests (idle keep-alive
            // connections hold well under 1 KiB, not the ~6 KiB a request's state needs).
            let request = self.start_request(h1, &client_addr, &server_addr, &shutdown);
            match request.await {
                Some(next) if !shutdown.is_shutting_down() => {
                    io = next;
                    served += 1;
                }
                _ => return,
            }
        }
    }
}

impl<P: ProxyHttp> HttpProxy<P> {
    /// The session for a request head and its phases, boxed. A plain function rather
    /// than code in `serve_connection`: a session built there would keep its room in
    /// the connection's state (an `async fn` keeps the storage of values moved out
    /// before an await), and every idle connection would carry it.
    fn start_request<'a>(
        self: &'a Arc<Self>,
        h1: Box<crate::protocols::h1::server::ServerSession>,
        client_addr: &Option<crate::protocols::SocketAddress>,
        server_addr: &Option<crate::protocols::SocketAddress>,
        shutdown: &'a ShutdownWatch,
    ) -> std::pin::Pin<Box<impl std::future::Future<Output = Option<ConnIo>> + 'a>> {
        let tls = h1.is_tls();
        let mut session = Session::new_h1(
            h1,
            client_addr.clone(),
            server_addr.clone(),
            self.opts.retry_buffer_limit,
        );
        session.modules = self.modules.build_ctx();
        session.set_downstream_tls(tls);
        session.set_shutdown_watch(shutdown.clone());
        if shutdown.is_shutting_down() {
            session.set_keepalive_off();
        }
        // Built in place: the state is about 6 KiB.
        crate::boxed::pin_in_place(|| self.process_request(session, shutdown))
    }
}

impl<P: ProxyHttp> crate::protocols::subrequest::SubrequestRunner for HttpProxy<P> {
    fn run(
        self: Arc<Self>,
        session: Session,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Session> + Send>> {
        Box::pin(async move { self.handle_request(session).await })
    }
}

/// Read whatever comes next into the connection's buffer.
async fn read_some(io: &mut ConnIo) -> std::io::Result<()> {
    io.fill(None).await.map(drop)
}

/// How an idle connection's wait for its next request ended.
enum IdleWait {
    /// Bytes arrived (or the peer closed: the head read finds out).
    Arrived,
    /// The socket failed.
    Failed,
    /// The keep-alive (or first head) timeout passed.
    TimedOut,
    /// The server is shutting down.
    ShuttingDown,
}

/// What a new cleartext connection starts with.
enum Sniffed {
    /// The HTTP/2 connection preface.
    H2,
    /// Anything else: HTTP/1.x.
    H1,
    /// Nothing in time, or the client left.
    Closed,
}

/// Read until the bytes either are the HTTP/2 preface or cannot be, by `deadline` for
/// the whole preface (not per read: a client trickling it a byte at a time gets no more
/// time). What was read stays in the buffer for whichever protocol serves the connection.
async fn sniff_h2c(io: &mut ConnIo, deadline: tokio::time::Instant) -> Sniffed {
    loop {
        let n = io.rbuf.len().min(PREFACE.len());
        if io.rbuf[..n] != PREFACE[..n] {
            return Sniffed::H1;
        }
        if n == PREFACE.len() {
            return Sniffed::H2;
        }
        if io.eof {
            return Sniffed::Closed;
        }
        match tokio::time::timeout_at(deadline, io.fill(None)).await {
            Ok(Ok(_)) => {}
            _ => return Sniffed::Closed,
        }
    }
}

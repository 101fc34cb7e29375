//! Opening upstream connections, or taking them from the pool.
//!
//! [`Connector::get`] first asks the [`ConnectionPool`] for an idle connection to an
//! equivalent peer; otherwise it connects (TCP with `TCP_NODELAY`, or a Unix socket)
//! within the peer's connect timeout. [`Connector::release`] gives a connection whose
//! exchange ended cleanly back to the pool. A peer with a custom transport is opened by
//! its transport instead ([`UpstreamConn::Custom`]), within the same timeout.

use std::sync::Arc;

use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout;

use super::HttpPeer;
use super::pool::{ConnectionPool, PoolOptions};
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::protocols::custom::{CustomExchange, CustomTransport};
use crate::protocols::h2::client::{H2Connection, H2Pool};
use crate::protocols::tls::{Alpn, TlsConnector};
use crate::protocols::{SocketAddress, Stream};

/// Makes (or reuses) connections to upstream peers.
#[derive(Debug, Clone)]
pub struct Connector {
    pool: Arc<ConnectionPool>,
    tls: Arc<TlsConnector>,
    h2: Arc<H2Pool>,
    /// One HTTP/2 connection attempt per peer at a time: concurrent requests wait for
    /// it and share the connection instead of each opening their own.
    h2_connecting: Arc<ConnectGates>,
}

/// A gate per peer key, held while that peer's HTTP/2 connection is being opened.
type ConnectGates = std::sync::Mutex<std::collections::HashMap<u64, Arc<tokio::sync::Mutex<()>>>>;

/// A connection ready for one request: HTTP/1.x (exclusive), HTTP/2 (shared), or an
/// exchange over a peer's custom transport.
#[derive(Debug)]
pub enum UpstreamConn {
    /// An HTTP/1.x connection.
    H1(Stream),
    /// A shared HTTP/2 connection.
    H2(H2Connection),
    /// An exchange opened by the peer's [`CustomTransport`].
    Custom(CustomExchange),
}

impl Connector {
    /// A connector with a pool of the given size.
    pub fn new(pool: PoolOptions) -> Self {
        Connector {
            pool: ConnectionPool::new(pool),
            tls: Arc::new(TlsConnector::default()),
            h2: Arc::new(H2Pool::default()),
            h2_connecting: Arc::default(),
        }
    }

    /// The pool behind this connector.
    pub fn pool(&self) -> &Arc<ConnectionPool> {
        &self.pool
    }

    /// A connection to `peer`: `(stream, reused)`.
    pub async fn get(&self, peer: &HttpPeer) -> Result<(Stream, bool)> {
        if let Some(stream) = self.pool.take(peer.reuse_hash()) {
            return Ok((stream, true));
        }
        Ok((self.connect(peer).await?, false))
    }

    /// A connection to `peer` for one request, HTTP/1.x or HTTP/2 as the peer's options
    /// and ALPN decide: `(connection, reused)`.
    pub async fn get_conn(&self, peer: &HttpPeer) -> Result<(UpstreamConn, bool)> {
        if let Some(transport) = &peer.transport {
            let exchange = open_custom(peer, transport.as_ref()).await?;
            let reused = exchange.reused;
            return Ok((UpstreamConn::Custom(exchange), reused));
        }
        let key = peer.reuse_hash();
        let may_h2 = if peer.tls {
            peer.options.alpn != Alpn::H1
        } else {
            peer.options.h2
        };
        if may_h2 && let Some(c) = self.h2.get(key) {
            return Ok((UpstreamConn::H2(c), true));
        }
        // Another request may be opening the shared connection right now: wait for it.
        let _connecting = if may_h2 {
            let gate = self
                .h2_connecting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key)
                .or_default()
                .clone();
            let guard = gate.lock_owned().await;
            if let Some(c) = self.h2.get(key) {
                return Ok((UpstreamConn::H2(c), true));
            }
            Some(guard)
        } else {
            None
        };
        // May an HTTP/1 connection serve this peer? Not for h2-only peers.
        let h2_only = if peer.tls {
            peer.options.alpn == Alpn::H2
        } else {
            peer.options.h2
        };
        let h1_only_fallback = peer.tls && peer.options.alpn == Alpn::H2;
        if !h2_only && let Some(stream) = self.pool.take(key) {
            return Ok((UpstreamConn::H1(stream), true));
        }
        let stream = self.connect(peer).await?;
        let use_h2 = if peer.tls {
            stream.alpn() == Some(b"h2".as_slice())
        } else {
            peer.options.h2
        };
        if !use_h2 {
            if h1_only_fallback {
                return Err(Error::explain(
                    ErrorKind::ConnectError,
                    ErrorSource::Upstream,
                    format!("{peer} did not agree to HTTP/2 (ALPN)"),
                ));
            }
            return Ok((UpstreamConn::H1(stream), false));
        }
        let conn = match timeout(
            peer.options.connect_timeout,
            H2Connection::handshake(stream),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::explain(
                    ErrorKind::ConnectTimedout,
                    ErrorSource::Upstream,
                    format!("HTTP/2 handshake with {peer} timed out"),
                ));
            }
        };
        self.h2.put(key, conn.clone());
        Ok((UpstreamConn::H2(conn), false))
    }

    /// Forget `peer`'s shared HTTP/2 connection (it failed).
    pub fn drop_h2(&self, peer: &HttpPeer) {
        self.h2.remove(peer.reuse_hash());
    }

    /// A new connection to `peer`, never from the pool.
    pub async fn connect(&self, peer: &HttpPeer) -> Result<Stream> {
        let stream = self.connect_transport(peer).await?;
        if !peer.tls {
            return Ok(stream);
        }
        // The handshake counts against the connect timeout too.
        let name = peer.tls_server_name();
        match timeout(
            peer.options.connect_timeout,
            self.tls.connect(stream, &name, &peer.upstream_tls()),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(Error::explain(
                ErrorKind::ConnectTimedout,
                ErrorSource::Upstream,
                format!(
                    "TLS handshake with {peer} took longer than {:?}",
                    peer.options.connect_timeout
                ),
            )),
        }
    }

    async fn connect_transport(&self, peer: &HttpPeer) -> Result<Stream> {
        connect_address(&peer.address, peer.options.connect_timeout, peer).await
    }

    /// Give a connection whose exchange ended cleanly back to the pool.
    pub fn release(&self, peer: &HttpPeer, stream: Stream) {
        self.pool
            .put(peer.reuse_hash(), stream, peer.options.idle_timeout);
    }
}

/// A TCP (with `TCP_NODELAY`) or Unix socket connection to `address` within `limit`;
/// errors name `label` (the peer).
pub(crate) async fn connect_address(
    address: &SocketAddress,
    limit: std::time::Duration,
    label: impl std::fmt::Display,
) -> Result<Stream> {
    let connecting = async {
        match address {
            SocketAddress::Inet(addr) => {
                let s = TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Ok::<_, std::io::Error>(Stream::Tcp(s))
            }
            SocketAddress::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
        }
    };
    match timeout(limit, connecting).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => {
            let kind = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                ErrorKind::ConnectRefused
            } else {
                ErrorKind::ConnectError
            };
            Err(Error::because(
                kind,
                ErrorSource::Upstream,
                format!("connecting to {label}"),
                e,
            ))
        }
        Err(_) => Err(Error::explain(
            ErrorKind::ConnectTimedout,
            ErrorSource::Upstream,
            format!("connecting to {label} took longer than {limit:?}"),
        )),
    }
}

/// Open an exchange over `peer`'s custom transport within its connect timeout. Every
/// failure is a connect failure (retryable as such, reported to `fail_to_connect`):
/// a transport's own connect errors keep their kind and retry decision, any other
/// error becomes a `ConnectError` that wraps it.
async fn open_custom(peer: &HttpPeer, transport: &dyn CustomTransport) -> Result<CustomExchange> {
    let limit = peer.options.connect_timeout;
    match timeout(limit, transport.open(peer)).await {
        Ok(Ok(exchange)) => Ok(exchange),
        Ok(Err(e)) => match e.kind {
            ErrorKind::ConnectRefused | ErrorKind::ConnectTimedout | ErrorKind::ConnectError => {
                Err(e)
            }
            _ => Err(Error::because(
                ErrorKind::ConnectError,
                ErrorSource::Upstream,
                format!("opening an exchange with {peer}"),
                e,
            )),
        },
        Err(_) => Err(Error::explain(
            ErrorKind::ConnectTimedout,
            ErrorSource::Upstream,
            format!("opening an exchange with {peer} took longer than {limit:?}"),
        )),
    }
}

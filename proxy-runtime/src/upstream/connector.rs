//! Opening upstream connections, or taking them from the pool.
//!
//! [`Connector::get`] first asks the [`ConnectionPool`] for an idle connection to an
//! equivalent peer; otherwise it connects (TCP with `TCP_NODELAY`, or a Unix socket)
//! within the peer's connect timeout. [`Connector::release`] gives a connection whose
//! exchange ended cleanly back to the pool.

use std::sync::Arc;

use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout;

use super::HttpPeer;
use super::pool::{ConnectionPool, PoolOptions};
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::protocols::{SocketAddress, Stream};

/// Makes (or reuses) connections to upstream peers.
#[derive(Debug, Clone)]
pub struct Connector {
    pool: Arc<ConnectionPool>,
}

impl Connector {
    /// A connector with a pool of the given size.
    pub fn new(pool: PoolOptions) -> Self {
        Connector {
            pool: ConnectionPool::new(pool),
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

    /// A new connection to `peer`, never from the pool.
    pub async fn connect(&self, peer: &HttpPeer) -> Result<Stream> {
        if peer.tls {
            return Err(Error::explain(
                ErrorKind::Unsupported,
                ErrorSource::Internal,
                format!("TLS to upstream {peer} is not available in this build"),
            )
            .with_retry(crate::error::RetryType::Decided(false)));
        }
        let connecting = async {
            match &peer.address {
                SocketAddress::Inet(addr) => {
                    let s = TcpStream::connect(addr).await?;
                    s.set_nodelay(true)?;
                    Ok::<_, std::io::Error>(Stream::Tcp(s))
                }
                SocketAddress::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
            }
        };
        match timeout(peer.options.connect_timeout, connecting).await {
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
                    format!("connecting to {peer}"),
                    e,
                ))
            }
            Err(_) => Err(Error::explain(
                ErrorKind::ConnectTimedout,
                ErrorSource::Upstream,
                format!(
                    "connecting to {peer} took longer than {:?}",
                    peer.options.connect_timeout
                ),
            )),
        }
    }

    /// Give a connection whose exchange ended cleanly back to the pool.
    pub fn release(&self, peer: &HttpPeer, stream: Stream) {
        self.pool
            .put(peer.reuse_hash(), stream, peer.options.idle_timeout);
    }
}

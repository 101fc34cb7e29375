//! HTTP/2 to upstreams: one connection per peer, shared by every request to it (up to
//! the peer's stream limit), driven by its own task, and retired when the peer sends
//! GOAWAY or the connection fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use h2::client::SendRequest;

use crate::error::{Error, ErrorKind, ErrorSource, Result, RetryType};
use crate::protocols::Stream;

/// A live HTTP/2 connection to an upstream.
#[derive(Clone)]
pub struct H2Connection {
    send: SendRequest<Bytes>,
    alive: Arc<AtomicBool>,
}

impl std::fmt::Debug for H2Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Connection")
            .field("alive", &self.alive.load(Ordering::Relaxed))
            .finish()
    }
}

/// Map an `h2` error from an upstream to ours, with its retry decision: a stream the
/// peer refused, or cut by a GOAWAY before it was processed, can be sent again.
pub fn upstream_h2_error(e: h2::Error, what: &str) -> Box<Error> {
    let retry = match e.reason() {
        Some(h2::Reason::REFUSED_STREAM) => RetryType::Decided(true),
        _ if e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::NO_ERROR) => {
            RetryType::Decided(true)
        }
        _ if e.is_io() => RetryType::ReusedOnly,
        _ => RetryType::Decided(false),
    };
    let kind = if e.is_io() || e.is_go_away() || e.is_reset() {
        ErrorKind::ConnectionClosed
    } else {
        ErrorKind::InvalidUpstreamResponse
    };
    Error::because(kind, ErrorSource::Upstream, what.to_string(), e).with_retry(retry)
}

impl H2Connection {
    /// The HTTP/2 handshake on a connected stream; the connection is driven by a task.
    pub async fn handshake(stream: Stream) -> Result<Self> {
        let (send, connection) = h2::client::Builder::new()
            // Until the peer's first SETTINGS arrive its stream limit is unknown (`h2`
            // would assume "unlimited"): open one stream, queue the others. Streams
            // over the real limit would be refused, and a refused request whose body
            // no longer fits the retry buffer cannot be sent again.
            .initial_max_send_streams(1)
            // Responses are read as fast as their clients take them; one slow client
            // must not stall the other streams sharing this connection. So only the
            // stream windows hold the origin back, and the connection window is the
            // largest there is: what is held per connection stays bounded by the
            // stream window times the streams open.
            .initial_window_size(256 << 10)
            .initial_connection_window_size(super::MAX_WINDOW)
            .max_header_list_size(64 << 10)
            .handshake::<_, Bytes>(stream)
            .await
            .map_err(|e| {
                upstream_h2_error(e, "HTTP/2 handshake with upstream")
                    .with_retry(RetryType::Decided(true))
            })?;
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("upstream HTTP/2 connection ended: {e}");
            }
            flag.store(false, Ordering::Release);
        });
        Ok(H2Connection { send, alive })
    }

    /// Whether the connection can still take requests.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// A handle to open a stream, once the peer's stream limit allows one.
    pub async fn ready(&self) -> Result<SendRequest<Bytes>> {
        self.send
            .clone()
            .ready()
            .await
            .map_err(|e| upstream_h2_error(e, "upstream HTTP/2 connection not usable"))
    }
}

/// Shared HTTP/2 connections by peer key.
#[derive(Debug, Default)]
pub struct H2Pool {
    conns: Mutex<HashMap<u64, H2Connection>>,
}

impl H2Pool {
    /// The live connection for `key`, if any.
    pub fn get(&self, key: u64) -> Option<H2Connection> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        match conns.get(&key) {
            Some(c) if c.is_alive() => Some(c.clone()),
            Some(_) => {
                conns.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Keep `conn` for later requests to `key` (replacing a dead one).
    pub fn put(&self, key: u64, conn: H2Connection) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, conn);
    }

    /// Forget the connection of `key` (after it failed).
    pub fn remove(&self, key: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }
}

//! The HTTP/1.x codec on `httparse`, for both roles.
//!
//! - [`head`]: parsing request and response heads and the RFC 9112 framing rules;
//! - [`body`]: decoding and encoding bodies (length, chunked with trailers, until close);
//! - [`io`]: the per-connection read buffer and vectored write queue;
//! - [`server`]: the downstream side, one client connection serving requests in turn;
//! - [`client`]: the upstream side, one origin connection carrying a request.

pub mod body;
pub mod client;
pub mod head;
pub mod io;
pub mod server;

use std::time::Duration;

pub use head::{BodyFraming, HeadLimits};

/// Limits and timeouts of a downstream HTTP/1.x connection.
#[derive(Debug, Clone)]
pub struct H1ServerOptions {
    /// Head size and header count limits.
    pub head: HeadLimits,
    /// How long a client may take to send a complete request head once it started
    /// (and for the first request, since the connection opened). Slower: 408 and close.
    pub header_read_timeout: Duration,
    /// How long an idle keep-alive connection waits for the next request.
    pub keepalive_timeout: Duration,
    /// How long one read of the request body may wait.
    pub body_read_timeout: Duration,
    /// How long one write to the client may wait.
    pub write_timeout: Duration,
    /// Requests served on one connection before it is closed (`None`: no limit).
    pub max_requests_per_connection: Option<u64>,
}

impl Default for H1ServerOptions {
    fn default() -> Self {
        H1ServerOptions {
            head: HeadLimits::default(),
            header_read_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            max_requests_per_connection: None,
        }
    }
}

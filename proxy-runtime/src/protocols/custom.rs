//! Custom transports: HTTP semantics carried over something that is neither HTTP/1.x
//! nor HTTP/2 on a socket — an in-process handler, a framed protocol over TCP or a Unix
//! socket, a stream of a tunnel, an RPC system.
//!
//! A peer with a transport ([`HttpPeer::custom`], [`HttpPeer::with_transport`]) is
//! served by the third proxy loop (`proxy/custom.rs`), which runs the same phases at the
//! same points as the HTTP/1 and HTTP/2 loops. The transport only moves messages:
//!
//! - [`CustomTransport::open`] starts one request/response exchange (the "connect" step:
//!   its errors are connect errors, see `fail_to_connect`);
//! - the exchange has two halves that work at the same time, so a request body can
//!   still be uploading while the response streams down (as gRPC needs): a
//!   [`RequestSink`] that takes the request head, body pieces and trailers, and a
//!   [`ResponseSource`] that yields [`ResponseEvent`]s — zero or more interim (1xx)
//!   heads, the final head, body pieces, optional trailers, then [`ResponseEvent::End`].
//!
//! The methods return boxed futures ([`BoxFuture`]) so the traits stay object safe: a
//! peer carries its transport as `Arc<dyn CustomTransport>`. That is one allocation per
//! call, which a transport that crosses a socket or a task boundary does not notice.
//!
//! Two transports ship with the runtime: [`in_process::InProcess`] (a handler function
//! in the same process, no sockets) and [`framed::FramedTransport`] (a small
//! length-prefixed framing over TCP or a Unix socket, with a documented wire format).
//!
//! # Errors and retries
//!
//! Errors carry their retry decision ([`RetryType`](crate::RetryType)) as for HTTP/1
//! origins: a failure before any response event on a connection that may have gone
//! stale while pooled should be `ReusedOnly` (and [`CustomExchange::reused`] says
//! whether it was); the proxy loop then refuses to retry non-idempotent requests whose
//! request made it out. Errors after the first response event are never retried. A
//! transport should give errors from the origin side [`ErrorSource::Upstream`]
//! (502 for the client, 504 for timeouts).
//!
//! [`ErrorSource::Upstream`]: crate::ErrorSource::Upstream

pub mod framed;
pub mod in_process;

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::HeaderMap;

use crate::error::Result;
use crate::http::{RequestHeader, ResponseHeader};
use crate::upstream::HttpPeer;

/// A boxed, sendable future: what the custom-transport traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A user-defined way to reach an upstream: opens request/response exchanges.
///
/// One transport value serves many requests (share it as an `Arc`); whatever it pools
/// or caches lives inside it.
///
/// ```
/// use proxy_runtime::prelude::*;
/// use proxy_runtime::protocols::custom::in_process::{InProcess, InProcessRequest, InProcessResponse};
/// use std::sync::Arc;
///
/// let hello = InProcess::new(|req: InProcessRequest| async move {
///     Ok(InProcessResponse::text(200, format!("hello from {}\n", req.head.path())))
/// });
/// let peer = HttpPeer::custom("hello", Arc::new(hello));
/// assert_eq!(peer.to_string(), "custom://hello");
/// ```
pub trait CustomTransport: Send + Sync + fmt::Debug + 'static {
    /// Open an exchange with `peer`'s upstream: a connection, a stream of a tunnel, a
    /// call into an in-process handler. Errors are connect errors: they go through
    /// `fail_to_connect` and are retried like a refused connection. The engine bounds
    /// this call by the peer's `connect_timeout`.
    fn open<'a>(&'a self, peer: &'a HttpPeer) -> BoxFuture<'a, Result<CustomExchange>>;
}

/// One request/response exchange: the two halves, used at the same time.
pub struct CustomExchange {
    /// Where the request goes.
    pub request: Box<dyn RequestSink>,
    /// Where the response comes from.
    pub response: Box<dyn ResponseSource>,
    /// The exchange runs over a connection that served earlier exchanges (it may have
    /// been closed by the upstream while idle): decides `ReusedOnly` retries, and is
    /// what `connected_to_upstream` reports.
    pub reused: bool,
}

impl CustomExchange {
    /// An exchange over a fresh connection (or no connection at all).
    pub fn new(request: impl RequestSink, response: impl ResponseSource) -> Self {
        CustomExchange {
            request: Box::new(request),
            response: Box::new(response),
            reused: false,
        }
    }

    /// Say whether the exchange runs over a reused connection.
    pub fn reused(mut self, reused: bool) -> Self {
        self.reused = reused;
        self
    }
}

impl fmt::Debug for CustomExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomExchange")
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

/// The request half of an exchange.
///
/// The proxy calls `send_head` once, then `send_body` any number of times, and ends the
/// request either with `end_of_stream` on `send_head`/`send_body` or with
/// `send_trailers`. Dropping the sink before the end means the request was abandoned
/// (the client left, or the response ended first): the transport should tell the
/// upstream, e.g. by closing the connection.
pub trait RequestSink: Send + 'static {
    /// The request head (hop-by-hop headers already removed; `Host` set).
    fn send_head(&mut self, head: RequestHeader, end_of_stream: bool) -> BoxFuture<'_, Result<()>>;

    /// A piece of the request body (may be empty when it only carries the end).
    fn send_body(&mut self, data: Bytes, end_of_stream: bool) -> BoxFuture<'_, Result<()>>;

    /// Request trailers; they end the request.
    fn send_trailers(&mut self, trailers: HeaderMap) -> BoxFuture<'_, Result<()>>;
}

/// The response half of an exchange.
///
/// The proxy keeps the future of one `next_event` call alive until it completes (it
/// never drops a pending call to start another one), so implementations need not be
/// cancel safe; the source is dropped when the exchange ends or fails.
pub trait ResponseSource: Send + 'static {
    /// The next piece of the response.
    fn next_event(&mut self) -> BoxFuture<'_, Result<ResponseEvent>>;
}

/// A piece of a response, in the order: `Head` (interim 1xx ones first, then exactly
/// one final one), `Body`*, optionally `Trailers`, then `End`.
#[derive(Debug)]
pub enum ResponseEvent {
    /// A response head: an interim (1xx, not 101) or the final one.
    Head(ResponseHeader),
    /// A piece of the response body. Dropped by the proxy for responses that have no
    /// body (to `HEAD`, `204`, `304`), so a handler may answer `HEAD` like `GET`.
    Body(Bytes),
    /// Response trailers (the response must still end with `End`).
    Trailers(HeaderMap),
    /// The response is complete.
    End,
}

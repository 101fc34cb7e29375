//! The rest of a response body relayed from an HTTP/1.x origin to an HTTP/1.x client
//! inside the kernel (see [`crate::protocols::splice`]): when the proxy and the request
//! leave the bytes alone, they need not be copied into user space and back out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::HttpProxy;
use crate::error::{Error, ErrorKind, ErrorSource, Result, RetryType, io_error};
use crate::protocols::h1::client::ClientSession;
use crate::protocols::splice::{Pipe, RelayError, relay};
use crate::proxy_trait::ProxyHttp;
use crate::session::Session;

/// Set once the system refused `splice` (a sandbox, an old kernel): the process copies
/// from then on.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Smallest body remainder worth a splice: below it, one read and one write of the
/// ordinary path (coalesced with the head) cost less than the pipe's two steps.
const SPLICE_MIN: u64 = 32 * 1024;

impl<P: ProxyHttp> HttpProxy<P> {
    /// Whether this response's body may skip user space, as far as the proxy and the
    /// request are concerned (asked once the response head went to the client): the
    /// option is on, no cache fill and no module sees the body, and the proxy says its
    /// body filters have nothing to do.
    pub(super) fn may_splice_body(&self, session: &Session, ctx: &P::CTX) -> bool {
        self.opts.splice
            && !REFUSED.load(Ordering::Relaxed)
            && !session.cache.enabled()
            && session.modules.is_empty()
            && self.inner.response_body_passthrough(session, ctx)
    }
}

/// Relay the rest of the response body from `client`'s origin to the session's client
/// in the kernel, if both connections allow it now (see
/// [`ClientSession::splice_source`] and
/// [`crate::protocols::h1::server::ServerSession::splice_sink`]). `Ok(false)`: nothing
/// was done, the ordinary path goes on. `Ok(true)`: the body is complete on both sides.
pub(super) async fn splice_rest(
    session: &mut Session,
    client: &mut ClientSession,
    read_timeout: Duration,
) -> Result<bool> {
    let Some((_, left)) = client.splice_source() else {
        return Ok(false);
    };
    if left < SPLICE_MIN || !session.h1_mut().is_some_and(|h1| h1.may_splice(left)) {
        return Ok(false);
    }
    // What is queued for the client (the head, the body bytes that came with it) goes
    // first; then the client must be owed exactly what the origin still sends.
    session.flush().await?;
    let Some(mut pipe) = Pipe::take() else {
        return Ok(false);
    };
    let Some((to, write_timeout)) = session.h1_mut().and_then(|h1| h1.splice_sink(left)) else {
        pipe.give();
        return Ok(false);
    };
    let Some((from, _)) = client.splice_source() else {
        pipe.give();
        return Ok(false);
    };
    let mut moved = 0;
    let relayed = relay(
        &mut pipe,
        from,
        to,
        left,
        (read_timeout, write_timeout),
        &mut moved,
    )
    .await;
    session.count_spliced(moved);
    match relayed {
        Ok(()) => {
            pipe.give();
            client.spliced(left);
            Ok(true)
        }
        Err(RelayError::Unsupported(e)) => {
            // Nothing moved: the copying path takes over, now and from now on.
            tracing::warn!("splice(2) refused ({e}): response bodies are copied from now on");
            REFUSED.store(true, Ordering::Relaxed);
            pipe.give();
            Ok(false)
        }
        Err(e) => {
            // The client was promised more than it got: its connection cannot go on.
            if let Some(h1) = session.h1_mut() {
                h1.set_must_close();
            }
            Err(relay_error(e))
        }
    }
}

/// The engine's error for a relay that stopped early.
fn relay_error(e: RelayError) -> Box<Error> {
    match e {
        RelayError::Read(e) => io_error(
            e,
            ErrorSource::Upstream,
            true,
            "reading response from upstream",
        )
        .with_retry(RetryType::Decided(false)),
        RelayError::ReadClosed => Error::explain(
            ErrorKind::ConnectionClosed,
            ErrorSource::Upstream,
            "upstream closed before the response body was complete",
        ),
        RelayError::ReadTimeout(d) => Error::explain(
            ErrorKind::ReadTimedout,
            ErrorSource::Upstream,
            format!("no progress from upstream within {d:?}"),
        ),
        RelayError::Write(e) => io_error(e, ErrorSource::Downstream, false, "writing response"),
        RelayError::Unsupported(e) => io_error(
            e,
            ErrorSource::Internal,
            false,
            "splicing the response body",
        ),
        RelayError::WriteTimeout(_) => Error::explain(
            ErrorKind::WriteTimedout,
            ErrorSource::Downstream,
            "response write timed out",
        ),
    }
}

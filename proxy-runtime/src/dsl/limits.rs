//! Rate limits declared on routes: `#[route(..., rate_limit = "100/s", by = header("x-api-key"))]`.
//!
//! The compiler emits one [`RouteLimitSpec`] per limited route; the generated proxy
//! builds a [`RateLimiter`] from each and, in `request_filter` (before the declared
//! `request_filter` phases run), calls [`enforce`]: a request over the limit is answered
//! `429 Too Many Requests` with `Retry-After` and goes no further.

use crate::ratelimit::{Decision, LimitOptions, Permit, Rate, RateLimiter, retry_after_secs};
use crate::session::Session;

use super::response::Response;

/// What a route's requests are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitBy {
    /// The client's IP address (the default).
    ClientAddr,
    /// A request header's value; requests without it are counted by client address.
    Header(&'static str),
    /// Nothing: the route's requests share one budget.
    Route,
}

/// A route's limit as declared (compile-time data).
#[derive(Debug, Clone, Copy)]
pub struct RouteLimitSpec {
    /// The route's name (for logs).
    pub route: &'static str,
    /// Requests per period.
    pub rate: Rate,
    /// Requests that may arrive at once (default: the rate's count).
    pub burst: Option<u32>,
    /// Requests in flight at once per key.
    pub concurrency: Option<u32>,
    /// What requests are counted by.
    pub by: LimitBy,
    /// The most keys remembered (least recently seen are forgotten).
    pub max_keys: usize,
}

impl RouteLimitSpec {
    /// The live limiter.
    pub fn limiter(&self) -> RateLimiter {
        RateLimiter::new(
            self.rate,
            LimitOptions {
                burst: self.burst,
                concurrency: self.concurrency,
                max_keys: self.max_keys,
            },
        )
    }
}

/// The key `session`'s request is counted by (`None`: the key header has several
/// different values). Each kind of key starts with its own tag byte, so a header value
/// can never stand for a client address (or the reverse). An empty value counts as none
/// (the client's address).
fn with_key<T>(by: LimitBy, session: &Session, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
    if let LimitBy::Header(name) = by {
        let mut values = session
            .req_header()
            .header_values(name)
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|v| !v.is_empty());
        if let Some(first) = values.next() {
            // Which one would the origin believe? Counting the first would let a
            // client put a fresh value first and its real one second.
            if values.any(|v| v != first) {
                return None;
            }
            // Usual keys fit on the stack: no allocation per request.
            let mut short = [b'h'; 128];
            if let Some(room) = short.get_mut(1..=first.len()) {
                room.copy_from_slice(first);
                return Some(f(&short[..=first.len()]));
            }
            let mut key = Vec::with_capacity(first.len() + 1);
            key.push(b'h');
            key.extend_from_slice(first);
            return Some(f(&key));
        }
    }
    if by == LimitBy::Route {
        return Some(f(b"r"));
    }
    Some(
        match session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        {
            Some(std::net::IpAddr::V4(ip)) => {
                let o = ip.octets();
                f(&[b'4', o[0], o[1], o[2], o[3]])
            }
            Some(std::net::IpAddr::V6(ip)) => {
                let mut key = [b'6'; 17];
                key[1..].copy_from_slice(&ip.octets());
                f(&key)
            }
            None => f(b"u"),
        },
    )
}

/// Count `session`'s request against `limiter`. `Some(permit)`: go on, holding the
/// permit for as long as the request runs (it is the concurrency slot). `None`: the
/// request was over the limit and has been answered `429` with `Retry-After`.
pub async fn enforce(
    limiter: &RateLimiter,
    spec: &RouteLimitSpec,
    session: &mut Session,
) -> crate::Result<Option<Permit>> {
    let Some(decision) = with_key(spec.by, session, |key| limiter.check(key)) else {
        tracing::info!(
            route = spec.route,
            client = ?session.client_addr().map(ToString::to_string),
            "several values of the rate-limit key header: 400"
        );
        Response::text(
            400,
            "400 Bad Request: the rate-limit key header is given twice\n",
        )
        .send(session)
        .await?;
        return Ok(None);
    };
    match decision {
        Decision::Allowed(permit) => Ok(Some(permit)),
        Decision::Limited { retry_after } => {
            let secs = retry_after_secs(retry_after);
            tracing::info!(
                route = spec.route,
                client = ?session.client_addr().map(ToString::to_string),
                retry_after = secs,
                "rate limited: 429"
            );
            Response::text(429, "429 Too Many Requests\n")
                .header("retry-after", secs.to_string())
                .send(session)
                .await?;
            Ok(None)
        }
    }
}

//! The one error type of the runtime.
//!
//! An [`Error`] says *what* went wrong ([`ErrorKind`]), *where* ([`ErrorSource`]: the
//! client side, the origin side, or our own code), whether trying again could help
//! ([`RetryType`]), and carries a human context string plus the underlying cause.
//! The proxy loops use the kind to pick the status sent to the client
//! (see [`crate::proxy_trait::ProxyHttp::fail_to_proxy`]) and the retry flag to decide
//! whether another upstream attempt is made.

use std::fmt;

/// Shorthand used everywhere in the runtime and by phase functions.
pub type Result<T, E = Box<Error>> = std::result::Result<T, E>;

/// Where an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client connection (bad request, client went away).
    Downstream,
    /// The origin connection (refused, reset, timeout, bad response).
    Upstream,
    /// Our own code or user phase code.
    Internal,
}

/// Whether an attempt that failed with this error may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryType {
    /// Decided: retry or not.
    Decided(bool),
    /// Retry only if the connection used was taken from the pool: a pooled connection
    /// may have been closed by the origin while idle, a fresh one has no such excuse.
    ReusedOnly,
}

impl RetryType {
    /// Resolve the decision given whether the failed attempt used a reused connection.
    pub fn retry(self, reused: bool) -> bool {
        match self {
            RetryType::Decided(b) => b,
            RetryType::ReusedOnly => reused,
        }
    }
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    // ---- connecting to an upstream
    /// TCP (or Unix) connect was refused.
    ConnectRefused,
    /// Connecting took longer than the peer's connect timeout.
    ConnectTimedout,
    /// Any other connect failure (unreachable, DNS, ...).
    ConnectError,
    /// No upstream is available (e.g. every backend is unhealthy).
    NoUpstream,
    // ---- I/O on an established connection
    /// Reading took longer than the read timeout.
    ReadTimedout,
    /// Writing took longer than the write timeout.
    WriteTimedout,
    /// The peer closed the connection where more was expected.
    ConnectionClosed,
    /// A read failed (e.g. reset by peer).
    ReadError,
    /// A write failed (e.g. broken pipe).
    WriteError,
    // ---- protocol
    /// The peer sent something that is not valid HTTP; the payload is the HTTP status a
    /// client should see for it (400, 414, 431, 501, 505...).
    InvalidHttp(u16),
    /// The response from the origin could not be parsed.
    InvalidUpstreamResponse,
    /// The origin answered the cache's revalidation with a `304` for a representation
    /// the cache does not hold (another entity-tag): the request is sent again without
    /// validators. Not a failure of the origin: it does not count against retry limits
    /// or passive health.
    NotModifiedElsewhere,
    /// A body exceeded a configured limit.
    BodyTooLarge,
    // ---- decided by phases
    /// A phase asked for this HTTP status to be returned to the client.
    HttpStatus(u16),
    /// A phase failed for its own reasons.
    Internal,
    /// Graceful shutdown in progress.
    ShuttingDown,
    /// A feature that this build or configuration does not provide.
    Unsupported,
    /// Something the user declared or configured is wrong.
    Config,
}

impl ErrorKind {
    /// A short, stable name used in logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "ConnectRefused",
            ErrorKind::ConnectTimedout => "ConnectTimedout",
            ErrorKind::ConnectError => "ConnectError",
            ErrorKind::NoUpstream => "NoUpstream",
            ErrorKind::ReadTimedout => "ReadTimedout",
            ErrorKind::WriteTimedout => "WriteTimedout",
            ErrorKind::ConnectionClosed => "ConnectionClosed",
            ErrorKind::ReadError => "ReadError",
            ErrorKind::WriteError => "WriteError",
            ErrorKind::InvalidHttp(_) => "InvalidHttp",
            ErrorKind::InvalidUpstreamResponse => "InvalidUpstreamResponse",
            ErrorKind::NotModifiedElsewhere => "NotModifiedElsewhere",
            ErrorKind::BodyTooLarge => "BodyTooLarge",
            ErrorKind::HttpStatus(_) => "HttpStatus",
            ErrorKind::Internal => "Internal",
            ErrorKind::ShuttingDown => "ShuttingDown",
            ErrorKind::Unsupported => "Unsupported",
            ErrorKind::Config => "Config",
        }
    }

    /// Whether this kind is a timeout of any sort.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            ErrorKind::ConnectTimedout | ErrorKind::ReadTimedout | ErrorKind::WriteTimedout
        )
    }
}

/// The runtime's error: kind, source, retry decision, context and cause.
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Where it happened.
    pub source: ErrorSource,
    /// Whether another attempt may help.
    pub retry: RetryType,
    /// Free text: which peer, which phase, what value.
    pub context: Option<String>,
    /// The underlying error, if any.
    pub cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind` from `source` with the kind's default retry decision.
    pub fn new(kind: ErrorKind, source: ErrorSource) -> Box<Self> {
        let retry = match kind {
            // Nothing was sent: always safe to try again (maybe another backend).
            ErrorKind::ConnectRefused | ErrorKind::ConnectTimedout | ErrorKind::ConnectError => {
                RetryType::Decided(true)
            }
            _ => RetryType::Decided(false),
        };
        Box::new(Error {
            kind,
            source,
            retry,
            context: None,
            cause: None,
        })
    }

    /// A new error with a context string.
    pub fn explain(kind: ErrorKind, source: ErrorSource, context: impl Into<String>) -> Box<Self> {
        let mut e = Self::new(kind, source);
        e.context = Some(context.into());
        e
    }

    /// A new error wrapping a cause.
    pub fn because(
        kind: ErrorKind,
        source: ErrorSource,
        context: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Box<Self> {
        let mut e = Self::explain(kind, source, context);
        e.cause = Some(cause.into());
        e
    }

    /// An error that makes the client see `status` (for phases answering with an error).
    pub fn status(status: u16) -> Box<Self> {
        Self::new(ErrorKind::HttpStatus(status), ErrorSource::Internal)
    }

    /// An internal error with context, e.g. from user phase code.
    pub fn internal(context: impl Into<String>) -> Box<Self> {
        Self::explain(ErrorKind::Internal, ErrorSource::Internal, context)
    }

    /// Set the retry decision.
    pub fn with_retry(mut self: Box<Self>, retry: RetryType) -> Box<Self> {
        self.retry = retry;
        self
    }

    /// Append to the context (e.g. the peer address).
    pub fn more_context(mut self: Box<Self>, more: impl fmt::Display) -> Box<Self> {
        self.context = Some(match self.context.take() {
            Some(c) => format!("{c}; {more}"),
            None => more.to_string(),
        });
        self
    }

    /// Whether another attempt may help, given whether the connection was reused.
    pub fn retryable(&self, reused: bool) -> bool {
        self.retry.retry(reused)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let src = match self.source {
            ErrorSource::Downstream => "downstream",
            ErrorSource::Upstream => "upstream",
            ErrorSource::Internal => "internal",
        };
        write!(f, "{} ({src})", self.kind.as_str())?;
        match &self.kind {
            ErrorKind::InvalidHttp(s) | ErrorKind::HttpStatus(s) => write!(f, " status {s}")?,
            _ => {}
        }
        if let Some(c) = &self.context {
            write!(f, ": {c}")?;
        }
        if let Some(c) = &self.cause {
            write!(f, ": {c}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_ref()
            .map(|c| c.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// Map an I/O error on an established connection to an [`Error`] of the right kind.
pub(crate) fn io_error(
    e: std::io::Error,
    source: ErrorSource,
    reading: bool,
    context: &'static str,
) -> Box<Error> {
    use std::io::ErrorKind as K;
    let kind = match e.kind() {
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            if reading {
                ErrorKind::ConnectionClosed
            } else {
                ErrorKind::WriteError
            }
        }
        K::TimedOut => {
            if reading {
                ErrorKind::ReadTimedout
            } else {
                ErrorKind::WriteTimedout
            }
        }
        _ => {
            if reading {
                ErrorKind::ReadError
            } else {
                ErrorKind::WriteError
            }
        }
    };
    Error::because(kind, source, context, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_are_retryable_by_default() {
        assert!(Error::new(ErrorKind::ConnectRefused, ErrorSource::Upstream).retryable(false));
        assert!(!Error::new(ErrorKind::ReadError, ErrorSource::Upstream).retryable(true));
    }

    #[test]
    fn reused_only_depends_on_reuse() {
        let e = Error::new(ErrorKind::ConnectionClosed, ErrorSource::Upstream)
            .with_retry(RetryType::ReusedOnly);
        assert!(e.retryable(true));
        assert!(!e.retryable(false));
    }

    #[test]
    fn display_has_kind_source_and_context() {
        let e = Error::explain(
            ErrorKind::InvalidHttp(400),
            ErrorSource::Downstream,
            "bad CL",
        )
        .more_context("peer 1.2.3.4");
        assert_eq!(
            e.to_string(),
            "InvalidHttp (downstream) status 400: bad CL; peer 1.2.3.4"
        );
    }
}

//! Local responses and the outcome of a request phase or route handler.

use bytes::Bytes;
use http::{StatusCode, header};

use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::http::ResponseHeader;
use crate::session::Session;

/// A complete response produced by the proxy itself (not by an upstream).
///
/// ```
/// use proxy_runtime::dsl::Response;
/// let ok = Response::text(200, "ok");
/// let moved = Response::redirect(308, "https://example.com/new");
/// let teapot = Response::new(418).header("x-reason", "short and stout").body("brewing");
/// ```
#[derive(Debug, Clone)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// An `application/json` response (the body is sent as given).
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "application/json")
            .body(body.into())
    }

    /// A `text/html; charset=utf-8` response.
    pub fn html(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/html; charset=utf-8")
            .body(body.into())
    }

    /// A redirect (301, 302, 303, 307 or 308) to `location`.
    pub fn redirect(status: u16, location: impl Into<String>) -> Self {
        Self::new(status).header("location", location.into())
    }

    /// Add a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Send it to the client.
    pub async fn send(self, session: &mut Session) -> Result<()> {
        let status = StatusCode::from_u16(self.status).map_err(|_| {
            Error::explain(
                ErrorKind::Internal,
                ErrorSource::Internal,
                format!("invalid response status {}", self.status),
            )
        })?;
        let mut head = ResponseHeader::new(status, self.headers.len() + 1);
        for (n, v) in self.headers {
            head.append_header(n, v)?;
        }
        head.insert_header(header::CONTENT_LENGTH, self.body.len().to_string())?;
        if !session.is_body_done() {
            // The request body is not read: do not reuse the connection.
            session.set_keepalive_off();
        }
        let head_only = session.req_header().method == http::Method::HEAD || self.body.is_empty();
        session.write_response_header(head, head_only).await?;
        if !head_only {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}

/// What a request phase or route handler decided.
#[derive(Debug)]
pub enum Flow {
    /// Go on: next phase, then the upstream.
    Continue,
    /// Answer with this response and stop.
    Respond(Response),
    /// A response was already written through the session; stop.
    Done,
}

/// Return types a request phase or route handler may have, turned into a [`Flow`].
///
/// `()` and `false` continue; `true` means "answered" (as in `ProxyHttp::request_filter`);
/// a [`Response`] answers; `Option<Response>` answers when `Some`; `Result<T>` of any of
/// these propagates errors.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from a request phase or route handler",
    note = "return (), Response, Option<Response>, Flow, bool, or Result<_> of one of these"
)]
pub trait IntoFlow {
    /// Convert.
    fn into_flow(self) -> Result<Flow>;
}

impl IntoFlow for () {
    fn into_flow(self) -> Result<Flow> {
        Ok(Flow::Continue)
    }
}

impl IntoFlow for bool {
    fn into_flow(self) -> Result<Flow> {
        Ok(if self { Flow::Done } else { Flow::Continue })
    }
}

impl IntoFlow for Flow {
    fn into_flow(self) -> Result<Flow> {
        Ok(self)
    }
}

impl IntoFlow for Response {
    fn into_flow(self) -> Result<Flow> {
        Ok(Flow::Respond(self))
    }
}

impl IntoFlow for Option<Response> {
    fn into_flow(self) -> Result<Flow> {
        Ok(self.map_or(Flow::Continue, Flow::Respond))
    }
}

impl<T: IntoFlow> IntoFlow for Result<T> {
    fn into_flow(self) -> Result<Flow> {
        self?.into_flow()
    }
}

/// Return types of phases that can only succeed or fail: `()` or `Result<()>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from this phase",
    note = "this phase returns () or Result<()>"
)]
pub trait IntoUnitResult {
    /// Convert.
    fn into_unit_result(self) -> Result<()>;
}

impl IntoUnitResult for () {
    fn into_unit_result(self) -> Result<()> {
        Ok(())
    }
}

impl IntoUnitResult for Result<()> {
    fn into_unit_result(self) -> Result<()> {
        self
    }
}

/// Return types of yes/no phases: `bool` or `Result<bool>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from this phase",
    note = "this phase returns bool or Result<bool>"
)]
pub trait IntoDecision {
    /// Convert.
    fn into_decision(self) -> Result<bool>;
}

impl IntoDecision for bool {
    fn into_decision(self) -> Result<bool> {
        Ok(self)
    }
}

impl IntoDecision for Result<bool> {
    fn into_decision(self) -> Result<bool> {
        self
    }
}

/// Return types of `response_body_filter`: `()`, a delay, or `Result` of either.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from response_body_filter",
    note = "return (), Option<Duration>, Result<()> or Result<Option<Duration>>"
)]
pub trait IntoDelay {
    /// Convert.
    fn into_delay(self) -> Result<Option<std::time::Duration>>;
}

impl IntoDelay for () {
    fn into_delay(self) -> Result<Option<std::time::Duration>> {
        Ok(None)
    }
}

impl IntoDelay for Option<std::time::Duration> {
    fn into_delay(self) -> Result<Option<std::time::Duration>> {
        Ok(self)
    }
}

impl IntoDelay for Result<()> {
    fn into_delay(self) -> Result<Option<std::time::Duration>> {
        self.map(|()| None)
    }
}

impl IntoDelay for Result<Option<std::time::Duration>> {
    fn into_delay(self) -> Result<Option<std::time::Duration>> {
        self
    }
}

/// Run a flow's outcome: send a [`Response`] if asked. Returns whether the request was
/// answered.
pub async fn apply_flow(flow: Flow, session: &mut Session) -> Result<bool> {
    match flow {
        Flow::Continue => Ok(false),
        Flow::Done => Ok(true),
        Flow::Respond(r) => {
            r.send(session).await?;
            Ok(true)
        }
    }
}

//! The "downstream" of a subrequest: a request made from inside the proxy (a background
//! cache refresh, a request a phase makes) that runs through the same phases as a
//! client's, with no client connection behind it. The request head and body are given;
//! the response is collected (up to a limit) for whoever asked, or dropped.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::HeaderMap;

use crate::error::Result;
use crate::http::{RequestHeader, ResponseHeader};
use crate::protocols::h1::BodyFraming;

/// A subrequest's side of the exchange.
#[derive(Debug)]
pub struct SubrequestSession {
    req: RequestHeader,
    body: VecDeque<Bytes>,
    body_len: u64,
    trailers: Option<HeaderMap>,
    response: Option<ResponseHeader>,
    collected: Vec<Bytes>,
    collected_len: usize,
    collect_limit: usize,
    truncated: bool,
    finished: bool,
}

/// Runs a subrequest session through a proxy's phases (implemented by the engine; a
/// [`Session`](crate::Session) carries one so phases can make subrequests).
pub trait SubrequestRunner: Send + Sync {
    /// Run `session` (a subrequest) to its end.
    fn run(
        self: std::sync::Arc<Self>,
        session: crate::Session,
    ) -> Pin<Box<dyn Future<Output = crate::Session> + Send>>;
}

impl std::fmt::Debug for dyn SubrequestRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubrequestRunner")
    }
}

/// How deep subrequests may nest (a subrequest making a subrequest...).
pub const MAX_SUBREQUEST_DEPTH: u8 = 4;

/// What a subrequest got back.
#[derive(Debug, Clone)]
pub struct SubrequestResponse {
    /// The response head (`None` if the pipeline failed before answering).
    pub header: Option<ResponseHeader>,
    /// The body, up to the collection limit.
    pub body: Vec<Bytes>,
    /// More body arrived than the limit kept.
    pub truncated: bool,
    /// The response was complete.
    pub complete: bool,
}

impl SubrequestSession {
    /// A subrequest for `req` with `body` (empty: none), keeping at most `collect_limit`
    /// bytes of the response body.
    pub fn new(req: RequestHeader, body: Vec<Bytes>, collect_limit: usize) -> Self {
        let body_len = body.iter().map(|b| b.len() as u64).sum();
        SubrequestSession {
            req,
            body: body.into(),
            body_len,
            trailers: None,
            response: None,
            collected: Vec::new(),
            collected_len: 0,
            collect_limit,
            truncated: false,
            finished: false,
        }
    }

    /// The request head.
    pub fn req_header(&self) -> &RequestHeader {
        &self.req
    }

    /// The request head, for changes.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }

    /// How the body is framed (its length is known).
    pub fn body_framing(&self) -> BodyFraming {
        if self.body_len == 0 {
            BodyFraming::Empty
        } else {
            BodyFraming::Length(self.body_len)
        }
    }

    /// Whether the whole request body was handed out.
    pub fn is_body_done(&self) -> bool {
        self.body.is_empty()
    }

    /// Request trailers (none).
    pub fn request_trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// The next request body piece.
    pub fn read_body(&mut self) -> Option<Bytes> {
        self.body.pop_front()
    }

    /// The response head, once written.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.response.as_ref()
    }

    /// Record the response head.
    pub fn write_response_header(&mut self, resp: ResponseHeader) {
        if !resp.status.is_informational() {
            self.response = Some(resp);
        }
    }

    /// Record a response body piece (kept up to the limit).
    pub fn write_body(&mut self, data: Bytes) {
        if self.collected_len + data.len() > self.collect_limit {
            self.truncated = true;
            return;
        }
        self.collected_len += data.len();
        self.collected.push(data);
    }

    /// The response is complete.
    pub fn finish_response(&mut self) -> Result<()> {
        self.finished = true;
        Ok(())
    }

    /// What was received.
    pub fn into_response(self) -> SubrequestResponse {
        SubrequestResponse {
            header: self.response,
            body: self.collected,
            truncated: self.truncated,
            complete: self.finished,
        }
    }
}

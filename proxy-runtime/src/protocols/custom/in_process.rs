//! The in-process transport: an upstream that is a function in the same process.
//!
//! [`InProcess::new`] takes an async handler `Fn(InProcessRequest) -> Future<Output =
//! Result<InProcessResponse>>`. Each exchange runs the handler in its own task, so it
//! makes progress while the proxy uploads the request or writes to the client; the
//! request body reaches it as a stream ([`RequestBody`]), and the response body is
//! either given whole ([`InProcessResponse::new`]) or streamed afterwards through a
//! [`ResponseWriter`] ([`InProcessResponse::streaming`]). Both directions run over
//! bounded channels, so a slow side slows the other instead of buffering.
//!
//! No sockets are involved; the request still runs every phase, is retried, cached and
//! logged like any proxied request. An error returned by the handler counts as an
//! upstream failure (the client gets a 502 unless the error's kind says otherwise, e.g.
//! `Error::status(503)`), with the retry decision the handler gave it.
//!
//! ```
//! use proxy_runtime::prelude::*;
//! use proxy_runtime::protocols::custom::in_process::{InProcess, InProcessRequest, InProcessResponse};
//!
//! // Echo the request body back, streaming, with the request path in a header.
//! let echo = InProcess::new(|mut req: InProcessRequest| async move {
//!     let mut head = ResponseHeader::build(200, None)?;
//!     head.insert_header("x-path", req.head.path())?;
//!     let (resp, mut writer) = InProcessResponse::streaming(head);
//!     tokio::spawn(async move {
//!         while let Ok(Some(chunk)) = req.body.next_chunk().await {
//!             if writer.send(chunk).await.is_err() {
//!                 return; // nobody reads the response any more
//!             }
//!         }
//!         let _ = writer.finish().await;
//!     });
//!     Ok(resp)
//! });
//! # let _ = echo;
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{
    BoxFuture, CustomExchange, CustomTransport, RequestSink, ResponseEvent, ResponseSource,
};
use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::http::{RequestHeader, ResponseHeader};
use crate::upstream::HttpPeer;

/// Body pieces in flight in either direction before the sender waits.
const CHANNEL_PIECES: usize = 16;

/// A transport whose upstream is the async function `handler`.
pub struct InProcess<F> {
    handler: Arc<F>,
}

impl<F, Fut> InProcess<F>
where
    F: Fn(InProcessRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<InProcessResponse>> + Send + 'static,
{
    /// A transport that answers every exchange with `handler`.
    pub fn new(handler: F) -> Self {
        InProcess {
            handler: Arc::new(handler),
        }
    }
}

impl<F> fmt::Debug for InProcess<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InProcess")
    }
}

impl<F, Fut> CustomTransport for InProcess<F>
where
    F: Fn(InProcessRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<InProcessResponse>> + Send + 'static,
{
    fn open<'a>(&'a self, _peer: &'a HttpPeer) -> BoxFuture<'a, Result<CustomExchange>> {
        let handler = self.handler.clone();
        Box::pin(async move {
            let (head_tx, head_rx) = oneshot::channel::<RequestHeader>();
            let (body_tx, body_rx) = mpsc::channel(CHANNEL_PIECES);
            // The task starts now and waits for the head; it is aborted if the exchange
            // is dropped before the handler is done.
            let task = tokio::spawn(async move {
                let head = head_rx.await.map_err(|_| {
                    Error::explain(
                        ErrorKind::Internal,
                        ErrorSource::Internal,
                        "the exchange ended before a request head",
                    )
                })?;
                let request = InProcessRequest {
                    head,
                    body: RequestBody {
                        rx: body_rx,
                        trailers: None,
                        done: false,
                    },
                };
                handler(request).await
            });
            let sink = InProcessSink {
                head: Some(head_tx),
                body: body_tx,
            };
            let source = InProcessSource {
                task: Some(task),
                queue: VecDeque::new(),
                stream: None,
                ended: false,
            };
            Ok(CustomExchange::new(sink, source))
        })
    }
}

/// A request as the handler sees it.
#[derive(Debug)]
pub struct InProcessRequest {
    /// The request head, as the proxy would send it to an origin (after
    /// `upstream_request_filter`, hop-by-hop headers removed).
    pub head: RequestHeader,
    /// The request body, arriving while the handler runs.
    pub body: RequestBody,
}

/// A piece of the request on its way to the handler.
#[derive(Debug)]
enum RequestPiece {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
}

/// The streamed request body of an [`InProcessRequest`].
#[derive(Debug)]
pub struct RequestBody {
    rx: mpsc::Receiver<RequestPiece>,
    trailers: Option<HeaderMap>,
    done: bool,
}

impl RequestBody {
    /// The next piece of the body; `Ok(None)` at its end. An error means the request
    /// was abandoned before its end (the client left): the body is incomplete.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        match self.rx.recv().await {
            Some(RequestPiece::Data(data)) => Ok(Some(data)),
            Some(RequestPiece::Trailers(t)) => {
                self.trailers = Some(t);
                self.done = true;
                Ok(None)
            }
            Some(RequestPiece::End) => {
                self.done = true;
                Ok(None)
            }
            None => {
                self.done = true;
                Err(Error::explain(
                    ErrorKind::ConnectionClosed,
                    ErrorSource::Downstream,
                    "the request was abandoned before its body ended",
                ))
            }
        }
    }

    /// The whole body in one piece, refusing more than `limit` bytes
    /// ([`ErrorKind::BodyTooLarge`]).
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Bytes> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            if all.len() + chunk.len() > limit {
                return Err(Error::explain(
                    ErrorKind::BodyTooLarge,
                    ErrorSource::Downstream,
                    format!("request body larger than {limit} bytes"),
                ));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    /// The request trailers, once the body has ended with some.
    pub fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// Whether the end of the body has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// A piece of a streamed response on its way to the proxy.
#[derive(Debug)]
enum ResponsePiece {
    Data(Bytes),
    Trailers(HeaderMap),
    End,
}

/// How the body of an [`InProcessResponse`] is given.
#[derive(Debug)]
enum Body {
    Whole(Bytes, Option<HeaderMap>),
    Streamed(mpsc::Receiver<ResponsePiece>),
}

/// What the handler answers.
#[derive(Debug)]
pub struct InProcessResponse {
    interim: Vec<ResponseHeader>,
    head: ResponseHeader,
    body: Body,
}

impl InProcessResponse {
    /// A complete response. `Content-Length` is set from `body` unless the head has one
    /// (or the status has no body: 1xx, 204, 304).
    pub fn new(mut head: ResponseHeader, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        let bodiless = head.status.is_informational()
            || head.status == StatusCode::NO_CONTENT
            || head.status == StatusCode::NOT_MODIFIED;
        if !bodiless && head.header(header::CONTENT_LENGTH).is_none() {
            // A decimal number is always a valid header value.
            let _ = head.insert_header(header::CONTENT_LENGTH, body.len().to_string());
        }
        InProcessResponse {
            interim: Vec::new(),
            head,
            body: Body::Whole(body, None),
        }
    }

    /// A `text/plain` response with `status` (500 if it is not a valid status code).
    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut head = ResponseHeader::new(status, 2);
        let _ = head.insert_header(header::CONTENT_TYPE, "text/plain");
        Self::new(head, body)
    }

    /// A response whose body is written afterwards through the returned
    /// [`ResponseWriter`] (from a spawned task, typically). Without `Content-Length` in
    /// `head`, an HTTP/1.1 client gets the body chunked.
    pub fn streaming(head: ResponseHeader) -> (Self, ResponseWriter) {
        let (tx, rx) = mpsc::channel(CHANNEL_PIECES);
        let resp = InProcessResponse {
            interim: Vec::new(),
            head,
            body: Body::Streamed(rx),
        };
        (resp, ResponseWriter { tx })
    }

    /// Send these trailers after a complete body (ignored for a streamed one: use
    /// [`ResponseWriter::finish_with_trailers`]).
    pub fn with_trailers(mut self, trailers: HeaderMap) -> Self {
        if let Body::Whole(_, t) = &mut self.body {
            *t = Some(trailers);
        }
        self
    }

    /// Send an interim (1xx, e.g. `103 Early Hints`) head before the final one.
    pub fn with_interim(mut self, head: ResponseHeader) -> Self {
        self.interim.push(head);
        self
    }

    /// The final response head.
    pub fn head(&self) -> &ResponseHeader {
        &self.head
    }

    /// The final response head, for changes.
    pub fn head_mut(&mut self) -> &mut ResponseHeader {
        &mut self.head
    }
}

/// Writes the body of a streamed [`InProcessResponse`].
///
/// The response ends with [`finish`](Self::finish) or
/// [`finish_with_trailers`](Self::finish_with_trailers); a writer dropped without
/// either means the upstream failed in the middle of the body, and the client sees it
/// cut short (its connection is closed), as with an origin that breaks mid-body.
#[derive(Debug)]
pub struct ResponseWriter {
    tx: mpsc::Sender<ResponsePiece>,
}

impl ResponseWriter {
    /// Send a piece of the body, waiting while the proxy is behind. An error means
    /// nobody reads the response any more (the client left or the request failed).
    pub async fn send(&mut self, data: impl Into<Bytes>) -> Result<()> {
        let data = data.into();
        if data.is_empty() {
            return Ok(());
        }
        self.put(ResponsePiece::Data(data)).await
    }

    /// End the body.
    pub async fn finish(self) -> Result<()> {
        self.put(ResponsePiece::End).await
    }

    /// End the body with trailers.
    pub async fn finish_with_trailers(self, trailers: HeaderMap) -> Result<()> {
        self.put(ResponsePiece::Trailers(trailers)).await
    }

    async fn put(&self, piece: ResponsePiece) -> Result<()> {
        self.tx.send(piece).await.map_err(|_| {
            Error::explain(
                ErrorKind::ConnectionClosed,
                ErrorSource::Downstream,
                "the response is no longer read",
            )
        })
    }
}

/// The proxy's side of the request half.
struct InProcessSink {
    head: Option<oneshot::Sender<RequestHeader>>,
    body: mpsc::Sender<RequestPiece>,
}

impl InProcessSink {
    /// Hand a piece to the handler. A handler that stopped reading (it answered without
    /// the body) does not fail the exchange: the rest of the body is discarded.
    async fn put(&self, piece: RequestPiece) -> Result<()> {
        let _ = self.body.send(piece).await;
        Ok(())
    }
}

impl RequestSink for InProcessSink {
    fn send_head(&mut self, head: RequestHeader, end_of_stream: bool) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let Some(tx) = self.head.take() else {
                return Err(Error::internal("request head sent twice"));
            };
            // The handler task may have been aborted; the source reports why.
            let _ = tx.send(head);
            if end_of_stream {
                self.put(RequestPiece::End).await?;
            }
            Ok(())
        })
    }

    fn send_body(&mut self, data: Bytes, end_of_stream: bool) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if !data.is_empty() {
                self.put(RequestPiece::Data(data)).await?;
            }
            if end_of_stream {
                self.put(RequestPiece::End).await?;
            }
            Ok(())
        })
    }

    fn send_trailers(&mut self, trailers: HeaderMap) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.put(RequestPiece::Trailers(trailers)))
    }
}

/// The proxy's side of the response half.
struct InProcessSource {
    /// The handler, until it returned.
    task: Option<JoinHandle<Result<InProcessResponse>>>,
    /// Events ready to hand out.
    queue: VecDeque<ResponseEvent>,
    /// The rest of a streamed body.
    stream: Option<mpsc::Receiver<ResponsePiece>>,
    ended: bool,
}

impl Drop for InProcessSource {
    fn drop(&mut self) {
        // Nobody wants the answer any more.
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl InProcessSource {
    async fn next(&mut self) -> Result<ResponseEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                if matches!(event, ResponseEvent::End) {
                    self.ended = true;
                }
                return Ok(event);
            }
            if let Some(task) = &mut self.task {
                let joined = task.await;
                self.task = None;
                let resp = match joined {
                    Ok(Ok(resp)) => resp,
                    Ok(Err(e)) => return Err(handler_error(e)),
                    Err(join) => {
                        let what = if join.is_panic() {
                            "the in-process handler panicked"
                        } else {
                            "the in-process handler was cancelled"
                        };
                        return Err(Error::explain(
                            ErrorKind::Internal,
                            ErrorSource::Upstream,
                            what,
                        ));
                    }
                };
                self.queue
                    .extend(resp.interim.into_iter().map(ResponseEvent::Head));
                self.queue.push_back(ResponseEvent::Head(resp.head));
                match resp.body {
                    Body::Whole(data, trailers) => {
                        if !data.is_empty() {
                            self.queue.push_back(ResponseEvent::Body(data));
                        }
                        if let Some(t) = trailers {
                            self.queue.push_back(ResponseEvent::Trailers(t));
                        }
                        self.queue.push_back(ResponseEvent::End);
                    }
                    Body::Streamed(rx) => self.stream = Some(rx),
                }
                continue;
            }
            if let Some(rx) = &mut self.stream {
                return match rx.recv().await {
                    Some(ResponsePiece::Data(data)) => Ok(ResponseEvent::Body(data)),
                    Some(ResponsePiece::Trailers(t)) => {
                        self.stream = None;
                        self.queue.push_back(ResponseEvent::End);
                        Ok(ResponseEvent::Trailers(t))
                    }
                    Some(ResponsePiece::End) => {
                        self.stream = None;
                        self.ended = true;
                        Ok(ResponseEvent::End)
                    }
                    None => {
                        self.stream = None;
                        Err(Error::explain(
                            ErrorKind::ConnectionClosed,
                            ErrorSource::Upstream,
                            "the in-process response body ended without finish()",
                        ))
                    }
                };
            }
            let what = if self.ended {
                "response event asked for after the end"
            } else {
                "the in-process response is over"
            };
            return Err(Error::internal(what));
        }
    }
}

impl ResponseSource for InProcessSource {
    fn next_event(&mut self) -> BoxFuture<'_, Result<ResponseEvent>> {
        Box::pin(self.next())
    }
}

/// A handler's error, as the upstream failure it is (keeping its kind and retry).
fn handler_error(mut e: Box<Error>) -> Box<Error> {
    e.source = ErrorSource::Upstream;
    e.more_context("in-process handler")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Version};

    fn peer() -> HttpPeer {
        HttpPeer::plain(crate::protocols::SocketAddress::Inet(
            "127.0.0.1:1".parse().expect("address"),
        ))
    }

    async fn events(source: &mut dyn ResponseSource) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match source.next_event().await {
                Ok(ResponseEvent::Head(h)) => out.push(format!("head {}", h.status.as_u16())),
                Ok(ResponseEvent::Body(b)) => {
                    out.push(format!("body {}", String::from_utf8_lossy(&b)))
                }
                Ok(ResponseEvent::Trailers(t)) => out.push(format!("trailers {}", t.len())),
                Ok(ResponseEvent::End) => {
                    out.push("end".into());
                    return out;
                }
                Err(e) => {
                    out.push(format!("error {}", e.kind.as_str()));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn the_handler_sees_the_streamed_body_and_its_answer_becomes_events() {
        let t = InProcess::new(|mut req: InProcessRequest| async move {
            let body = req.body.read_to_end(1024).await?;
            let mut trailers = HeaderMap::new();
            trailers.insert("x-seen", "1".parse().expect("value"));
            Ok(InProcessResponse::text(201, body)
                .with_interim(ResponseHeader::build(103, None)?)
                .with_trailers(trailers))
        });
        let p = peer();
        let mut ex = t.open(&p).await.expect("open");
        let head = RequestHeader::build(Method::POST, "/", Version::HTTP_11).expect("head");
        ex.request.send_head(head, false).await.expect("head");
        ex.request
            .send_body(Bytes::from_static(b"ab"), false)
            .await
            .expect("body");
        ex.request
            .send_body(Bytes::from_static(b"c"), true)
            .await
            .expect("end");
        assert_eq!(
            events(ex.response.as_mut()).await,
            ["head 103", "head 201", "body abc", "trailers 1", "end"]
        );
    }

    #[tokio::test]
    async fn a_writer_dropped_before_finish_is_a_broken_body() {
        let t = InProcess::new(|_req: InProcessRequest| async move {
            let (resp, mut w) = InProcessResponse::streaming(ResponseHeader::build(200, None)?);
            tokio::spawn(async move {
                let _ = w.send("part").await;
                drop(w);
            });
            Ok(resp)
        });
        let p = peer();
        let mut ex = t.open(&p).await.expect("open");
        let head = RequestHeader::build(Method::GET, "/", Version::HTTP_11).expect("head");
        ex.request.send_head(head, true).await.expect("head");
        assert_eq!(
            events(ex.response.as_mut()).await,
            ["head 200", "body part", "error ConnectionClosed"]
        );
    }

    #[tokio::test]
    async fn a_handler_error_is_an_upstream_error() {
        let t = InProcess::new(|_req: InProcessRequest| async move {
            Err::<InProcessResponse, _>(Error::internal("no"))
        });
        let p = peer();
        let mut ex = t.open(&p).await.expect("open");
        let head = RequestHeader::build(Method::GET, "/", Version::HTTP_11).expect("head");
        ex.request.send_head(head, true).await.expect("head");
        let e = match ex.response.next_event().await {
            Err(e) => e,
            Ok(ev) => panic!("expected an error, got {ev:?}"),
        };
        assert_eq!(e.source, ErrorSource::Upstream);
        assert_eq!(crate::proxy_trait::error_status(&e), 502);
    }
}

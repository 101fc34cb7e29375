//! Mirroring (a "pipe subrequest"): a copy of the client's request, body included, goes
//! to a second destination while the request is proxied as usual — shadow traffic for
//! testing a new backend on real requests.
//!
//! The main request never waits for the mirror: body pieces are handed to the mirror's
//! task through a queue bounded in bytes; when the mirror falls behind by more than
//! [`MIRROR_LAG_BYTES`] it is cut off (its request is abandoned, the outcome says so)
//! instead of slowing the client down. The bound is in bytes, not pieces: a body that
//! arrives in many tiny pieces is no reason to cut a fast mirror off. The mirror's response is read and dropped;
//! how it went is available from [`MirrorHandle::outcome`] (and
//! [`Session::mirror_outcome`](crate::Session::mirror_outcome)).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Version, header};
use tokio::sync::mpsc;

use crate::http::RequestHeader;
use crate::protocols::h1::client::{ClientSession, UpstreamEvent};
use crate::protocols::h1::{BodyFraming, HeadLimits};
use crate::protocols::{SocketAddress, Stream};
use crate::upstream::HttpPeer;

/// Body bytes a mirror may fall behind by before it is cut off.
pub const MIRROR_LAG_BYTES: usize = 1 << 20;

/// How a mirrored request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorOutcome {
    /// Still running.
    Pending,
    /// The mirror answered with this status, after receiving the whole request.
    Answered {
        /// Its status.
        status: u16,
        /// Request body bytes it received.
        body_bytes: u64,
    },
    /// It failed (could not connect, broke, timed out) or was cut off for being slow.
    Failed(String),
}

/// The main request's side of a mirror.
#[derive(Debug)]
pub struct MirrorHandle {
    tx: Option<mpsc::UnboundedSender<Bytes>>,
    /// Body bytes handed over and not yet taken by the mirror's task.
    queued: Arc<AtomicUsize>,
    outcome: Arc<Mutex<MirrorOutcome>>,
}

impl MirrorHandle {
    /// Hand a body piece to the mirror, never waiting: a mirror that is behind is cut
    /// off.
    pub fn push(&mut self, piece: &Bytes) {
        let Some(tx) = &self.tx else { return };
        let behind = self.queued.fetch_add(piece.len(), Ordering::AcqRel) + piece.len();
        if behind > MIRROR_LAG_BYTES || tx.send(piece.clone()).is_err() {
            self.tx = None;
            let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
            if *o == MirrorOutcome::Pending {
                *o = MirrorOutcome::Failed("mirror too slow: cut off".into());
            }
        }
    }

    /// The body is complete.
    pub fn finish(&mut self) {
        // Closing the queue tells the task the body ended.
        self.tx = None;
    }

    /// How the mirror went so far.
    pub fn outcome(&self) -> MirrorOutcome {
        self.outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for MirrorHandle {
    fn drop(&mut self) {
        if self.tx.take().is_some() {
            // The request ended before its body did (answered locally, failed): the
            // mirror's copy is incomplete and must not be ended as if it were.
            let mut o = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
            if *o == MirrorOutcome::Pending {
                *o = MirrorOutcome::Failed("the request ended before its body".into());
            }
        }
    }
}

/// Start mirroring `req` to `peer` (HTTP/1.1, plain TCP or Unix socket): the head goes
/// now, body pieces as the main request reads them. `framing` is the client's body
/// framing; `already_read` are body pieces read before the mirror started.
pub fn start(
    peer: &HttpPeer,
    req: &RequestHeader,
    framing: BodyFraming,
    already_read: &[Bytes],
    body_done: bool,
) -> MirrorHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    for piece in already_read {
        queued.fetch_add(piece.len(), Ordering::AcqRel);
        let _ = tx.send(piece.clone());
    }
    let outcome = Arc::new(Mutex::new(MirrorOutcome::Pending));
    let mut head = req.clone();
    super::common::strip_hop_by_hop(head.fields_mut(), false);
    head.version = Version::HTTP_11;
    if head.header(header::HOST).is_none() {
        let _ = head.insert_header(header::HOST, peer.default_host());
    }
    // Keep a length the mirror can trust; anything else goes chunked.
    let framing = match framing {
        BodyFraming::Empty | BodyFraming::Length(0) => BodyFraming::Empty,
        BodyFraming::Length(n) => BodyFraming::Length(n),
        _ => {
            head.remove_header(header::CONTENT_LENGTH);
            let _ = head.insert_header(header::TRANSFER_ENCODING, "chunked");
            BodyFraming::Chunked
        }
    };
    let task_outcome = outcome.clone();
    let task_queued = queued.clone();
    let address = peer.address.clone();
    let options = peer.options.clone();
    tokio::spawn(async move {
        let result = run(
            address,
            options.connect_timeout,
            options.read_timeout,
            head,
            framing,
            (rx, &task_queued),
            &task_outcome,
        )
        .await;
        let mut o = task_outcome.lock().unwrap_or_else(|p| p.into_inner());
        if *o == MirrorOutcome::Pending {
            *o = match result {
                Ok((status, body_bytes)) => MirrorOutcome::Answered { status, body_bytes },
                Err(why) => MirrorOutcome::Failed(why),
            };
        }
        if let MirrorOutcome::Failed(why) = &*o {
            tracing::info!("mirrored request failed: {why}");
        }
    });
    let mut handle = MirrorHandle {
        tx: Some(tx),
        queued,
        outcome,
    };
    if body_done {
        handle.finish();
    }
    handle
}

async fn run(
    address: SocketAddress,
    connect_timeout: Duration,
    read_timeout: Duration,
    head: RequestHeader,
    framing: BodyFraming,
    (mut rx, queued): (mpsc::UnboundedReceiver<Bytes>, &AtomicUsize),
    outcome: &Mutex<MirrorOutcome>,
) -> Result<(u16, u64), String> {
    let connect = async {
        match &address {
            SocketAddress::Inet(a) => tokio::net::TcpStream::connect(a).await.map(Stream::Tcp),
            SocketAddress::Unix(p) => tokio::net::UnixStream::connect(p).await.map(Stream::Unix),
        }
    };
    let stream = tokio::time::timeout(connect_timeout, connect)
        .await
        .map_err(|_| format!("connect to {address}: timed out"))?
        .map_err(|e| format!("connect to {address}: {e}"))?;
    let mut client = ClientSession::new(stream, HeadLimits::default(), false);
    client.write_request_header(&head, framing);
    let mut sent = 0u64;
    if framing.is_empty() {
        client.finish_request(None).map_err(|e| e.to_string())?;
    } else {
        while let Some(piece) = rx.recv().await {
            queued.fetch_sub(piece.len(), Ordering::AcqRel);
            sent += piece.len() as u64;
            client.queue_body(piece).map_err(|e| e.to_string())?;
            client.flush().await.map_err(|e| e.to_string())?;
        }
        // The queue also closes when the main request cut the mirror off: then the
        // body is not complete, and must not be ended as if it were.
        let cut_off = *outcome.lock().unwrap_or_else(|p| p.into_inner()) != MirrorOutcome::Pending;
        if cut_off {
            return Err("cut off".into());
        }
        if let BodyFraming::Length(n) = framing
            && sent != n
        {
            return Err(format!("the body was cut off after {sent} of {n} bytes"));
        }
        client
            .finish_request(None::<&HeaderMap>)
            .map_err(|e| e.to_string())?;
    }
    client.flush().await.map_err(|e| e.to_string())?;
    let mut status = None;
    loop {
        let event = tokio::time::timeout(read_timeout, client.next_event())
            .await
            .map_err(|_| "no answer in time".to_string())?
            .map_err(|e| e.to_string())?;
        match event {
            UpstreamEvent::Head(h) if !h.header.status.is_informational() => {
                status = Some(h.header.status.as_u16());
            }
            UpstreamEvent::End => break,
            _ => {}
        }
    }
    status
        .map(|s| (s, sent))
        .ok_or_else(|| "no response".to_string())
}

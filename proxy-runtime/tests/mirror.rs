//! Mirroring: a copy of each request, body included, goes to a shadow destination;
//! the shadow being slow or down changes nothing for the client.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxy_runtime::prelude::*;
use proxy_runtime::proxy::mirror::MirrorOutcome;
use proxy_runtime::server::{ConnectionTracker, ListenAddr, Listener, ShutdownWatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

fn fnv(data: &[u8], mut h: u64) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

/// Reads one request with a Content-Length body; records (len, checksum); answers 200.
/// With `hold`, it reads nothing until released.
/// The data of a complete chunked body (no extensions, no trailers).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
    out
}

async fn body_origin(hold: Option<Arc<Notify>>) -> (SocketAddr, Arc<Mutex<Vec<(usize, u64)>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<(usize, u64)>>> = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let (seen, hold) = (s2.clone(), hold.clone());
            tokio::spawn(async move {
                if let Some(h) = hold {
                    h.notified().await;
                }
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let end = loop {
                    if let Some(e) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break e;
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                let mut body = buf[end + 4..].to_vec();
                let chunked = head.contains("transfer-encoding: chunked");
                while if chunked {
                    !body.ends_with(b"0\r\n\r\n")
                } else {
                    body.len() < len
                } {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => body.extend_from_slice(&chunk[..n]),
                    }
                }
                if chunked {
                    body = dechunk(&body);
                }
                seen.lock().unwrap().push((body.len(), fnv(&body, FNV0)));
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    (addr, seen)
}

/// Forwards to `main`, mirrors to `shadow`; the logging phase records the outcome.
struct Mirrored {
    main: SocketAddr,
    shadow: SocketAddr,
    outcomes: Arc<Mutex<Vec<Option<MirrorOutcome>>>>,
}

impl ProxyHttp for Mirrored {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _c: &mut ()) -> Result<bool> {
        session.mirror_to(&HttpPeer::new(self.shadow, false, "")?);
        Ok(false)
    }

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        HttpPeer::new(self.main, false, "")
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, _c: &mut ()) {
        self.outcomes.lock().unwrap().push(session.mirror_outcome());
    }
}

async fn proxy(
    main: SocketAddr,
    shadow: SocketAddr,
) -> (SocketAddr, Arc<Mutex<Vec<Option<MirrorOutcome>>>>) {
    let outcomes: Arc<Mutex<Vec<Option<MirrorOutcome>>>> = Arc::default();
    let service = HttpProxyServiceBuilder::new(Mirrored {
        main,
        shadow,
        outcomes: outcomes.clone(),
    })
    .build();
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap();
    let addr = *listener.local_addr().unwrap().as_inet().unwrap();
    tokio::spawn(HttpProxyService::serve_listener(
        service.proxy().clone(),
        listener,
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ));
    (addr, outcomes)
}

async fn upload(addr: SocketAddr, body: &[u8]) -> String {
    post(addr, &format!("content-length: {}", body.len()), body).await
}

/// `POST /up` with the framing field `framing` and the bytes `wire` as they go after the
/// head; the main response.
async fn post(addr: SocketAddr, framing: &str, wire: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!("POST /up HTTP/1.1\r\nhost: x\r\n{framing}\r\nconnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(wire).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("the main response within 10 s")
        .unwrap();
    String::from_utf8_lossy(&raw).to_string()
}

/// Wait until the shadow has received a request.
async fn wait_for_shadow(seen: &Mutex<Vec<(usize, u64)>>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shadow got nothing"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn the_shadow_receives_every_byte() {
    let (main, main_seen) = body_origin(None).await;
    let (shadow, shadow_seen) = body_origin(None).await;
    let (addr, _) = proxy(main, shadow).await;
    let data = body(1 << 20);
    let resp = upload(addr, &data).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let expected = (data.len(), fnv(&data, FNV0));
    assert_eq!(main_seen.lock().unwrap().as_slice(), [expected]);
    wait_for_shadow(&shadow_seen).await;
    assert_eq!(shadow_seen.lock().unwrap().as_slice(), [expected]);
}

#[tokio::test]
async fn a_dead_shadow_changes_nothing_and_is_reported() {
    let (main, main_seen) = body_origin(None).await;
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let (addr, outcomes) = proxy(main, dead).await;
    let resp = upload(addr, &body(1000)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(main_seen.lock().unwrap().len(), 1);
    let outcome = outcomes.lock().unwrap()[0].clone().unwrap();
    assert!(
        !matches!(outcome, MirrorOutcome::Answered { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_stalled_shadow_does_not_hold_the_main_response() {
    let (main, main_seen) = body_origin(None).await;
    let release = Arc::new(Notify::new());
    let (shadow, _) = body_origin(Some(release.clone())).await;
    let (addr, outcomes) = proxy(main, shadow).await;
    // The shadow reads nothing until released; the main response comes first anyway.
    let data = body(8 << 20);
    let resp = upload(addr, &data).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(
        main_seen.lock().unwrap().as_slice(),
        [(data.len(), fnv(&data, FNV0))]
    );
    // Cut off for falling behind (or still pending): never a clean answer yet.
    let outcome = outcomes.lock().unwrap()[0].clone().unwrap();
    assert!(
        !matches!(outcome, MirrorOutcome::Answered { .. }),
        "{outcome:?}"
    );
    release.notify_waiters();
}

#[tokio::test]
async fn a_body_in_many_tiny_chunks_reaches_a_fast_shadow_whole() {
    let (main, main_seen) = body_origin(None).await;
    let (shadow, shadow_seen) = body_origin(None).await;
    let (addr, _) = proxy(main, shadow).await;
    // 2,000 chunks of 8 bytes in one write: many more pieces than the mirror could ever
    // take one by one before the next arrives, but only 16 KB.
    let data = body(16_000);
    let mut chunked = Vec::new();
    for piece in data.chunks(8) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let resp = post(addr, "transfer-encoding: chunked", &chunked).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let expected = (data.len(), fnv(&data, FNV0));
    assert_eq!(main_seen.lock().unwrap().as_slice(), [expected]);
    wait_for_shadow(&shadow_seen).await;
    assert_eq!(shadow_seen.lock().unwrap().as_slice(), [expected]);
}

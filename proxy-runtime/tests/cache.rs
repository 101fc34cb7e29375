//! The response cache over loopback, against a scripted origin: one test per behaviour
//! (miss → hit → expired, revalidation, the lock, stale serving, Vary, ranges, purge,
//! invalidation, what is never stored, keys with the host).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proxy_runtime::cache::Cache;
use proxy_runtime::prelude::*;
use proxy_runtime::server::{ConnectionTracker, ListenAddr, Listener, ShutdownWatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the origin saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

type Script = dyn Fn(&Seen, usize) -> (String, Vec<u8>) + Send + Sync;

/// An origin that answers with what `script` says (head lines and body) and counts
/// the requests per path.
struct Origin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    delay: Arc<Mutex<Duration>>,
}

impl Origin {
    async fn start(
        script: impl Fn(&Seen, usize) -> (String, Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let delay: Arc<Mutex<Duration>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let (s2, d2) = (seen.clone(), delay.clone());
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let (seen, delay, script) = (s2.clone(), d2.clone(), script.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        buf.drain(..end + 4);
                        let mut lines = head.split("\r\n");
                        let mut first = lines.next().unwrap().split(' ');
                        let req = Seen {
                            method: first.next().unwrap().to_string(),
                            path: first.next().unwrap().to_string(),
                            headers: lines
                                .filter_map(|l| l.split_once(':'))
                                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                                .collect(),
                        };
                        let n = {
                            let mut s = seen.lock().unwrap();
                            s.push(req.clone());
                            s.iter().filter(|r| r.path == req.path).count()
                        };
                        let wait = *delay.lock().unwrap();
                        tokio::time::sleep(wait).await;
                        let (lines, body) = script(&req, n);
                        let mut resp = format!("{lines}\r\n");
                        if !lines.to_ascii_lowercase().contains("content-length")
                            && !lines.contains(" 304 ")
                        {
                            resp.push_str(&format!("content-length: {}\r\n", body.len()));
                        }
                        resp.push_str("\r\n");
                        let mut out = resp.into_bytes();
                        if req.method != "HEAD" {
                            out.extend_from_slice(&body);
                        }
                        if sock.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Origin { addr, seen, delay }
    }

    fn count(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    fn last(&self, path: &str) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| r.path == path)
            .cloned()
            .unwrap()
    }
}

/// A proxy that caches everything it may, into `cache`; `PURGE` purges.
struct Caching {
    origin: SocketAddr,
    cache: Arc<Cache>,
}

impl ProxyHttp for Caching {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        HttpPeer::new(self.origin, false, "")
    }

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        session.cache.enable(&self.cache);
        Ok(())
    }

    fn is_purge(&self, session: &Session, _ctx: &()) -> bool {
        session.req_header().method.as_str() == "PURGE"
    }
}

async fn proxy(origin: &Origin) -> (SocketAddr, Arc<Cache>) {
    caching_proxy(origin.addr, Cache::in_memory(64 << 20)).await
}

/// A caching proxy in front of `origin`, storing into `cache`.
async fn caching_proxy(origin: SocketAddr, cache: Arc<Cache>) -> (SocketAddr, Arc<Cache>) {
    let service = HttpProxyServiceBuilder::new(Caching {
        origin,
        cache: cache.clone(),
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
    (addr, cache)
}

/// A response as the client saw it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn cache(&self) -> &str {
        self.h("x-cache-status").unwrap_or("-")
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

/// One request on a fresh connection; reads to the end (Connection: close).
async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        head.push_str("host: example.test\r\n");
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[]).await
}

#[tokio::test]
async fn miss_then_hit_then_expired() {
    let origin = Origin::start(|req, n| {
        let cc = if req.path == "/short" {
            "max-age=1"
        } else {
            "max-age=60"
        };
        (
            format!("HTTP/1.1 200 OK\r\ncache-control: {cc}\r\netag: \"v{n}\""),
            format!("body {n}").into_bytes(),
        )
    })
    .await;
    let (addr, cache) = proxy(&origin).await;
    let r = get(addr, "/a").await;
    assert_eq!(
        (r.status, r.cache(), r.text().as_str()),
        (200, "miss", "body 1")
    );
    let r = get(addr, "/a").await;
    assert_eq!(
        (r.status, r.cache(), r.text().as_str()),
        (200, "hit", "body 1")
    );
    assert!(r.h("age").is_some());
    assert_eq!(origin.count("/a"), 1);
    assert_eq!(cache.stats.hits.load(Ordering::Relaxed), 1);

    // Expired: fetched again with the stored validator; a 200 replaces it.
    get(addr, "/short").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(addr, "/short").await;
    assert_eq!((r.cache(), r.text().as_str()), ("expired", "body 2"));
    assert_eq!(
        origin
            .last("/short")
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"v1\"")
    );
    let r = get(addr, "/short").await;
    assert_eq!((r.cache(), r.text().as_str()), ("hit", "body 2"));
}

#[tokio::test]
async fn a_304_revalidates_the_stored_body() {
    let origin = Origin::start(|req, n| {
        if req.headers.get("if-none-match").map(String::as_str) == Some("\"same\"") {
            return (
                "HTTP/1.1 304 Not Modified\r\ncache-control: max-age=60\r\netag: \"same\"".into(),
                Vec::new(),
            );
        }
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=0\r\netag: \"same\"".into(),
            format!("original {n}").into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    assert_eq!(get(addr, "/r").await.cache(), "miss");
    let r = get(addr, "/r").await;
    assert_eq!(
        (r.status, r.cache(), r.text().as_str()),
        (200, "revalidated", "original 1")
    );
    // The 304 made it fresh for 60 s.
    let r = get(addr, "/r").await;
    assert_eq!((r.cache(), r.text().as_str()), ("hit", "original 1"));
    assert_eq!(origin.count("/r"), 2);
}

/// An origin whose `/x` is stored stale at once (`max-age=0` with a validator) and
/// revalidated with a 304 carrying `not_modified` (extra head lines).
async fn revalidating_origin(first: &'static str, not_modified: &'static str) -> Origin {
    Origin::start(move |req, n| {
        if req.headers.contains_key("if-none-match") {
            return (
                format!("HTTP/1.1 304 Not Modified\r\netag: \"e\"{not_modified}"),
                Vec::new(),
            );
        }
        (
            format!("HTTP/1.1 200 OK\r\ncache-control: max-age=0\r\netag: \"e\"{first}"),
            format!("body {n}").into_bytes(),
        )
    })
    .await
}

#[tokio::test]
async fn a_304_never_brings_a_cookie_or_proxy_credentials_into_the_cache() {
    let origin = revalidating_origin(
        "\r\nproxy-authenticate: Basic realm=x",
        "\r\ncache-control: max-age=60\r\nset-cookie: session=ALICE",
    )
    .await;
    let (addr, _) = proxy(&origin).await;
    assert_eq!(get(addr, "/x").await.cache(), "miss");
    assert_eq!(get(addr, "/x").await.cache(), "revalidated");
    let r = get(addr, "/x").await;
    assert_eq!((r.cache(), r.text().as_str()), ("hit", "body 1"));
    assert_eq!(
        r.h("set-cookie"),
        None,
        "another client's cookie was served"
    );
    assert_eq!(r.h("proxy-authenticate"), None);
}

#[tokio::test]
async fn a_304_that_forbids_storing_ends_the_stored_copy() {
    let origin = revalidating_origin("", "\r\ncache-control: no-store").await;
    let (addr, _) = proxy(&origin).await;
    assert_eq!(get(addr, "/x").await.cache(), "miss");
    let r = get(addr, "/x").await;
    assert_eq!((r.cache(), r.text().as_str()), ("revalidated", "body 1"));
    assert_eq!(get(addr, "/x").await.cache(), "miss");
    assert_eq!(origin.count("/x"), 3);
}

#[tokio::test]
async fn a_304_for_another_entity_tag_is_fetched_again_in_full() {
    // The origin moved to "v2" but answers `If-None-Match: "v1"` with a 304 for "v2"
    // (a broken or load-balanced origin): that 304 says nothing about the body the
    // cache holds (RFC 9111 §4.3.4).
    let origin = Origin::start(|req, n| {
        if req.headers.contains_key("if-none-match") {
            return (
                "HTTP/1.1 304 Not Modified\r\ncache-control: max-age=60\r\netag: \"v2\"".into(),
                Vec::new(),
            );
        }
        let tag = if n == 1 { "v1" } else { "v2" };
        (
            format!("HTTP/1.1 200 OK\r\ncache-control: max-age=0\r\netag: \"{tag}\""),
            format!("body {tag}").into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    assert_eq!(get(addr, "/x").await.text(), "body v1");
    let r = get(addr, "/x").await;
    assert_eq!((r.status, r.text().as_str()), (200, "body v2"));
    assert_eq!(r.h("etag"), Some("\"v2\""));
    assert_eq!(
        origin.count("/x"),
        3,
        "revalidation, then one fetch in full"
    );
    assert_eq!(origin.last("/x").headers.get("if-none-match"), None);
    // What the full fetch brought is what is stored now, and it revalidates normally.
    let r = get(addr, "/x").await;
    assert_eq!((r.cache(), r.text().as_str()), ("revalidated", "body v2"));
}

#[tokio::test]
async fn the_age_after_a_304_is_the_304_exchange_s() {
    let origin = revalidating_origin("\r\nage: 50", "\r\ncache-control: max-age=60").await;
    let (addr, _) = proxy(&origin).await;
    get(addr, "/x").await;
    assert_eq!(get(addr, "/x").await.cache(), "revalidated");
    let r = get(addr, "/x").await;
    assert_eq!(r.cache(), "hit");
    let age: u64 = r.h("age").unwrap().parse().unwrap();
    assert!(age < 50, "the stored Age outlived the revalidation: {age}");
}

#[tokio::test]
async fn request_directives_max_age_min_fresh_max_stale_and_only_if_cached() {
    let origin = Origin::start(|req, n| {
        let cc = if req.path == "/stale" {
            "max-age=0\r\netag: \"s\""
        } else {
            "max-age=100"
        };
        (
            format!("HTTP/1.1 200 OK\r\ncache-control: {cc}"),
            format!("body {n}").into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    assert_eq!(get(addr, "/fresh").await.text(), "body 1");
    // A stored copy is older than `max-age=0` allows, and fresh for less than
    // `min-fresh=200` asks: both go to the origin instead of taking it (browsers send
    // `max-age=0` on reload).
    for cc in ["max-age=0", "min-fresh=200"] {
        let r = send(addr, "GET", "/fresh", &[("cache-control", cc)]).await;
        assert_ne!(r.cache(), "hit", "{cc}");
        assert_ne!(r.cache(), "stale", "{cc}");
    }
    assert_eq!(origin.count("/fresh"), 3);
    // `max-stale` takes a stale copy without asking the origin.
    assert_eq!(get(addr, "/stale").await.cache(), "miss");
    let r = send(addr, "GET", "/stale", &[("cache-control", "max-stale=60")]).await;
    assert_eq!((r.cache(), r.text().as_str()), ("stale", "body 1"));
    assert_eq!(origin.count("/stale"), 1);
    // `only-if-cached`: 504 rather than asking the origin, on a miss and on a stale copy.
    let only = [("cache-control", "only-if-cached")];
    assert_eq!(send(addr, "GET", "/never", &only).await.status, 504);
    assert_eq!(origin.count("/never"), 0);
    assert_eq!(send(addr, "GET", "/stale", &only).await.status, 504);
    assert_eq!(origin.count("/stale"), 1);
}

#[tokio::test]
async fn fifty_concurrent_misses_make_one_origin_request() {
    let origin = Origin::start(|_, n| {
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60".into(),
            format!("only {n}").into_bytes(),
        )
    })
    .await;
    *origin.delay.lock().unwrap() = Duration::from_millis(300);
    let (addr, _) = proxy(&origin).await;
    let tasks: Vec<_> = (0..50).map(|_| tokio::spawn(get(addr, "/hot"))).collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "only 1"));
    }
    assert_eq!(origin.count("/hot"), 1);
}

#[tokio::test]
async fn stale_if_error_on_5xx_and_on_a_dead_origin() {
    let failing = Arc::new(AtomicUsize::new(0));
    let f = failing.clone();
    let origin = Origin::start(move |_, n| {
        if f.load(Ordering::Relaxed) == 1 {
            return ("HTTP/1.1 500 Oops".into(), b"broken".to_vec());
        }
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=1, stale-if-error=300".into(),
            format!("good {n}").into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    assert_eq!(get(addr, "/s").await.text(), "good 1");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    failing.store(1, Ordering::Relaxed);
    let r = get(addr, "/s").await;
    assert_eq!(
        (r.status, r.cache(), r.text().as_str()),
        (200, "stale-if-error", "good 1")
    );

    // An origin that does not answer at all.
    let gone = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let cache = Cache::in_memory(1 << 20);
    let service = HttpProxyServiceBuilder::new(Caching {
        origin: origin.addr,
        cache: cache.clone(),
    })
    .build();
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap();
    let addr2 = *listener.local_addr().unwrap().as_inet().unwrap();
    let proxy2 = service.proxy().clone();
    tokio::spawn(HttpProxyService::serve_listener(
        proxy2,
        listener,
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ));
    failing.store(0, Ordering::Relaxed);
    assert_eq!(get(addr2, "/d").await.cache(), "miss");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Point the proxy at a dead address by swapping the origin's listener out: the
    // simplest dead origin is a closed port, so use a second proxy on `gone`.
    let dead = HttpProxyServiceBuilder::new(Caching {
        origin: gone,
        cache: cache.clone(),
    })
    .build();
    let listener = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap();
    let addr3 = *listener.local_addr().unwrap().as_inet().unwrap();
    tokio::spawn(HttpProxyService::serve_listener(
        dead.proxy().clone(),
        listener,
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ));
    let r = get(addr3, "/d").await;
    assert_eq!(
        (r.status, r.cache(), r.text().as_str()),
        (200, "stale-if-error", "good 1")
    );
}

#[tokio::test]
async fn stale_while_revalidate_refreshes_in_the_background() {
    let origin = Origin::start(|_, n| {
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=1, stale-while-revalidate=60".into(),
            format!("version {n}").into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    assert_eq!(get(addr, "/swr").await.text(), "version 1");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(addr, "/swr").await;
    assert_eq!((r.cache(), r.text().as_str()), ("stale", "version 1"));
    // The refresh runs after the answer: wait for it to land.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(addr, "/swr").await;
        if r.text() == "version 2" {
            assert_eq!(r.cache(), "hit");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never refreshed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(origin.count("/swr"), 2);
}

#[tokio::test]
async fn vary_keeps_variants_apart_and_purge_removes_them_all() {
    let origin = Origin::start(|req, n| {
        let enc = req
            .headers
            .get("accept-encoding")
            .cloned()
            .unwrap_or_default();
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\nvary: Accept-Encoding".into(),
            format!("{enc} {n}").into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    let gz = [("accept-encoding", "gzip")];
    let br = [("accept-encoding", "br")];
    assert_eq!(send(addr, "GET", "/v", &gz).await.text(), "gzip 1");
    assert_eq!(send(addr, "GET", "/v", &br).await.text(), "br 2");
    let r = send(addr, "GET", "/v", &gz).await;
    assert_eq!((r.cache(), r.text().as_str()), ("hit", "gzip 1"));
    let r = send(addr, "GET", "/v", &br).await;
    assert_eq!((r.cache(), r.text().as_str()), ("hit", "br 2"));
    assert_eq!(send(addr, "PURGE", "/v", &[]).await.status, 200);
    assert_eq!(send(addr, "PURGE", "/v", &[]).await.status, 404);
    assert_eq!(send(addr, "GET", "/v", &gz).await.cache(), "miss");
    assert_eq!(send(addr, "GET", "/v", &br).await.cache(), "miss");
}

#[tokio::test]
async fn ranges_on_miss_and_hit_and_416() {
    let origin = Origin::start(|_, _| {
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-type: text/plain".into(),
            b"0123456789abcdefghij".to_vec(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    let r = send(addr, "GET", "/range", &[("range", "bytes=2-5")]).await;
    assert_eq!(
        (r.status, r.cache(), r.text().as_str()),
        (206, "miss", "2345")
    );
    assert_eq!(r.h("content-range"), Some("bytes 2-5/20"));
    assert!(
        !origin.last("/range").headers.contains_key("range"),
        "the origin sent it all"
    );
    let r = send(addr, "GET", "/range", &[("range", "bytes=-3")]).await;
    assert_eq!(
        (r.status, r.cache(), r.text().as_str()),
        (206, "hit", "hij")
    );
    let r = send(addr, "GET", "/range", &[("range", "bytes=0-1,10-11")]).await;
    assert_eq!(r.status, 206);
    assert!(
        r.h("content-type")
            .unwrap()
            .starts_with("multipart/byteranges; boundary=")
    );
    let text = r.text();
    assert!(
        text.contains("Content-Range: bytes 0-1/20\r\n\r\n01"),
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 10-11/20\r\n\r\nab"),
        "{text}"
    );
    let r = send(addr, "GET", "/range", &[("range", "bytes=50-")]).await;
    assert_eq!((r.status, r.h("content-range")), (416, Some("bytes */20")));
    assert_eq!(origin.count("/range"), 1);
}

#[tokio::test]
async fn conditional_requests_and_head_are_answered_from_the_cache() {
    let origin = Origin::start(|_, _| {
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\netag: \"e1\"".into(),
            b"payload".to_vec(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    // On a miss: the origin gets no validator, the client still gets its 304.
    let r = send(addr, "GET", "/c", &[("if-none-match", "\"e1\"")]).await;
    assert_eq!((r.status, r.cache()), (304, "miss"));
    assert!(!origin.last("/c").headers.contains_key("if-none-match"));
    // On a hit.
    let r = send(addr, "GET", "/c", &[("if-none-match", "W/\"e1\"")]).await;
    assert_eq!(
        (r.status, r.cache(), r.h("etag")),
        (304, "hit", Some("\"e1\""))
    );
    assert!(r.body.is_empty());
    let r = send(addr, "HEAD", "/c", &[]).await;
    assert_eq!(
        (r.status, r.cache(), r.h("content-length")),
        (200, "hit", Some("7"))
    );
    assert!(r.body.is_empty());
    assert_eq!(origin.count("/c"), 1);
}

#[tokio::test]
async fn a_304_made_on_a_miss_keeps_the_origin_s_cookie_for_this_client() {
    let origin = Origin::start(|_, _| {
        (
            "HTTP/1.1 200 OK\r\ncache-control: no-store\r\netag: \"e\"\r\nset-cookie: sess=1"
                .into(),
            b"payload".to_vec(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    let r = send(addr, "GET", "/c", &[("if-none-match", "\"e\"")]).await;
    assert_eq!(r.status, 304);
    assert_eq!(r.h("set-cookie"), Some("sess=1"));
}

#[tokio::test]
async fn failed_preconditions_on_a_hit_are_412() {
    let origin = Origin::start(|_, _| {
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\netag: \"e1\"\r\nlast-modified: Tue, 01 Jan 2030 00:00:00 GMT"
                .into(),
            b"payload".to_vec(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    assert_eq!(get(addr, "/p").await.cache(), "miss");
    let cases: [(&[(&str, &str)], u16); 5] = [
        (&[("if-match", "\"other\"")], 412),
        (&[("if-match", "W/\"e1\"")], 412), // If-Match compares strongly
        (&[("if-match", "\"x\", \"e1\"")], 200),
        (&[("if-match", "*")], 200),
        (
            &[("if-unmodified-since", "Mon, 01 Jan 2029 00:00:00 GMT")],
            412,
        ),
    ];
    for (headers, status) in cases {
        let r = send(addr, "GET", "/p", headers).await;
        assert_eq!((r.status, r.cache()), (status, "hit"), "{headers:?}");
    }
    assert_eq!(origin.count("/p"), 1);
}

#[tokio::test]
async fn an_endless_body_is_not_drained_once_the_client_left_and_the_fill_stopped() {
    // An origin streaming a cacheable chunked body until its writes fail.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = listener.local_addr().unwrap();
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stopped.clone();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = sock.read(&mut buf).await;
        let head =
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: chunked\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
        while sock.write_all(chunk.as_bytes()).await.is_ok() {}
        flag.store(true, Ordering::SeqCst);
    });
    // The client leaves while the fill goes on; the fill is abandoned later, past the
    // largest object the cache takes (4 MiB of this 64 MiB cache).
    let (addr, _) = caching_proxy(origin_addr, Cache::in_memory(64 << 20)).await;
    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .unwrap();
    let mut got = vec![0u8; 64 << 10];
    let mut total = 0;
    while total < got.len() {
        total += client.read(&mut got[total..]).await.unwrap();
    }
    drop(client);
    // The proxy stops reading the origin, whose writes then fail (the bound is only a
    // safety net).
    tokio::time::timeout(Duration::from_secs(30), async {
        while !stopped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the proxy kept draining the origin for nobody");
}

#[tokio::test]
async fn what_must_not_be_stored_is_not() {
    let origin = Origin::start(|req, n| {
        let extra = match req.path.as_str() {
            "/no-store" => "cache-control: no-store",
            "/private" => "cache-control: private, max-age=60",
            "/cookie" => "cache-control: max-age=60\r\nset-cookie: session=1",
            _ => "cache-control: max-age=60",
        };
        (
            format!("HTTP/1.1 200 OK\r\n{extra}"),
            format!("{n}").into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    for path in ["/no-store", "/private", "/cookie"] {
        get(addr, path).await;
        let r = get(addr, path).await;
        assert_eq!(r.cache(), "miss", "{path}");
        assert_eq!(origin.count(path), 2, "{path}");
    }
    // A request with Authorization is not answered with a shared response.
    send(addr, "GET", "/auth", &[("authorization", "Bearer x")]).await;
    let r = send(addr, "GET", "/auth", &[("authorization", "Bearer x")]).await;
    assert_eq!(r.cache(), "miss");
}

#[tokio::test]
async fn the_key_includes_the_host() {
    let origin = Origin::start(|req, _| {
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60".into(),
            req.headers["host"].clone().into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    let a = send(addr, "GET", "/same", &[("host", "a.test")]).await;
    let b = send(addr, "GET", "/same", &[("host", "b.test")]).await;
    assert_eq!((a.text().as_str(), b.text().as_str()), ("a.test", "b.test"));
    let a = send(addr, "GET", "/same", &[("host", "a.test")]).await;
    assert_eq!((a.cache(), a.text().as_str()), ("hit", "a.test"));
}

#[tokio::test]
async fn connection_options_cannot_poison_the_cache() {
    let origin = Origin::start(|req, _| {
        let lang = req
            .headers
            .get("accept-language")
            .cloned()
            .unwrap_or_else(|| "none".into());
        let host = req.headers.get("host").cloned().unwrap_or_default();
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\nvary: Accept-Language".into(),
            format!("{host} {lang}").into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    // `Connection: host` does not take the Host away from the origin.
    let r = send(
        addr,
        "GET",
        "/h",
        &[("host", "good.test"), ("connection", "host")],
    )
    .await;
    assert_eq!(r.text(), "good.test none");
    // A field removed as a connection option: the origin answers another request
    // than the one the variant would be filed under, so nothing is stored...
    let fr = [("host", "good.test"), ("accept-language", "fr")];
    let stripped = [
        ("host", "good.test"),
        ("accept-language", "fr"),
        ("connection", "accept-language"),
    ];
    let r = send(addr, "GET", "/v", &stripped).await;
    assert_eq!(r.text(), "good.test none");
    // ... and the next real `fr` client gets its own answer from the origin.
    let r = send(addr, "GET", "/v", &fr).await;
    assert_eq!((r.cache(), r.text().as_str()), ("miss", "good.test fr"));
    let r = send(addr, "GET", "/v", &fr).await;
    assert_eq!((r.cache(), r.text().as_str()), ("hit", "good.test fr"));
}

#[tokio::test]
async fn unsafe_methods_invalidate_the_url() {
    let origin = Origin::start(|req, n| {
        if req.method == "POST" {
            return ("HTTP/1.1 204 No Content".into(), Vec::new());
        }
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60".into(),
            format!("{n}").into_bytes(),
        )
    })
    .await;
    let (addr, _) = proxy(&origin).await;
    get(addr, "/doc").await;
    assert_eq!(get(addr, "/doc").await.cache(), "hit");
    let r = send(addr, "POST", "/doc", &[("content-length", "0")]).await;
    assert_eq!(r.status, 204);
    assert_eq!(get(addr, "/doc").await.cache(), "miss");
}

#[tokio::test]
async fn a_client_leaving_mid_fill_does_not_abort_the_fill() {
    let big = vec![b'x'; 2 << 20];
    let origin = Origin::start(move |_, _| {
        (
            "HTTP/1.1 200 OK\r\ncache-control: max-age=60".into(),
            big.clone(),
        )
    })
    .await;
    let (addr, cache) = proxy(&origin).await;
    {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nhost: example.test\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 1024];
        let _ = s.read(&mut first).await.unwrap();
        // Leave without reading the rest.
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cache.stats.stored.load(Ordering::Relaxed) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "never stored");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = get(addr, "/big").await;
    assert_eq!((r.cache(), r.body.len()), ("hit", 2 << 20));
    assert_eq!(origin.count("/big"), 1);
}

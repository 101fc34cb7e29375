//! Response bodies relayed socket to socket in the kernel (`splice(2)`, Linux): what the
//! client receives is byte for byte what the origin sent, both connections stay usable
//! after a complete body, and every failure on either side ends the exchange the way
//! the copying path does. The `logging` phase reports how many bytes went by splice,
//! so each test knows which path it exercised. (The test proxy allows splicing, so the
//! origin fault tests in `origin_faults.rs` — truncated and reset bodies — take this
//! path too.)

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::*;
use proxy_runtime::prelude::*;

/// A body far larger than socket and pipe buffers, so the relay loops many times.
const BIG: u64 = 8 * 1024 * 1024;

/// The log entry of the `n`-th request (waiting for the `logging` phase).
async fn logged(proxy: &ProxyHandle<TestProxy>, n: usize) -> LogEntry {
    wait_until("logging", || proxy.app().log_calls() > n).await;
    proxy.app().log()[n].clone()
}

#[tokio::test]
async fn a_large_content_length_body_is_spliced_intact_and_both_connections_are_reused() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    for i in 0..3 {
        c.send(format!("GET /big?n={BIG} HTTP/1.1\r\nHost: test\r\n\r\n"))
            .await;
        let r = c.read_response_opts(false, false).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.framing, Framing::Length(BIG));
        assert!(r.complete);
        assert_eq!(r.digest.len, BIG);
        assert!(r.digest.pattern_ok, "the bytes must arrive unchanged");
        let entry = logged(&proxy, i).await;
        assert_eq!(entry.error, None);
        assert_eq!(entry.sent, BIG);
        if cfg!(target_os = "linux") {
            assert!(
                entry.spliced > BIG / 2,
                "most of the body goes by splice, got {} of {BIG}",
                entry.spliced
            );
        } else {
            assert_eq!(entry.spliced, 0, "splice is Linux only");
        }
    }
    // The client connection carried all three; so did one origin connection.
    assert_eq!(origin.accepts(), 1);
    assert_eq!(proxy.app().connections(), vec![false, true, true]);
}

#[tokio::test]
async fn a_small_body_stays_on_the_copying_path() {
    let (_origin, addr, proxy) = origin_and_proxy().await;
    let r = get(addr, "/big?n=20000").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.digest.len, 20_000);
    assert!(r.digest.pattern_ok);
    let entry = logged(&proxy, 0).await;
    assert_eq!((entry.sent, entry.spliced), (20_000, 0));
}

/// A large body (`/big` or `/big-chunked`) through `proxy` arrives intact, by copy.
async fn assert_copied(addr: std::net::SocketAddr, proxy: &ProxyHandle<TestProxy>, path: &str) {
    let mut c = Client::connect(addr).await;
    c.send(format!("GET {path}?n={BIG} HTTP/1.1\r\nHost: test\r\n\r\n"))
        .await;
    let r = c.read_response_opts(false, false).await;
    assert!(r.complete);
    assert_eq!(r.digest.len, BIG);
    assert!(r.digest.pattern_ok);
    let entry = logged(proxy, 0).await;
    assert_eq!((entry.sent, entry.spliced), (BIG, 0));
}

#[tokio::test]
async fn a_proxy_that_filters_bodies_never_has_them_spliced() {
    let origin = Origin::start().await;
    let app = TestProxy::new(origin.addr).without_body_passthrough();
    let (addr, proxy) = start_proxy(app, |b| b).await;
    assert_copied(addr, &proxy, "/big").await;
}

#[tokio::test]
async fn the_splice_option_turns_it_off() {
    let origin = Origin::start().await;
    let (addr, proxy) = start_proxy(TestProxy::new(origin.addr), |b| b.splice(false)).await;
    assert_copied(addr, &proxy, "/big").await;
}

#[tokio::test]
async fn a_chunked_body_is_relayed_by_copy() {
    let (_origin, addr, proxy) = origin_and_proxy().await;
    assert_copied(addr, &proxy, "/big-chunked").await;
}

#[tokio::test]
async fn a_head_request_gets_no_body_and_the_connection_goes_on() {
    let (_origin, addr, _proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(format!("HEAD /big?n={BIG} HTTP/1.1\r\nHost: test\r\n\r\n"))
        .await;
    let r = c.read_response_opts(true, true).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.head.header("content-length"),
        Some(BIG.to_string().as_str())
    );
    assert!(r.body.is_empty());
    c.send("GET /echo HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert_eq!(c.read_response().await.text(), "GET /echo");
}

#[tokio::test]
async fn a_client_that_reads_slowly_gets_every_byte() {
    let (_origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(format!("GET /big?n={BIG} HTTP/1.1\r\nHost: test\r\n\r\n"))
        .await;
    // Let every buffer on the way fill up: the relay must wait for the client, not
    // drop or reorder anything.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = c.read_response_opts(false, false).await;
    assert!(r.complete);
    assert_eq!(r.digest.len, BIG);
    assert!(r.digest.pattern_ok);
    assert_eq!(logged(&proxy, 0).await.error, None);
}

#[tokio::test]
async fn a_client_leaving_mid_body_gives_up_the_origin_connection() {
    let (origin, addr, proxy) = origin_and_proxy().await;
    let mut c = Client::connect(addr).await;
    c.send(format!(
        "GET /big?n={} HTTP/1.1\r\nHost: test\r\n\r\n",
        64 * BIG
    ))
    .await;
    let head = c.read_head().await;
    assert_eq!(head.status, 200);
    assert!(!c.read_some().await.is_empty());
    drop(c);
    let entry = logged(&proxy, 0).await;
    assert!(
        entry.error.is_some(),
        "a body cut by the client is an error"
    );
    assert!(entry.sent < 64 * BIG);
    // The origin connection was mid-body: it is closed, not pooled.
    origin.wait_all_closed().await;
    let r = get(addr, "/echo?after").await;
    assert_eq!(r.text(), "GET /echo?after");
}

/// Response body bytes spliced, as the `logging` phases of the two DSL proxies below
/// last saw them.
static PLAIN_SPLICED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);
static FILTERED_SPLICED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// Declared without a body filter: the compiler lets the engine splice.
#[proxy_runtime::proxy(name = "plain")]
mod plain {
    use proxy_runtime::prelude::*;

    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Origin;

    #[route(ANY, "/{*path}", to = Origin)]
    fn everything() {}

    #[phase(logging)]
    fn log(session: &mut Session) {
        super::PLAIN_SPLICED.store(
            session.body_bytes_spliced(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

/// Declared with a body filter that must see every byte: no splice.
#[proxy_runtime::proxy(name = "filtered")]
mod filtered {
    use proxy_runtime::prelude::*;

    #[ctx]
    #[derive(Default)]
    pub struct Ctx {
        pub seen: u64,
    }

    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Origin;

    #[route(ANY, "/{*path}", to = Origin)]
    fn everything() {}

    #[phase(response_body_filter)]
    fn count(body: &mut Option<Bytes>, ctx: &mut Ctx) {
        ctx.seen += body.as_ref().map_or(0, |b| b.len() as u64);
    }

    #[phase(logging)]
    fn log(session: &mut Session, ctx: &Ctx) {
        assert_eq!(
            ctx.seen,
            session.body_bytes_sent(),
            "the filter saw every byte"
        );
        super::FILTERED_SPLICED.store(
            session.body_bytes_spliced(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

#[tokio::test]
async fn a_dsl_proxy_splices_unless_it_declares_a_body_filter() {
    use std::sync::atomic::Ordering::SeqCst;
    let origin = Origin::start().await;
    let at = origin.addr.to_string();

    let conf = plain::config().with_upstream("Origin", &[at.as_str()]);
    let (addr, _plain) = start_proxy(plain::Proxy::new(&conf).unwrap(), |b| b).await;
    let r = get(addr, &format!("/big?n={BIG}")).await;
    assert!(r.digest.pattern_ok && r.digest.len == BIG);
    wait_until("logging", || PLAIN_SPLICED.load(SeqCst) != u64::MAX).await;
    let spliced = PLAIN_SPLICED.load(SeqCst);
    if cfg!(target_os = "linux") {
        assert!(spliced > BIG / 2, "spliced {spliced} of {BIG}");
    }

    let conf = filtered::config().with_upstream("Origin", &[at.as_str()]);
    let (addr, _filtered) = start_proxy(filtered::Proxy::new(&conf).unwrap(), |b| b).await;
    let r = get(addr, &format!("/big?n={BIG}")).await;
    assert!(r.digest.pattern_ok && r.digest.len == BIG);
    wait_until("logging", || FILTERED_SPLICED.load(SeqCst) != u64::MAX).await;
    assert_eq!(FILTERED_SPLICED.load(SeqCst), 0);
}

#[tokio::test]
async fn an_origin_stalling_mid_body_hits_the_read_timeout() {
    let origin = Origin::start().await;
    let app = TestProxy::new(origin.addr).with_read_timeout(std::time::Duration::from_millis(300));
    let (addr, proxy) = start_proxy(app, |b| b).await;
    let mut c = Client::connect(addr).await;
    // 10,000 bytes, then nothing (the origin waits for a gate nobody opens).
    c.send("GET /reset-mid-body HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let r = c.read_response_opts(false, false).await;
    assert!(!r.complete);
    assert_eq!(r.digest.len, 10_000);
    assert!(c.is_closed().await);
    let error = logged(&proxy, 0).await.error.expect("timed out");
    assert!(error.contains("no progress from upstream"), "{error}");
    origin.open_gate();
}

#[tokio::test]
async fn a_client_that_stops_reading_hits_the_write_timeout() {
    let origin = Origin::start().await;
    let (addr, proxy) = start_proxy(TestProxy::new(origin.addr), |b| {
        b.write_timeout(std::time::Duration::from_millis(300))
    })
    .await;
    let mut c = Client::connect(addr).await;
    // Far more than the socket buffers on the way hold; the client never reads.
    c.send(format!(
        "GET /big?n={} HTTP/1.1\r\nHost: test\r\n\r\n",
        64 * BIG
    ))
    .await;
    let entry = logged(&proxy, 0).await;
    let error = entry.error.expect("timed out");
    assert!(error.contains("write timed out"), "{error}");
    if cfg!(target_os = "linux") {
        assert!(entry.spliced > 0, "the relay was writing when it timed out");
    }
    // The origin connection was mid-body: it is closed, not pooled.
    origin.wait_all_closed().await;
}

/// A proxy to an origin on a Unix domain socket that records what it spliced.
struct ToUnix {
    path: std::path::PathBuf,
    spliced: std::sync::Mutex<Vec<(u64, u64)>>,
}

impl ProxyHttp for ToUnix {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<HttpPeer> {
        HttpPeer::new(format!("unix:{}", self.path.display()), false, "")
    }

    fn response_body_passthrough(&self, _: &Session, _: &()) -> bool {
        true
    }

    async fn logging(&self, session: &mut Session, _: Option<&Error>, _: &mut ()) {
        self.spliced
            .lock()
            .unwrap()
            .push((session.body_bytes_sent(), session.body_bytes_spliced()));
    }
}

/// Serve `GET`s on a Unix socket: `Content-Length: BIG` and the test pattern, kept alive.
async fn unix_origin(listener: tokio::net::UnixListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            loop {
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                head.clear();
                let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
                s.write_all(resp.as_bytes()).await.unwrap();
                let mut sent = 0u64;
                while sent < BIG {
                    let len = (BIG - sent).min(64 * 1024) as usize;
                    s.write_all(pattern_at(sent, len)).await.unwrap();
                    sent += len as u64;
                }
            }
        });
    }
}

#[tokio::test]
async fn a_body_from_a_unix_socket_origin_is_spliced_too() {
    let dir = std::env::temp_dir().join(format!("proxy-splice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("origin.sock");
    let _ = std::fs::remove_file(&path);
    tokio::spawn(unix_origin(tokio::net::UnixListener::bind(&path).unwrap()));
    let app = ToUnix {
        path: path.clone(),
        spliced: std::sync::Mutex::new(Vec::new()),
    };
    let (addr, proxy) = start_proxy(app, |b| b).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..2 {
        c.send("GET /big HTTP/1.1\r\nHost: test\r\n\r\n").await;
        let r = c.read_response_opts(false, false).await;
        assert!(r.complete);
        assert_eq!(r.digest.len, BIG);
        assert!(r.digest.pattern_ok);
    }
    wait_until("logging", || proxy.app().spliced.lock().unwrap().len() == 2).await;
    for (sent, spliced) in proxy.app().spliced.lock().unwrap().iter() {
        assert_eq!(*sent, BIG);
        if cfg!(target_os = "linux") {
            assert!(*spliced > BIG / 2, "spliced {spliced} of {BIG}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! TLS on both sides of the proxy: certificate choice by SNI, ALPN, upstream
//! certificate verification, client certificates (mTLS), and certificate reload
//! without dropping connections. Every certificate is made at test time (rcgen).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod h2common;

use h2common::*;
use proxy_runtime::prelude::HttpPeer;
use proxy_runtime::protocols::tls::{Alpn, TlsServerSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A proxy in front of one cleartext HTTP/1 origin, with these TLS settings.
async fn proxy_with_tls(settings: TlsServerSettings) -> (TestOrigin, RunningProxy<RouteProxy>) {
    let origin = TestOrigin::start(OriginConfig::plain(Proto::H1)).await;
    let peer = HttpPeer::new(origin.addr, false, "").unwrap();
    let proxy = run_proxy(
        RouteProxy::new([("h1".to_string(), peer)]),
        Some(settings),
        |b| b,
    )
    .await;
    (origin, proxy)
}

/// One request over an established TLS stream, by the protocol ALPN chose.
async fn request_over(io: BoxIo, proto: Proto, path: &str) -> Outcome {
    let mut c = DownClient::over(proto, io).await;
    c.exchange(&Exchange::get(path)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_unknown_names_get_the_first() {
    let pki = Pki::new("sni");
    let a = pki.server_cert(&["a.test"]);
    let b = pki.server_cert(&["b.test", "*.b.test"]);
    let settings = TlsServerSettings::new(&a.cert, &a.key).with_cert(&b.cert, &b.key);
    let (_origin, proxy) = proxy_with_tls(settings).await;
    let addr = proxy.tls_addr();

    for (sni, want, name) in [
        ("a.test", &a, "a"),
        ("b.test", &b, "b"),
        ("www.b.test", &b, "b (wildcard)"),
        ("unknown.test", &a, "the default (first)"),
        // An IP address as the server name: the client sends no SNI at all.
        ("127.0.0.1", &a, "the default (first), without SNI"),
    ] {
        let s = tls_connect(addr, any_cert_client_config(&[b"h2"]), sni)
            .await
            .unwrap_or_else(|e| panic!("handshake with SNI {sni}: {e}"));
        assert!(
            leaf_of(&s) == want.der,
            "SNI {sni:?} should get certificate {name}"
        );
    }

    // A verifying client accepts what it gets for a known name, and is served.
    for (sni, want) in [("a.test", &a), ("b.test", &b)] {
        let s = tls_connect(addr, pki.client_config(&[b"h2"], None), sni)
            .await
            .unwrap_or_else(|e| panic!("verified handshake with SNI {sni}: {e}"));
        assert!(leaf_of(&s) == want.der);
        let out = request_over(Box::new(s), Proto::H2, "/sni?n=10").await;
        assert_eq!(out.status, 200, "{out:?}");
        assert_eq!(out.body.len, 10);
    }
    // ... and refuses the default certificate for a name it does not cover.
    assert!(
        tls_connect(addr, pki.client_config(&[b"h2"], None), "unknown.test")
            .await
            .is_err(),
        "a verifying client must refuse the default certificate for another name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_picks_h2_when_offered_and_http1_otherwise() {
    let pki = Pki::new("alpn");
    let (_origin, proxy) = proxy_with_tls(proxy_tls_settings(&pki)).await;
    let addr = proxy.tls_addr();
    // (protocols offered, protocol agreed, what to speak)
    type AlpnCase<'a> = (&'a [&'a [u8]], Option<&'a [u8]>, Proto);
    let cases: [AlpnCase<'_>; 5] = [
        (&[b"h2", b"http/1.1"], Some(b"h2"), Proto::H2),
        (&[b"http/1.1", b"h2"], Some(b"h2"), Proto::H2),
        (&[b"http/1.1"], Some(b"http/1.1"), Proto::H1),
        (&[], None, Proto::H1),
        // curl --http1.0 offers nothing else.
        (&[b"http/1.0"], Some(b"http/1.0"), Proto::H1),
    ];
    for (offered, agreed, proto) in cases {
        let s = tls_connect(addr, pki.client_config(offered, None), PROXY_NAME)
            .await
            .unwrap();
        assert_eq!(
            alpn_of(&s).as_deref(),
            agreed,
            "offered {:?}",
            offered
                .iter()
                .map(|p| String::from_utf8_lossy(p))
                .collect::<Vec<_>>()
        );
        let out = request_over(Box::new(s), proto, "/alpn?n=1000&trailers=1").await;
        assert_eq!(out.status, 200, "{proto:?}: {out:?}");
        assert!(out.complete);
        assert_eq!(out.body.len, 1000);
        assert_eq!(out.body.hex(), pattern_sum(1000));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_certificates_are_verified_against_the_ca_file() {
    let pki = Pki::new("upstream-verify");
    let other = Pki::new("upstream-other-ca");
    let mut routes = Vec::new();
    let mut origins = Vec::new();
    // (route suffix, SNI, CA, verify_cert, verify_hostname, expected status)
    let variants: [(&str, &str, &Pki, bool, bool, u16); 6] = [
        ("good", ORIGIN_NAME, &pki, true, true, 200),
        ("wrong-name", "wrong.test", &pki, true, true, 502),
        (
            "wrong-name-hostname-off",
            "wrong.test",
            &pki,
            true,
            false,
            200,
        ),
        ("other-ca", ORIGIN_NAME, &other, true, true, 502),
        (
            "other-ca-hostname-off",
            ORIGIN_NAME,
            &other,
            true,
            false,
            502,
        ),
        (
            "other-ca-verify-off",
            "wrong.test",
            &other,
            false,
            false,
            200,
        ),
    ];
    for proto in [Proto::H1, Proto::H2] {
        let origin = TestOrigin::start(OriginConfig::tls(proto, &pki)).await;
        for (name, sni, ca, verify_cert, verify_hostname, _) in &variants {
            let mut peer = origin.peer(&pki);
            peer.sni = sni.to_string();
            peer.options.ca_file = Some(ca.ca_file.clone());
            peer.options.verify_cert = *verify_cert;
            peer.options.verify_hostname = *verify_hostname;
            routes.push((format!("{}-{name}", proto.as_str()), peer));
        }
        origins.push(origin);
    }
    let proxy = run_proxy(RouteProxy::new(routes), None, |b| b).await;
    for proto in [Proto::H1, Proto::H2] {
        for (name, _, _, _, _, want) in &variants {
            let route = format!("{}-{name}", proto.as_str());
            let mut c = DownClient::connect(Down::H1, &proxy, &pki).await;
            let out = c
                .exchange(&Exchange::get("/verify?n=5").header("x-route", &route))
                .await;
            assert_eq!(out.status, *want, "route {route}: {out:?}");
            if *want == 200 {
                assert_eq!(
                    out.header("x-origin-proto"),
                    Some(proto.as_str()),
                    "{route}"
                );
                assert_eq!(out.body.len, 5, "{route}");
            }
        }
    }
    // The failures were the proxy refusing the origins' certificates: the origins saw
    // those handshakes abandoned.
    for o in &origins {
        assert!(
            o.tls_failures() > 0,
            "{:?} origin saw no refused handshake",
            o.proto
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_alpn_follows_the_peer_options() {
    let pki = Pki::new("upstream-alpn");
    let h1 = TestOrigin::start(OriginConfig::tls(Proto::H1, &pki)).await;
    let h2 = TestOrigin::start(OriginConfig::tls(Proto::H2, &pki)).await;
    let with_alpn = |o: &TestOrigin, alpn| {
        let mut p = o.peer(&pki);
        p.options.alpn = alpn;
        p
    };
    let routes = [
        ("h2h1-to-h1".to_string(), with_alpn(&h1, Alpn::H2H1)),
        ("h2h1-to-h2".to_string(), with_alpn(&h2, Alpn::H2H1)),
        ("h2-to-h1-only".to_string(), with_alpn(&h1, Alpn::H2)),
    ];
    let proxy = run_proxy(RouteProxy::new(routes), None, |b| b).await;
    let mut c = DownClient::connect(Down::H2c, &proxy, &pki).await;
    for (route, want_status, want_proto) in [
        ("h2h1-to-h1", 200, Some("h1")),
        ("h2h1-to-h2", 200, Some("h2")),
        // The origin speaks no HTTP/2 and the peer accepts nothing else.
        ("h2-to-h1-only", 502, None),
    ] {
        let out = c
            .exchange(&Exchange::get("/alpn?n=3").header("x-route", route))
            .await;
        assert_eq!(out.status, want_status, "{route}: {out:?}");
        if want_proto.is_some() {
            assert_eq!(out.header("x-origin-proto"), want_proto, "{route}");
        }
    }
}

/// Whether a TLS client (with or without a certificate) gets an HTTP/1 answer.
async fn served_with_client_cert(
    addr: std::net::SocketAddr,
    pki: &Pki,
    cert: Option<&CertFiles>,
) -> bool {
    let Ok(mut s) = tls_connect(addr, pki.client_config(&[b"http/1.1"], cert), PROXY_NAME).await
    else {
        return false; // refused during the handshake
    };
    // With TLS 1.3 the client's handshake completes before the server has checked the
    // client's certificate: a refusal shows on the first read.
    if s.write_all(b"GET /mtls HTTP/1.1\r\nHost: proxy.test\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let _ = bounded("the mTLS answer", s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || text.starts_with("HTTP/1.1 200"),
        "a refused client gets nothing, an accepted one a 200: {text:?}"
    );
    !got.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_clients_without_a_valid_certificate() {
    let pki = Pki::new("mtls");
    let stranger_ca = Pki::new("mtls-stranger");
    let good = pki.client_cert("client.test");
    let stranger = stranger_ca.client_cert("stranger.test");

    let mut required = proxy_tls_settings(&pki);
    required.client_ca = Some(pki.ca_file.clone());
    required.client_auth_required = true;
    let (_o1, strict) = proxy_with_tls(required).await;
    assert!(
        !served_with_client_cert(strict.tls_addr(), &pki, None).await,
        "required client auth: a client without a certificate is refused"
    );
    assert!(
        !served_with_client_cert(strict.tls_addr(), &pki, Some(&stranger)).await,
        "required client auth: a certificate from another CA is refused"
    );
    assert!(
        served_with_client_cert(strict.tls_addr(), &pki, Some(&good)).await,
        "required client auth: a certificate from the CA is accepted"
    );

    let mut optional = proxy_tls_settings(&pki);
    optional.client_ca = Some(pki.ca_file.clone());
    optional.client_auth_required = false;
    let (_o2, lenient) = proxy_with_tls(optional).await;
    assert!(
        served_with_client_cert(lenient.tls_addr(), &pki, None).await,
        "optional client auth: a client without a certificate is served"
    );
    assert!(
        served_with_client_cert(lenient.tls_addr(), &pki, Some(&good)).await,
        "optional client auth: a certificate from the CA is accepted"
    );
    assert!(
        !served_with_client_cert(lenient.tls_addr(), &pki, Some(&stranger)).await,
        "optional client auth: a certificate that is presented is still verified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_new_handshakes_the_new_certificate_and_keeps_open_connections() {
    let pki = Pki::new("reload");
    let first = pki.server_cert(&["reload.test"]);
    let (_origin, proxy) = proxy_with_tls(TlsServerSettings::new(&first.cert, &first.key)).await;
    let addr = proxy.tls_addr();
    let acceptor = proxy.acceptor.clone().unwrap();
    // A fresh client config per connection: a client resuming an earlier TLS session
    // does a handshake without any certificate, and would see the old one again.
    let config = || pki.client_config(&[b"h2"], None);

    // A connection made before the reload, kept open.
    let s1 = tls_connect(addr, config(), "reload.test").await.unwrap();
    assert!(leaf_of(&s1) == first.der);
    let mut old = DownClient::over(Proto::H2, Box::new(s1)).await;
    assert_eq!(
        old.exchange(&Exchange::get("/before?n=7")).await.status,
        200
    );

    // Renew the files and reload.
    let second = pki.renew(&first, &["reload.test"]);
    assert!(second.der != first.der);
    acceptor.reload().unwrap();

    let s2 = tls_connect(addr, config(), "reload.test").await.unwrap();
    assert!(
        leaf_of(&s2) == second.der,
        "a handshake after the reload gets the new certificate"
    );
    let mut new = DownClient::over(Proto::H2, Box::new(s2)).await;
    let out = new.exchange(&Exchange::get("/after?n=7")).await;
    assert_eq!(out.status, 200);

    // The connection made before the reload still works.
    let out = old.exchange(&Exchange::get("/old-conn?n=70000")).await;
    assert_eq!(out.status, 200, "{out:?}");
    assert!(out.complete);
    assert_eq!(out.body.hex(), pattern_sum(70000));

    // A reload that cannot read the files keeps the current certificate.
    std::fs::write(&second.key, "not a key").unwrap();
    assert!(
        acceptor.reload().is_err(),
        "a broken key must fail the reload"
    );
    let s3 = tls_connect(addr, config(), "reload.test").await.unwrap();
    assert!(
        leaf_of(&s3) == second.der,
        "a failed reload keeps the certificate in use"
    );
}

/// Large bodies over TLS to a slow reader, both ways: the last bytes must not stay in
/// the TLS layer's buffer. A write to a TLS stream may be accepted into the TLS buffer
/// while the socket is full; only a flush sends it then. The readers here are slow
/// (small socket buffers, small reads; the proxy's client-side sockets have a small
/// send buffer) so the proxy's sockets are full when it writes the end of a body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_over_tls_reach_slow_readers_to_the_last_byte() {
    const N: u64 = 16 << 20;
    let pki = Pki::new("tls-flush");
    let mut cfg = OriginConfig::tls(Proto::H1, &pki);
    cfg.slow_reader = true;
    let origin = TestOrigin::start(cfg).await;
    let proxy = run_proxy_on(
        RouteProxy::new([("h1-tls".to_string(), origin.peer(&pki))]),
        small_sndbuf_listener(),
        Some((small_sndbuf_listener(), proxy_tls_settings(&pki))),
        |b| b,
    )
    .await;
    let sock = tcp_small_rcvbuf(proxy.tls_addr()).await;
    let tls = tls_connect_over(sock, pki.client_config(&[b"http/1.1"], None), PROXY_NAME)
        .await
        .unwrap();
    let mut c = DownClient::over(Proto::H1, Box::new(tls)).await;
    for round in 0..4 {
        // Upload to the slow TLS origin.
        let mut ex = Exchange::get("/upload?status=201");
        ex.method = "POST";
        ex.body_len = N;
        let out = c.exchange(&ex).await;
        assert!(out.complete && out.status == 201, "round {round}: {out:?}");
        assert_eq!(out.header("x-req-sum"), Some(pattern_sum(N).as_str()));
        // Download by the slow TLS client.
        if let DownClient::H1(conn) = &mut c {
            conn.slow = true;
        }
        let out = c.exchange(&Exchange::get(format!("/download?n={N}"))).await;
        assert!(out.complete && out.status == 200, "round {round}: {out:?}");
        assert_eq!(out.body.hex(), pattern_sum(N));
        if let DownClient::H1(conn) = &mut c {
            conn.slow = false;
        }
    }
}

/// A proxy that caches every response it may.
struct CachingProxy {
    peer: HttpPeer,
    cache: std::sync::Arc<proxy_runtime::cache::Cache>,
}

impl proxy_runtime::prelude::ProxyHttp for CachingProxy {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(
        &self,
        _s: &mut proxy_runtime::prelude::Session,
        _c: &mut (),
    ) -> proxy_runtime::prelude::Result<HttpPeer> {
        Ok(self.peer.clone())
    }
    fn request_cache_filter(
        &self,
        session: &mut proxy_runtime::prelude::Session,
        _c: &mut (),
    ) -> proxy_runtime::prelude::Result<()> {
        session.cache.enable(&self.cache);
        Ok(())
    }
}

/// `GET /page` on `io` (HTTP/1.1); the body.
async fn get_page<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut io: S) -> String {
    io.write_all(b"GET /page HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = io.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

#[tokio::test]
async fn the_cache_keeps_http_and_https_apart() {
    // An origin that numbers its answers, each cacheable for a minute.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            n += 1;
            let body = format!("answer {n}");
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    let pki = Pki::new("cache-scheme");
    let proxy = run_proxy(
        CachingProxy {
            peer: HttpPeer::new(origin, false, "").unwrap(),
            cache: proxy_runtime::cache::Cache::in_memory(1 << 20),
        },
        Some(proxy_tls_settings(&pki)),
        |b| b,
    )
    .await;
    let https = || async {
        let config = any_cert_client_config(&[b"http/1.1"]);
        tls_connect(proxy.tls.unwrap(), config, PROXY_NAME)
            .await
            .unwrap()
    };
    assert_eq!(get_page(tcp(proxy.plain).await).await, "answer 1");
    // The same URL over https is another resource (the scheme is in the key).
    assert_eq!(get_page(https().await).await, "answer 2");
    assert_eq!(get_page(https().await).await, "answer 2");
    assert_eq!(get_page(tcp(proxy.plain).await).await, "answer 1");
}

/// A TLS client of `proxy` offering HTTP/1.1 only.
async fn h1_tls_client(
    proxy: &RunningProxy<RouteProxy>,
    pki: &Pki,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_connect(
        proxy.tls_addr(),
        pki.client_config(&[b"http/1.1"], None),
        PROXY_NAME,
    )
    .await
    .unwrap()
}

/// A TLS proxy in front of one cleartext HTTP/1 origin, with these builder settings.
async fn tls_proxy_with(
    pki: &Pki,
    tweak: impl FnOnce(
        proxy_runtime::prelude::HttpProxyServiceBuilder<RouteProxy>,
    ) -> proxy_runtime::prelude::HttpProxyServiceBuilder<RouteProxy>,
) -> (TestOrigin, RunningProxy<RouteProxy>) {
    let origin = TestOrigin::start(OriginConfig::plain(Proto::H1)).await;
    let peer = HttpPeer::new(origin.addr, false, "").unwrap();
    let proxy = run_proxy(
        RouteProxy::new([("h1".to_string(), peer)]),
        Some(proxy_tls_settings(pki)),
        tweak,
    )
    .await;
    (origin, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_connections_close_at_the_keepalive_timeout_with_close_notify() {
    let pki = Pki::new("tls-idle");
    // The header timeout stays at its minute: an idle TLS connection waits for the
    // keep-alive timeout, as a cleartext one does.
    let (_origin, proxy) = tls_proxy_with(&pki, |b| {
        b.keepalive_timeout(std::time::Duration::from_millis(300))
    })
    .await;
    let mut s = h1_tls_client(&proxy, &pki).await;
    s.write_all(b"GET /idle?n=10 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    // A close without `close_notify` is an `UnexpectedEof` error for rustls.
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("the idle connection was not closed at the keep-alive timeout");
    assert!(read.is_ok(), "closed without close_notify: {read:?}");
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls12_renegotiation_is_refused_at_once() {
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    if !tool_answers("openssl", "version") {
        return;
    }
    let pki = Pki::new("tls-reneg");
    let (_origin, proxy) = tls_proxy_with(&pki, |b| b).await;
    let addr = proxy.tls_addr().to_string();
    let seen = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-tls1_2", "-crlf"])
            .args(["-servername", PROXY_NAME])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(line);
            }
        });
        let mut stdin = child.stdin.take().unwrap();
        let mut seen = Vec::new();
        let wait_for = |what: &str, seen: &mut Vec<String>| {
            // The proxy's keep-alive timeout is a minute: well past this wait.
            while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(20)) {
                let found = if what.is_empty() {
                    line.is_empty()
                } else {
                    line.contains(what)
                };
                seen.push(line);
                if found {
                    return true;
                }
            }
            false
        };
        // One request answered: the connection is idle, waiting for the next. HEAD, so
        // that the blank line ending the head is the last byte of the answer (a body
        // arriving after the renegotiation started would be an unexpected record).
        stdin
            .write_all(b"HEAD /r?n=5 HTTP/1.1\nHost: x\n\n")
            .unwrap();
        let answered = wait_for("HTTP/1.1 200", &mut seen) && wait_for("", &mut seen);
        // `R` alone on a line: s_client starts a renegotiation.
        stdin.write_all(b"R\n").unwrap();
        let refused = answered && wait_for("no renegotiation", &mut seen);
        let _ = child.kill();
        let _ = child.wait();
        (answered, refused, seen)
    })
    .await
    .unwrap();
    assert!(seen.0, "no response: {:#?}", seen.2);
    assert!(
        seen.1,
        "the no_renegotiation alert did not come while the connection was idle: {:#?}",
        seen.2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_cut_short_ends_without_close_notify() {
    let pki = Pki::new("tls-cut");
    let (origin, proxy) = tls_proxy_with(&pki, |b| b).await;
    let mut s = h1_tls_client(&proxy, &pki).await;
    // `/rst`: 10000 bytes of a 1000000-byte body, then the origin closes.
    s.write_all(b"GET /rst HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    while raw.len() < 10_000 {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        raw.extend_from_slice(&buf[..n]);
    }
    origin.open_gate();
    let rest = tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("the connection ends");
    // close_notify would say "all data sent" (RFC 8446 §6.1).
    assert!(
        rest.is_err(),
        "a truncated response ended with close_notify ({} bytes)",
        raw.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_tls_connections_with_close_notify_and_gives_up_handshakes() {
    use proxy_runtime::prelude::{HttpProxyService, HttpProxyServiceBuilder};
    use proxy_runtime::protocols::tls::TlsAcceptor;
    use proxy_runtime::server::{ConnectionTracker, ShutdownTrigger};
    let pki = Pki::new("tls-shutdown");
    let origin = TestOrigin::start(OriginConfig::plain(Proto::H1)).await;
    let peer = HttpPeer::new(origin.addr, false, "").unwrap();
    let service = HttpProxyServiceBuilder::new(RouteProxy::new([("h1".to_string(), peer)])).build();
    let listener = bind_loopback().await;
    let addr = *listener.local_addr().unwrap().as_inet().unwrap();
    let acceptor = std::sync::Arc::new(TlsAcceptor::new(proxy_tls_settings(&pki)).unwrap());
    let (trigger, watch) = ShutdownTrigger::new();
    let tracker = std::sync::Arc::new(ConnectionTracker::default());
    tokio::spawn(HttpProxyService::serve_tls_listener(
        service.proxy().clone(),
        listener,
        acceptor,
        watch,
        tracker.clone(),
    ));
    // An idle keep-alive TLS client, and a connection still in its handshake.
    let mut idle = tls_connect(addr, pki.client_config(&[b"http/1.1"], None), PROXY_NAME)
        .await
        .unwrap();
    idle.write_all(b"GET /a?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut handshaking = tokio::net::TcpStream::connect(addr).await.unwrap();
    wait_until("both connections tracked", || tracker.live() == 2).await;

    trigger.trigger();
    // The header timeout (a minute) is far off: neither waits for it.
    let limit = std::time::Duration::from_secs(20);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(limit, idle.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed at shutdown");
    assert!(closed.is_ok(), "closed without close_notify: {closed:?}");
    let n = tokio::time::timeout(limit, handshaking.read(&mut buf))
        .await
        .expect("the handshake is given up at shutdown");
    assert!(matches!(n, Ok(0) | Err(_)));
    wait_until("no connection left", || tracker.live() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_s_close_notify_is_answered_with_one() {
    let pki = Pki::new("tls-bye");
    let (_origin, proxy) = tls_proxy_with(&pki, |b| b).await;
    let mut s = h1_tls_client(&proxy, &pki).await;
    // close_notify (and FIN) before any request, then read the proxy's goodbye.
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(30), s.read_to_end(&mut rest))
        .await
        .expect("the proxy closes too");
    assert!(closed.is_ok(), "closed without close_notify: {closed:?}");
    assert!(rest.is_empty());
}

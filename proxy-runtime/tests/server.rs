//! The server around a proxy: Unix domain sockets on both sides, graceful shutdown
//! (stop accepting, close idle connections, let in-flight requests finish), and the
//! per-core runtime layout (a listener per worker with `SO_REUSEPORT`).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, SAFETY, get, wait_until};
use proxy_runtime::prelude::*;
use proxy_runtime::server::{ConnectionTracker, ListenAddr, Listener, Service, ShutdownWatch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

/// Answers one request per connection after reading its head; `/slow` says so on
/// `seen`, then waits for `release`.
async fn tiny_origin_conn<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    mut s: S,
    release: Arc<Notify>,
    seen: Arc<Notify>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    if buf.starts_with(b"GET /slow") {
        seen.notify_one();
        release.notified().await;
    }
    let body = "done";
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
}

struct To(HttpPeer);

impl ProxyHttp for To {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn unix_sockets_on_both_sides() {
    let dir = std::env::temp_dir().join(format!("proxy-uds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let origin_path = dir.join("origin.sock");
    let proxy_path = dir.join("proxy.sock");
    let _ = std::fs::remove_file(&origin_path);
    let origin = tokio::net::UnixListener::bind(&origin_path).unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = origin.accept().await.unwrap();
            tokio::spawn(tiny_origin_conn(
                s,
                Arc::new(Notify::new()),
                Arc::new(Notify::new()),
            ));
        }
    });
    let peer = HttpPeer::new(format!("unix:{}", origin_path.display()), false, "").unwrap();
    let service = HttpProxyServiceBuilder::new(To(peer)).build();
    let listener = Listener::bind(&ListenAddr::Unix(proxy_path.clone()))
        .await
        .unwrap();
    tokio::spawn(HttpProxyService::serve_listener(
        service.proxy().clone(),
        listener,
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ));

    let mut client = tokio::net::UnixStream::connect(&proxy_path).await.unwrap();
    client
        .write_all(b"GET /x HTTP/1.1\r\nHost: local\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(SAFETY, async {
        let mut chunk = [0u8; 1024];
        while !String::from_utf8_lossy(&raw).ends_with("done") {
            let n = client.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "proxy closed early: {}",
                String::from_utf8_lossy(&raw)
            );
            raw.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_stale_socket_file_is_replaced_but_a_regular_file_is_not() {
    let dir = std::env::temp_dir().join(format!("proxy-uds-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap()); // leaves the file behind
    assert!(
        Listener::bind(&ListenAddr::Unix(sock.clone()))
            .await
            .is_ok()
    );
    let file = dir.join("regular");
    std::fs::write(&file, b"keep me").unwrap();
    let err = Listener::bind(&ListenAddr::Unix(file.clone()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("regular") || err.to_string().contains("not a socket"),
        "{err}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    // A socket another server still listens on is not taken over.
    let live = dir.join("live.sock");
    let _other = std::os::unix::net::UnixListener::bind(&live).unwrap();
    let err = Listener::bind(&ListenAddr::Unix(live.clone()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("listening"), "{err}");
    assert!(std::os::unix::net::UnixStream::connect(&live).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_closes_the_rest() {
    // Origin: `/slow` waits to be released.
    let release = Arc::new(Notify::new());
    let seen = Arc::new(Notify::new());
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin.local_addr().unwrap();
    {
        let (release, seen) = (release.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let (s, _) = origin.accept().await.unwrap();
                tokio::spawn(tiny_origin_conn(s, release.clone(), seen.clone()));
            }
        });
    }

    // The server runs on its own runtime in its own thread, as in production.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = std_listener.local_addr().unwrap();
    let mut service =
        HttpProxyServiceBuilder::new(To(HttpPeer::new(origin_addr, false, "").unwrap())).build();
    service.add_std_listener(std_listener);
    assert_eq!(service.name(), "proxy");
    let conf = ServerConf {
        threads: 1,
        grace_period: Duration::from_secs(10),
        ..ServerConf::default()
    };
    let mut server = Server::new(conf);
    server.add_service(service);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_thread = std::thread::spawn(move || {
        server.run_until(
            async move {
                let _ = stop_rx.await;
            },
            |_| {},
        )
    });

    // An idle keep-alive client, and a request in flight.
    let mut idle = Client::connect(proxy_addr).await;
    idle.send(b"GET /fast HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert_eq!(idle.read_response().await.status(), 200);
    let mut busy = Client::connect(proxy_addr).await;
    let origin_saw_it = seen.notified();
    busy.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n").await;
    tokio::time::timeout(SAFETY, origin_saw_it).await.unwrap();

    stop_tx.send(()).unwrap();

    // The idle connection is closed; new connections are refused.
    assert!(
        idle.is_closed().await,
        "an idle connection is closed at shutdown"
    );
    let mut refused = false;
    wait_until("the listener stops accepting", || {
        refused = std::net::TcpStream::connect(proxy_addr).is_err();
        refused
    })
    .await;

    // The request in flight completes, and says the connection closes.
    release.notify_one();
    let resp = busy.read_response().await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text(), "done");
    assert!(
        resp.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    );
    assert!(busy.is_closed().await);

    let result = tokio::task::spawn_blocking(move || server_thread.join().unwrap())
        .await
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    let _ = get;
}

/// Records the worker thread that ran each request.
struct ThreadRecorder {
    peer: HttpPeer,
    threads: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl ProxyHttp for ThreadRecorder {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<HttpPeer> {
        let name = std::thread::current().name().unwrap_or("?").to_string();
        self.threads.lock().unwrap().insert(name);
        Ok(self.peer.clone())
    }
}

/// The per-core layout with two workers: TCP connections are spread by the kernel
/// over the workers' own `SO_REUSEPORT` listeners (64 fresh connections all landing
/// on one worker has probability 2^-63), a Unix socket is shared by both, and at
/// shutdown every listener closes and the worker threads end.
#[tokio::test]
async fn per_core_workers_each_accept_on_their_own_listener() {
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = origin.accept().await.unwrap();
            tokio::spawn(tiny_origin_conn(
                s,
                Arc::new(Notify::new()),
                Arc::new(Notify::new()),
            ));
        }
    });
    let dir = std::env::temp_dir().join(format!("proxy-percore-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let uds = dir.join("proxy.sock");

    let threads = Arc::new(std::sync::Mutex::new(Default::default()));
    let recorder = ThreadRecorder {
        peer: HttpPeer::new(origin_addr, false, "").unwrap(),
        threads: threads.clone(),
    };
    let service = HttpProxyServiceBuilder::new(recorder)
        .listen_tcp("127.0.0.1:0")
        .listen_uds(&uds)
        .build();
    let conf = ServerConf {
        threads: 2,
        runtime: RuntimeLayout::PerCore,
        ..ServerConf::default()
    };
    let mut server = Server::new(conf);
    server.add_service(service);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let server_thread = std::thread::Builder::new()
        .name("proxy-worker-0".into())
        .spawn(move || {
            server.run_until(
                async move {
                    let _ = stop_rx.await;
                },
                |addrs| {
                    let _ = bound_tx.send(addrs.to_vec());
                },
            )
        })
        .unwrap();
    let bound = tokio::time::timeout(SAFETY, bound_rx)
        .await
        .unwrap()
        .unwrap();
    let tcp = bound
        .iter()
        .find_map(|a| match a {
            proxy_runtime::protocols::SocketAddress::Inet(a) => Some(*a),
            _ => None,
        })
        .expect("a TCP address");

    for _ in 0..64 {
        let mut c = Client::connect(tcp).await;
        c.send(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let resp = c.read_response().await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text(), "done");
    }
    let seen = threads.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(String::as_str).collect::<Vec<_>>(),
        ["proxy-worker-0", "proxy-worker-1"],
        "both workers accept TCP connections, each on its own thread"
    );

    for _ in 0..4 {
        let mut c = tokio::net::UnixStream::connect(&uds).await.unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(SAFETY, c.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    }

    stop_tx.send(()).unwrap();
    let result = tokio::task::spawn_blocking(move || server_thread.join().unwrap())
        .await
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        std::net::TcpStream::connect(tcp).is_err(),
        "every worker's listener is closed after shutdown"
    );
    assert!(!uds.exists(), "the Unix socket file is removed at shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}

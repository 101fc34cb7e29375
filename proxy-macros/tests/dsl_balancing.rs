//! Load balancing declared with the DSL, over loopback: consistent hashing keeps a user
//! on one backend, passive checks eject a failing backend, a backend killed mid-run costs
//! the clients nothing and takes traffic again once restarted, and a discovery source
//! changes the backends at run time.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{origin, request, serve};
use proxy_runtime::prelude::*;
use proxy_runtime::protocols::SocketAddress;
use proxy_runtime::upstream::{Backend, Discovered, Discovery};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

#[proxy(name = "balanced")]
mod balanced {
    #[upstream(addrs = ["127.0.0.1:1"], lb = consistent(header("x-user")))]
    pub struct Sticky;

    #[upstream(addrs = ["127.0.0.1:1"], passive = passive(failures = 2, eject = "1h"))]
    pub struct Passive;

    #[upstream(
        addrs = ["127.0.0.1:1"],
        passive = passive(failures = 1, eject = "50ms"),
        health = tcp(every = "20ms", fall = 1, rise = 1),
    )]
    pub struct Checked;

    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Discovered;

    #[route(GET, "/sticky", to = Sticky, retries = 0)]
    fn sticky() {}

    #[route(GET, "/passive", to = Passive, retries = 0)]
    fn passive() {}

    #[route(GET, "/checked", to = Checked, retries = 2)]
    fn checked() {}

    #[route(GET, "/discovered", to = Discovered)]
    fn discovered() {}
}

/// An origin that can be killed (listener and every connection closed) and restarted
/// on the same port. Answers every request with `200` and its name in `x-origin`, or
/// with `status` when built so.
struct Killable {
    addr: SocketAddr,
    name: &'static str,
    status: u16,
    tasks: Option<JoinSet<()>>,
}

impl Killable {
    async fn start(name: &'static str, status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut k = Killable {
            addr,
            name,
            status,
            tasks: None,
        };
        k.run(listener);
        k
    }

    fn run(&mut self, listener: TcpListener) {
        let (name, status) = (self.name, self.status);
        let mut tasks = JoinSet::new();
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let held = conns.clone();
        tasks.spawn(async move {
            let _held = held; // connections die with this task
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                conns.lock().unwrap().spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = s.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let resp = format!(
                                "HTTP/1.1 {status} X\r\nx-origin: {name}\r\ncontent-length: {}\r\n\r\n{name}",
                                name.len()
                            );
                            if s.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        self.tasks = Some(tasks);
    }

    fn kill(&mut self) {
        self.tasks = None; // aborts the accept loop and, with it, every connection
    }

    async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.run(listener);
    }
}

#[tokio::test]
async fn consistent_hashing_keeps_each_user_on_one_backend() {
    let origins = [origin("a").await, origin("b").await, origin("c").await];
    let names: HashMap<String, &str> = origins.iter().cloned().zip(["a", "b", "c"]).collect();
    let list: Vec<&str> = origins.iter().map(String::as_str).collect();
    let conf = balanced::config().with_upstream("Sticky", &list);
    let service = balanced::service(&conf).unwrap();
    let proxy = service.proxy().clone();
    let addr = serve(proxy.clone()).await;
    let group = proxy.inner.upstream("Sticky").unwrap();

    let mut used = HashSet::new();
    for i in 0..30 {
        let user = format!("user-{i}");
        let expected = group
            .balancer()
            .ring_owner(user.as_bytes())
            .unwrap()
            .address
            .to_string();
        for _ in 0..3 {
            let r = request(addr, "GET", "/sticky", &[("x-user", &user)]).await;
            assert_eq!(r.status, 200);
            assert_eq!(r.line("origin="), Some(names[&expected]), "{user}");
        }
        used.insert(expected);
    }
    assert!(
        used.len() >= 2,
        "30 users all hashed to one backend: {used:?}"
    );
}

#[tokio::test]
async fn passive_checks_eject_a_backend_answering_5xx() {
    let good = Killable::start("good", 200).await;
    let sick = Killable::start("sick", 503).await;
    let (g, s) = (good.addr.to_string(), sick.addr.to_string());
    let conf = balanced::config().with_upstream("Passive", &[&g, &s]);
    let service = balanced::service(&conf).unwrap();
    let addr = serve(service.proxy().clone()).await;

    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(request(addr, "GET", "/passive", &[]).await.status);
    }
    // Round robin: good, sick (1st failure), good, sick (2nd: ejected), then good only.
    let failures = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(failures, 2, "{statuses:?}");
    assert!(statuses[4..].iter().all(|&s| s == 200), "{statuses:?}");
}

#[tokio::test]
async fn a_killed_backend_costs_clients_nothing_and_comes_back_when_restarted() {
    let stable = Killable::start("stable", 200).await;
    let mut flaky = Killable::start("flaky", 200).await;
    let (a, b) = (stable.addr.to_string(), flaky.addr.to_string());
    let conf = balanced::config().with_upstream("Checked", &[&a, &b]);
    let service = balanced::service(&conf).unwrap();
    let proxy = service.proxy().clone();
    let addr = serve(proxy.clone()).await;
    let group = proxy.inner.upstream("Checked").unwrap();

    let mut seen = HashSet::new();
    for _ in 0..10 {
        let r = request(addr, "GET", "/checked", &[]).await;
        assert_eq!(r.status, 200);
        seen.insert(r.header("x-origin").unwrap().to_string());
    }
    assert_eq!(seen.len(), 2, "both backends serve: {seen:?}");

    flaky.kill();
    // Every request still succeeds: a refused connection is retried on the other
    // backend, and the dead one is ejected (passive) and marked down (active).
    for _ in 0..50 {
        let r = request(addr, "GET", "/checked", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-origin"), Some("stable"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while group.is_healthy(1) {
        assert!(tokio::time::Instant::now() < deadline, "never marked down");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    flaky.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(addr, "GET", "/checked", &[]).await;
        assert_eq!(r.status, 200);
        if r.header("x-origin") == Some("flaky") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted backend never took traffic again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A discovery source the test rewrites.
#[derive(Clone, Default)]
struct Registry(Arc<Mutex<Vec<Backend>>>);

impl Registry {
    fn set(&self, addrs: &[&str]) {
        *self.0.lock().unwrap() = addrs
            .iter()
            .map(|a| Backend {
                address: SocketAddress::Inet(a.parse().unwrap()),
                weight: 1,
            })
            .collect();
    }
}

impl Discovery for Registry {
    async fn discover(&self) -> Result<Discovered> {
        Ok(Discovered {
            backends: self.0.lock().unwrap().clone(),
            valid_for: None,
        })
    }
}

#[tokio::test]
async fn a_discovery_source_changes_the_backends_at_run_time() {
    let first = origin("first").await;
    let second = origin("second").await;
    let conf = balanced::config().with_upstream("Discovered", &[&first]);
    let service = balanced::service(&conf).unwrap();
    let proxy = service.proxy().clone();
    let addr = serve(proxy.clone()).await;
    let group = proxy.inner.upstream("Discovered").unwrap();
    let registry = Registry::default();
    registry.set(&[&first]);
    group.discover_with(registry.clone(), Duration::from_millis(20));

    let r = request(addr, "GET", "/discovered", &[]).await;
    assert_eq!(r.line("origin="), Some("first"));
    registry.set(&[&second]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(addr, "GET", "/discovered", &[]).await;
        assert_eq!(r.status, 200);
        if r.line("origin=") == Some("second") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never switched");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The switch is complete: the first backend gets nothing any more.
    for _ in 0..10 {
        let r = request(addr, "GET", "/discovered", &[]).await;
        assert_eq!(r.line("origin="), Some("second"));
    }
    // An empty answer keeps the current backends.
    registry.set(&[]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = request(addr, "GET", "/discovered", &[]).await;
    assert_eq!(r.line("origin="), Some("second"));
}

/// Tries made by the last request of [`retry_limits`] (its `logging` phase).
static LAST_TRIES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[proxy(name = "retry_limits")]
mod retry_limits {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Undeclared;

    #[upstream(addrs = ["127.0.0.1:1"], retries = 5)]
    pub struct Generous;

    #[route(GET, "/undeclared", to = Undeclared)]
    fn undeclared() {}

    #[route(GET, "/generous", to = Generous)]
    fn generous() {}

    #[phase(logging)]
    fn record(session: &mut Session) {
        LAST_TRIES.store(
            session.upstream_tries(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }
}

#[tokio::test]
async fn routes_without_declared_retries_retry_twice_whatever_other_routes_declare() {
    // Six backends that refuse connections: every try fails and may be retried.
    let mut dead = Vec::new();
    for _ in 0..6 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        dead.push(l.local_addr().unwrap().to_string());
    }
    let dead: Vec<&str> = dead.iter().map(String::as_str).collect();
    let conf = retry_limits::config()
        .with_upstream("Undeclared", &dead)
        .with_upstream("Generous", &dead);
    let addr = serve(retry_limits::service(&conf).unwrap().proxy().clone()).await;
    let tries = |path: &'static str| async move {
        assert_eq!(request(addr, "GET", path, &[]).await.status, 502);
        // The logging phase runs after the answer is written.
        for _ in 0..100 {
            if LAST_TRIES.load(std::sync::atomic::Ordering::SeqCst) != 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        LAST_TRIES.swap(0, std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(tries("/undeclared").await, 3, "the default: 2 retries");
    assert_eq!(tries("/generous").await, 6, "its group's 5 retries");
}

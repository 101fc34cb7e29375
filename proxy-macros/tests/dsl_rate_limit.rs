//! Rate limits declared on routes, over loopback: exact 429 counts per key, a shared
//! budget per route, and a concurrency limit that frees its slot when a request ends.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{origin, request, serve};
use proxy_runtime::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[proxy(name = "limited")]
mod limited {
    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Api;

    #[route(GET, "/keyed", to = Api, rate_limit = "3/h", by = header("x-api-key"))]
    fn keyed() {}

    #[route(GET, "/shared", to = Api, rate_limit = "2/h", by = route)]
    fn shared() {}

    #[route(POST, "/upload", to = Api, rate_limit = "1000/s", concurrency = 1)]
    fn upload() {}

    #[route(GET, "/local", respond = 200, body = "ok", rate_limit = "1/h")]
    fn local() {}

    #[route(GET, "/free", to = Api)]
    fn free() {}
}

async fn start() -> std::net::SocketAddr {
    let api = origin("api").await;
    let conf = limited::config().with_upstream("Api", &[&api]);
    let service = limited::service(&conf).unwrap();
    serve(service.proxy().clone()).await
}

#[tokio::test]
async fn each_key_gets_exactly_its_budget_then_429_with_retry_after() {
    let addr = start().await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = request(addr, "GET", "/keyed", &[("x-api-key", "alice")]).await;
        if r.status == 429 {
            let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
            // 3 per hour: the next token comes within 20 minutes.
            assert!((1..=1200).contains(&secs), "retry-after {secs}");
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // Another key has its own budget.
    let r = request(addr, "GET", "/keyed", &[("x-api-key", "bob")]).await;
    assert_eq!(r.status, 200);
    // Unlimited routes are not affected.
    for _ in 0..5 {
        assert_eq!(request(addr, "GET", "/free", &[]).await.status, 200);
    }
}

#[tokio::test]
async fn a_key_header_given_twice_or_empty_cannot_dodge_the_limit() {
    let addr = start().await;
    // A fresh first value with the real key second: refused, not counted as new.
    let r = request(
        addr,
        "GET",
        "/keyed",
        &[("x-api-key", "fresh-1"), ("x-api-key", "carol")],
    )
    .await;
    assert_eq!(r.status, 400);
    // The same value twice is one key.
    let twice = [("x-api-key", "dave"), ("x-api-key", "dave")];
    let statuses: Vec<u16> = four_requests(addr, &twice).await;
    assert_eq!(statuses, [200, 200, 200, 429]);
    // An empty value is no key: the client's address is counted.
    let empty = [("x-api-key", "")];
    let statuses: Vec<u16> = four_requests(addr, &empty).await;
    assert_eq!(statuses, [200, 200, 200, 429]);
}

/// Four requests to `/keyed` with `headers`, one after another; their statuses.
async fn four_requests(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..4 {
        out.push(request(addr, "GET", "/keyed", headers).await.status);
    }
    out
}

#[tokio::test]
async fn a_route_budget_is_shared_by_every_client() {
    let addr = start().await;
    let mut seen = Vec::new();
    for key in ["a", "b", "c"] {
        seen.push(
            request(addr, "GET", "/shared", &[("x-api-key", key)])
                .await
                .status,
        );
    }
    assert_eq!(seen, [200, 200, 429]);
    // Local answers are limited too.
    assert_eq!(request(addr, "GET", "/local", &[]).await.status, 200);
    let r = request(addr, "GET", "/local", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body, "429 Too Many Requests\n");
}

#[tokio::test]
async fn the_concurrency_slot_is_held_until_the_request_ends() {
    let addr = start().await;
    // A request whose body is still arriving holds the slot.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\n12345",
    )
    .await
    .unwrap();
    // Wait until the proxy has admitted it: a second upload is then refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(addr, "POST", "/upload", &[("content-length", "0")]).await;
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("1"));
            break;
        }
        assert_eq!(r.status, 200, "before the slow request is admitted");
        assert!(tokio::time::Instant::now() < deadline, "never limited");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Finish the slow request; the slot frees and uploads pass again.
    slow.write_all(b"67890").await.unwrap();
    let mut raw = Vec::new();
    slow.read_to_end(&mut raw).await.unwrap();
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = request(addr, "POST", "/upload", &[("content-length", "0")]).await;
        if r.status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

//! `#[cache(...)]` policies over loopback: the policy's TTL when the origin gives
//! none, extra key parts, bypass conditions, `ANY` routes that cache only GET/HEAD, and
//! `cache_size = 0` turning the cache off.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{origin, request, serve};
use proxy_runtime::prelude::*;

#[proxy(name = "cached")]
mod cached {
    #[upstream(addrs = ["127.0.0.1:1"])]
    pub struct Origin;

    #[route(GET | HEAD, "/assets/{*path}", to = Origin)]
    #[cache(ttl = "1m", key = [header("x-tenant")], bypass = [cookie("session")])]
    fn assets() {}

    #[route(ANY, "/{*rest}", to = Origin)]
    #[cache(ttl = "1m")]
    fn everything() {}
}

async fn start(size: Option<u64>) -> (std::net::SocketAddr, std::sync::Arc<HttpProxy>) {
    let o = origin("o").await;
    let mut conf = cached::config().with_upstream("Origin", &[&o]);
    conf.cache_size = size;
    let service = cached::service(&conf).unwrap();
    let proxy = service.proxy().clone();
    (serve(proxy.clone()).await, proxy)
}

type HttpProxy = proxy_runtime::proxy::HttpProxy<cached::Proxy>;

#[tokio::test]
async fn the_policy_caches_keys_and_bypasses() {
    let (addr, proxy) = start(None).await;
    let status = |r: &common::Reply| r.header("x-cache-status").unwrap_or("-").to_string();
    let t1 = [("x-tenant", "one")];
    assert_eq!(
        status(&request(addr, "GET", "/assets/app.js", &t1).await),
        "miss"
    );
    assert_eq!(
        status(&request(addr, "GET", "/assets/app.js", &t1).await),
        "hit"
    );
    // Another tenant: another key.
    let t2 = [("x-tenant", "two")];
    assert_eq!(
        status(&request(addr, "GET", "/assets/app.js", &t2).await),
        "miss"
    );
    // A session cookie bypasses the cache.
    let with_session = [("x-tenant", "one"), ("cookie", "session=abc")];
    let r = request(addr, "GET", "/assets/app.js", &with_session).await;
    assert_eq!((r.status, status(&r).as_str()), (200, "bypass"));
    let stats = &proxy.inner.cache().unwrap().stats;
    assert_eq!(stats.hits.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[tokio::test]
async fn any_routes_cache_get_and_pass_the_rest() {
    let (addr, _) = start(None).await;
    let status = |r: &common::Reply| r.header("x-cache-status").unwrap_or("-").to_string();
    assert_eq!(status(&request(addr, "GET", "/page", &[]).await), "miss");
    assert_eq!(status(&request(addr, "GET", "/page", &[]).await), "hit");
    let r = request(addr, "POST", "/page", &[("content-length", "0")]).await;
    assert_eq!((r.status, status(&r).as_str()), (200, "bypass"));
    // The POST succeeded: the stored page is gone.
    assert_eq!(status(&request(addr, "GET", "/page", &[]).await), "miss");
}

#[tokio::test]
async fn cache_size_zero_turns_it_off() {
    let (addr, proxy) = start(Some(0)).await;
    assert!(proxy.inner.cache().is_none());
    let r = request(addr, "GET", "/assets/x", &[]).await;
    assert_eq!((r.status, r.header("x-cache-status")), (200, None));
}

/// An upstream without retries: the cache's refetch after an unusable 304 is not one.
#[proxy(name = "strict")]
mod strict {
    #[upstream(addrs = ["127.0.0.1:1"], retries = 0, passive = passive(failures = 1, eject = "1m"))]
    pub struct Origin;

    #[route(GET, "/{*rest}", to = Origin)]
    #[cache]
    fn everything() {}
}

/// An origin whose `/x` is stored stale at once with tag "v1", then moves to "v2" and
/// answers revalidation of "v1" with a 304 for "v2".
async fn moving_origin() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let served = served.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut have = 0;
                loop {
                    let Ok(n) = s.read(&mut buf[have..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have += n;
                    let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    buf.copy_within(end + 4..have, 0);
                    have -= end + 4;
                    let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let resp = if head.contains("if-none-match") {
                        "HTTP/1.1 304 Not Modified\r\netag: \"v2\"\r\ncache-control: max-age=60\r\n\r\n".to_string()
                    } else {
                        let tag = if n == 0 { "v1" } else { "v2" };
                        format!(
                            "HTTP/1.1 200 OK\r\netag: \"{tag}\"\r\ncache-control: max-age=0\r\ncontent-length: 7\r\n\r\nbody {tag}"
                        )
                    };
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr.to_string()
}

#[tokio::test]
async fn a_304_for_another_representation_is_refetched_even_without_retries() {
    let o = moving_origin().await;
    let conf = strict::config().with_upstream("Origin", &[&o]);
    let service = strict::service(&conf).unwrap();
    let addr = serve(service.proxy().clone()).await;
    assert_eq!(request(addr, "GET", "/x", &[]).await.body, "body v1");
    let r = request(addr, "GET", "/x", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "body v2"));
    assert_eq!(request(addr, "GET", "/x", &[]).await.status, 200);
}

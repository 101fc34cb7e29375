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

//! Upstream health checks declared with the DSL: a backend that does not answer is
//! taken out of rotation, and traffic keeps flowing to the others.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use common::{origin, request, serve};
use proxy_runtime::prelude::*;

#[proxy(name = "checked")]
mod checked {
    #[upstream(addrs = ["127.0.0.1:1"], health = tcp(every = "20ms", fall = 1, rise = 1))]
    pub struct Pool;

    #[route(GET, "/{*rest}", to = Pool, retries = 0)]
    fn all() {}
}

#[tokio::test]
async fn a_dead_backend_is_taken_out_of_rotation() {
    let live = origin("live").await;
    let dead = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().to_string()
    };
    let conf = checked::config().with_upstream("Pool", &[&live, &dead]);
    let service = checked::service(&conf).unwrap();
    let proxy = service.proxy().clone();
    let addr = serve(proxy.clone()).await;
    let group = proxy.inner.upstream("Pool").unwrap();
    group.start_background_tasks();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while group.is_healthy(1) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead backend was never marked down"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(group.is_healthy(0));
    // No retries on this route: every request must pick the live backend by itself.
    for _ in 0..20 {
        let r = request(addr, "GET", "/x", &[]).await;
        assert_eq!((r.status, r.line("origin=")), (200, Some("live")));
    }
}

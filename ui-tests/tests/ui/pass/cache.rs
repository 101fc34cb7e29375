// #[cache] with every option.
use proxy_runtime::dsl::cache_policy::RequestPart;
use proxy_runtime::prelude::*;
use std::time::Duration;

#[proxy(listen = "127.0.0.1:8080")]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9002"])]
    pub struct Assets;

    #[route(GET | HEAD, "/assets/{*path}", to = Assets)]
    #[cache(
        ttl = "5m",
        stale_while_revalidate = "30s",
        stale_if_error = "1h",
        vary = ["Accept-Encoding", "accept-language"],
        key = [header("X-Tenant"), cookie("lang"), query("v")],
        bypass = [header("authorization"), cookie("session")],
        max_size = "10MiB",
        lock_timeout = "2s",
    )]
    fn assets(req: &RequestHeader) {
        let _ = req;
    }

    /// The smallest policy.
    #[route(GET, "/logo.png", to = Assets)]
    #[cache(ttl = "1d")]
    fn logo() {}
}

fn main() {
    let route = edge::Route::Assets {
        path: "app.js".into(),
    };
    let p = route.cache_policy().expect("assets is cached");
    assert_eq!(p.ttl, Some(Duration::from_secs(300)));
    assert_eq!(p.stale_while_revalidate, Some(Duration::from_secs(30)));
    assert_eq!(p.stale_if_error, Some(Duration::from_secs(3600)));
    assert_eq!(p.vary, ["accept-encoding", "accept-language"]);
    assert_eq!(
        p.key,
        [
            RequestPart::Header("x-tenant"),
            RequestPart::Cookie("lang"),
            RequestPart::Query("v"),
        ]
    );
    assert_eq!(
        p.bypass,
        [RequestPart::Header("authorization"), RequestPart::Cookie("session")]
    );
    assert_eq!(p.max_size, Some(10 * 1024 * 1024));
    assert_eq!(p.lock_timeout, Some(Duration::from_secs(2)));
    let logo = edge::Route::Logo {}.cache_policy().expect("logo is cached");
    assert_eq!(logo.ttl, Some(Duration::from_secs(86400)));
    assert!(edge::ROUTES.routes().iter().all(|r| r.cached));
    print!("{}", edge::ROUTES);
}

// Every #[upstream] option and address form.
use proxy_runtime::prelude::*;
use std::time::Duration;

#[proxy(listen = "127.0.0.1:8080")]
mod edge {
    use super::*;

    #[upstream(
        addrs = ["10.0.0.1:80", "[::1]:8080", "api.internal:443", "unix:/run/app.sock"],
        lb = round_robin,
        connect_timeout = "1s",
        read_timeout = "5s",
        write_timeout = "1m30s",
        idle_timeout = "90s",
        retries = 3,
        health = http(path = "/healthz", every = "5s", expect = 200, host = "api.internal", timeout = "500ms", rise = 2, fall = 3),
    )]
    pub struct Mixed;

    #[upstream(addrs = ["secure.internal:443"], tls, sni = "secure.example.com")]
    pub struct Secure;

    #[upstream(
        addrs = [("10.0.1.1:80", 3), ("10.0.1.2:80", 1)],
        lb = weighted_round_robin,
        passive = passive(failures = 5, eject = "30s"),
    )]
    pub struct Weighted;

    #[upstream(addrs = ["10.0.2.1:80", "10.0.2.2:80"], lb = consistent(header("X-User"), points = 100))]
    pub struct Sticky;

    #[upstream(addrs = ["10.0.3.1:80", "10.0.3.2:80"], lb = consistent(cookie("sid")))]
    pub struct ByCookie;

    #[upstream(addrs = ["10.0.4.1:80", "10.0.4.2:80"], lb = least_loaded)]
    pub struct P2c;

    #[upstream(addrs = ["10.0.5.1:80", "10.0.5.2:80"], lb = least_connections)]
    pub struct FewestConns;

    #[upstream(addrs = ["10.0.6.1:80", "10.0.6.2:80"], lb = random)]
    pub struct Dice;

    #[upstream(
        addrs = ["10.0.7.1:80"],
        lb = consistent(client_addr),
        resolve_every = "10s",
        health = http(path = "/", every = "1s", body = "ok"),
    )]
    pub struct ByClient;

    #[upstream(addrs = "127.0.0.1:9000", tls = false, retries = 0, health = tcp(every = "2s"))]
    pub struct Plain;

    #[route(ANY, "/mixed/{*rest}", to = Mixed)]
    fn mixed(req: &RequestHeader) {
        let _ = req;
    }

    #[route(ANY, "/secure/{*rest}", to = Secure)]
    fn secure() {}

    #[route(ANY, "/plain/{*rest}", to = Plain)]
    fn plain() {}

    #[route(ANY, "/w/{*rest}", to = Weighted)]
    fn w() {}
    #[route(ANY, "/s/{*rest}", to = Sticky)]
    fn s() {}
    #[route(ANY, "/k/{*rest}", to = ByCookie)]
    fn k() {}
    #[route(ANY, "/p/{*rest}", to = P2c)]
    fn p() {}
    #[route(ANY, "/f/{*rest}", to = FewestConns)]
    fn f() {}
    #[route(ANY, "/r/{*rest}", to = Dice)]
    fn r() {}
    #[route(ANY, "/c/{*rest}", to = ByClient)]
    fn c() {}
}

fn main() {
    let ups = edge::SPEC.upstreams;
    assert_eq!(ups.len(), 10);
    let by_name = |name: &str| ups.iter().find(|u| u.name == name).unwrap();
    let weighted = by_name("Weighted");
    assert_eq!(weighted.weights, &[3, 1]);
    assert_eq!(weighted.passive.unwrap().failures, 5);
    assert!(by_name("Sticky").weights.is_empty());
    let by_client = by_name("ByClient");
    assert_eq!(by_client.resolve_every, Some(Duration::from_secs(10)));
    assert_eq!(by_client.health.unwrap().body, Some("ok"));
    assert!(matches!(
        by_name("ByClient").lb,
        proxy_runtime::dsl::LbPolicy::Consistent { .. }
    ));
    let health = by_name("Mixed").health.unwrap();
    assert_eq!(health.http_path, Some("/healthz"));
    assert_eq!(health.every, Duration::from_secs(5));
    assert_eq!((health.rise, health.fall, health.expect), (Some(2), Some(3), Some(200)));
    assert!(by_name("Secure").health.is_none());
    assert_eq!(by_name("Plain").health.unwrap().http_path, None);
    let mixed = by_name("Mixed");
    assert_eq!(mixed.name, "Mixed");
    assert_eq!(
        mixed.addrs,
        ["10.0.0.1:80", "[::1]:8080", "api.internal:443", "unix:/run/app.sock"]
    );
    assert!(matches!(mixed.lb, proxy_runtime::dsl::LbPolicy::RoundRobin));
    assert_eq!(mixed.connect_timeout, Some(Duration::from_secs(1)));
    assert_eq!(mixed.read_timeout, Some(Duration::from_secs(5)));
    assert_eq!(mixed.write_timeout, Some(Duration::from_secs(90)));
    assert_eq!(mixed.idle_timeout, Some(Duration::from_secs(90)));
    assert_eq!(mixed.retries, Some(3));
    assert!(!mixed.tls);
    let secure = by_name("Secure");
    assert!(secure.tls);
    assert_eq!(secure.sni, Some("secure.example.com"));
    let plain = by_name("Plain");
    assert!(!plain.tls);
    assert_eq!(plain.retries, Some(0));
    assert_eq!(edge::SPEC.max_retries, 3);
    print!("{}", edge::ROUTES);
}

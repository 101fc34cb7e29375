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
}

fn main() {
    let ups = edge::SPEC.upstreams;
    assert_eq!(ups.len(), 3);
    let health = ups[0].health.unwrap();
    assert_eq!(health.http_path, Some("/healthz"));
    assert_eq!(health.every, Duration::from_secs(5));
    assert_eq!((health.rise, health.fall, health.expect), (Some(2), Some(3), Some(200)));
    assert!(ups[1].health.is_none());
    assert_eq!(ups[2].health.unwrap().http_path, None);
    let mixed = &ups[0];
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
    let secure = &ups[1];
    assert!(secure.tls);
    assert_eq!(secure.sni, Some("secure.example.com"));
    let plain = &ups[2];
    assert!(!plain.tls);
    assert_eq!(plain.retries, Some(0));
    assert_eq!(edge::SPEC.max_retries, 3);
    print!("{}", edge::ROUTES);
}

// Every #[proxy] option, and a #[ctx] with fields.
use proxy_runtime::prelude::*;

#[proxy(
    listen = ["127.0.0.1:8080", "[::1]:8080"],
    name = "edge-proxy",
    threads = 4,
    grace_period = "15s",
    normalize = false,
    crate = "proxy_runtime",
)]
mod edge {
    use super::*;

    #[ctx]
    #[derive(Default)]
    pub struct Ctx {
        pub user: Option<String>,
        pub hits: u32,
        pub started: Option<std::time::Instant>,
    }

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/api/{*rest}", to = Api)]
    fn api(req: &RequestHeader, ctx: &mut Ctx) {
        ctx.hits += 1;
        ctx.user = req.header_str("x-user").map(String::from);
        ctx.started = Some(std::time::Instant::now());
    }
}

fn main() {
    assert_eq!(edge::SPEC.name, "edge-proxy");
    assert_eq!(edge::SPEC.listen, ["127.0.0.1:8080", "[::1]:8080"]);
    assert_eq!(edge::SPEC.threads, Some(4));
    assert_eq!(
        edge::SPEC.grace_period,
        Some(std::time::Duration::from_secs(15))
    );
    let conf = edge::config();
    let _ = conf;
    let ctx = edge::Ctx::default();
    assert_eq!((ctx.user, ctx.hits, ctx.started), (None, 0, None));
    print!("{}", edge::ROUTES);
}

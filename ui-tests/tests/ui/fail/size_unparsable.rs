use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/assets/{*path}", to = Api)]
    #[cache(ttl = "1h", max_size = "10 mb")]
    fn assets(req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {}

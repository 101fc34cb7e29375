use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET | POST, "/search", to = Api)]
    #[cache(ttl = "1m")]
    fn search(req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {}

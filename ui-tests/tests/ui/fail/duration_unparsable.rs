use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/slow", to = Api, timeout = "5 s")]
    fn slow(req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {}

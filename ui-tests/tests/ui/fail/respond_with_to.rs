use proxy_runtime::prelude::*;

#[proxy]
mod edge {

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/healthz", to = Api, respond = 200, body = "ok\n")]
    fn health() {}
}

fn main() {}

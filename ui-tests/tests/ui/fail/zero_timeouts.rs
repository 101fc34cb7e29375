use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["127.0.0.1:9001"], connect_timeout = "0s", read_timeout = "0ms")]
    pub struct Api;

    #[route(GET, "/a", to = Api, timeout = "0s")]
    fn a() {}
}

fn main() {}

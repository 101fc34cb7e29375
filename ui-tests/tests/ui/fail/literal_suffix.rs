use proxy_runtime::prelude::*;

#[proxy(listen = "127.0.0.1:8080"xyz)]
mod edge {
    #[upstream(addrs = ["127.0.0.1:9001"], retries = 2ms)]
    pub struct Api;

    #[route(GET, "/a", to = Api, timeout = "1s"ms)]
    fn a() {}
}

fn main() {}

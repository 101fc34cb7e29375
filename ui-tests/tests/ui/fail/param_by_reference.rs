use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/hello/{name}", to = Api)]
    fn hello(name: &str) {
        let _ = name;
    }
}

fn main() {}

use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["", "http://api.internal:80", "[::1]"], retries = -1)]
    pub struct Api;

    #[route(GET, "/a", to = Api)]
    fn a() {}
}

fn main() {}

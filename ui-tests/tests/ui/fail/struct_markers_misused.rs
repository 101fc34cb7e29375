use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[ctx]
    #[upstream(addrs = ["127.0.0.1:9001"])]
    #[derive(Default)]
    pub struct Both;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    #[upstream(addrs = ["127.0.0.1:9002"])]
    pub struct Twice;

    #[route(GET, "/a", to = Twice)]
    fn a() {}
}

fn main() {}

use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/a", to = Api)]
    fn a() {}

    #[cfg(test)]
    #[route(GET, "/debug", to = Api)]
    fn debug() {}

    #[cfg_attr(all(), route(GET, "/c", to = Api))]
    fn c() {}

    // A `cfg_attr` without DSL markers is fine.
    #[cfg_attr(test, allow(dead_code))]
    #[route(GET, "/d", to = Api)]
    fn d() {}
}

fn main() {}

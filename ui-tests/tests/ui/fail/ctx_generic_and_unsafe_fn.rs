use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[ctx]
    #[derive(Default)]
    pub struct Ctx<T> {
        pub value: T,
    }

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/a", to = Api)]
    unsafe fn a() {}
}

fn main() {}

use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    pub struct Route;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all(req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {}

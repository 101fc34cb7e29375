use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all() {}

    #[phase(request_filter)]
    fn check(req: &RequestHeader) -> String {
        req.path().to_string()
    }
}

fn main() {}

use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all() {}

    #[phase(on_request)]
    fn audit(req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {}

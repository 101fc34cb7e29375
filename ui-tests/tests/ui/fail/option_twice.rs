use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"], retries = 2, connect_timeout = "1s", retries = 3)]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all(req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {}

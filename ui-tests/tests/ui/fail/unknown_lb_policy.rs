use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001", "127.0.0.1:9002"], lb = round_robbin)]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all(req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {}

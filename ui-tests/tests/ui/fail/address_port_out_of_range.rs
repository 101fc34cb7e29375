use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["10.0.0.1:80", "10.0.0.1:99999"])]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all(req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {}

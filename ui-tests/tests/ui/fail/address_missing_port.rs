use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["api.internal"])]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all(req: &RequestHeader) {
        let _ = req;
    }
}

fn main() {}

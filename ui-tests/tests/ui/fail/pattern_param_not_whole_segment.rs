use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/users/user-{id}", to = Api)]
    fn user(req: &mut RequestHeader) {
        let _ = req;
    }
}

fn main() {}

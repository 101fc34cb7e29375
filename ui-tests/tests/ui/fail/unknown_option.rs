use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/users/{id}", to = Api, upstream_timeout = "2s")]
    fn user(id: u64, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-user-id", id.to_string())
    }
}

fn main() {}

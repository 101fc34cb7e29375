use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/users/{id}", to = Api)]
    fn user(id: u64, resp: &mut ResponseHeader) -> Result<()> {
        resp.insert_header("x-user-id", id.to_string())
    }
}

fn main() {}

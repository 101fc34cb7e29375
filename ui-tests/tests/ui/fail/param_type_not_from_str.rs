use proxy_runtime::prelude::*;

#[derive(Clone)]
pub struct UserId(pub u64);

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/users/{id}", to = Api)]
    fn user(id: UserId, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-user-id", id.0.to_string())
    }
}

fn main() {}

use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/users/{id}", to = Api)]
    fn user(user_id: u64, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-user-id", user_id.to_string())
    }
}

fn main() {}

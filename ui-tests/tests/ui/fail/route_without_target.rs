use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[route(GET, "/users/{id}")]
    fn user(id: u64, req: &mut RequestHeader) -> Result<()> {
        req.insert_header("x-user-id", id.to_string())
    }
}

fn main() {}

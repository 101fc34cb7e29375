use proxy_runtime::prelude::*;

#[route(GET, "/users/{id}", to = Api)]
fn user(id: u64, req: &mut RequestHeader) -> Result<()> {
    req.insert_header("x-user-id", id.to_string())
}

fn main() {
    let _ = user;
}

use proxy_runtime::prelude::*;

#[proxy]
mod edge {

    #[route(GET, "/old/{*rest}", redirect = "/new/{path}", status = 308)]
    fn old() {}
}

fn main() {}

use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/hello/{name}", to = Api)]
    fn hello(name: String) -> Response {
        Response::text(200, format!("hello {name}\n"))
    }
}

fn main() {}

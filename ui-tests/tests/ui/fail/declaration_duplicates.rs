use proxy_runtime::prelude::*;

#[proxy(
    listen = [
        "127.0.0.1:8080",
        "127.0.0.1:8080",
        tls("127.0.0.1:8080", cert = "c.pem", key = "k.pem"),
    ],
    name = "my proxy!"
)]
mod edge {
    #[upstream(addrs = ["api.internal:80", "API.internal:80"])]
    pub struct Api;

    #[route(GET, "/a", to = Api)]
    fn a() {}
}

fn main() {}

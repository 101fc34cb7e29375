use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(
        GET,
        "/a",
        to = Api,
        set_request_headers = [("x-bell", "ring\x07")],
        remove_request_headers = ["bad header", ""],
        remove_response_headers = ["x:y"],
    )]
    fn a() {}

    #[route(GET, "/b", respond = 200, content_type = "text/html\r\nset-cookie: x=1")]
    fn b() {}

    #[route(GET, "/c", respond = 204, body = "nothing to see")]
    fn c() {}
}

fn main() {}

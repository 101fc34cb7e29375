use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    // Ends in the middle of a segment: `/api/x` would reach the origin as `/i/x`.
    #[route(GET, "/api/{*rest}", to = Api, strip_prefix = "/ap")]
    fn mid_segment() {}

    // Strips nothing.
    #[route(GET, "/b/{*rest}", to = Api, strip_prefix = "/")]
    fn nothing() {}

    // Goes into the parameter.
    #[route(GET, "/c/{id}/x", to = Api, strip_prefix = "/c/1")]
    fn into_param() {}
}

fn main() {}

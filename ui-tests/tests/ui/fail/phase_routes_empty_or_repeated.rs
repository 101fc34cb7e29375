use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(GET, "/a", to = Api)]
    fn a() {}

    // An empty list would run the phase for every request.
    #[phase(request_filter, routes = [])]
    fn none(_req: &RequestHeader) {}

    #[phase(request_filter, routes = [a, a])]
    fn twice(_req: &RequestHeader) {}
}

fn main() {}

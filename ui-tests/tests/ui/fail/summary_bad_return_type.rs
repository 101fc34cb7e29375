use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all() {}

    #[phase(request_summary)]
    fn summary(session: &Session) -> &'static str {
        if session.req_header().path() == "/" { "root" } else { "other" }
    }
}

fn main() {}

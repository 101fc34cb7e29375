use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all() {}

    #[phase(request_summary)]
    fn summary(session: &Session) -> String {
        session.req_header().path().to_string()
    }

    #[phase(request_summary)]
    fn short_summary(session: &Session) -> String {
        session.req_header().method.to_string()
    }
}

fn main() {}

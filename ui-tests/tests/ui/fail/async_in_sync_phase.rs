use proxy_runtime::prelude::*;
use std::time::Duration;

#[proxy]
mod edge {
    use super::*;

    #[upstream(addrs = ["127.0.0.1:9001"])]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all() {}

    #[phase(response_body_filter)]
    async fn throttle(body: &mut Option<Bytes>) -> Option<Duration> {
        body.as_ref().map(|_| Duration::from_millis(10))
    }
}

fn main() {}

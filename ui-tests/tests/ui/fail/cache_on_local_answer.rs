use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[route(GET, "/healthz", respond = 200, body = "ok\n")]
    #[cache(ttl = "10s")]
    fn health() {}
}

fn main() {}

// `transport = ...` takes a value implementing `CustomTransport`.
use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(transport = String::from("not a transport"))]
    pub struct App;

    #[route(GET, "/", to = App)]
    fn home() {}
}

fn main() {}

use proxy_runtime::prelude::*;

#[proxy(listen = "127.0.0.1:8080")]
pub struct Edge;

fn main() {
    let _ = Edge;
}

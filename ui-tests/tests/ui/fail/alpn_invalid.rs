// ALPN mistakes: an unknown protocol set, ALPN without TLS, `h2` and `alpn` together.
use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["10.0.0.1:443"], tls, alpn = http3)]
    pub struct A;

    #[upstream(addrs = ["10.0.0.2:80"], alpn = h2)]
    pub struct B;

    #[upstream(addrs = ["10.0.0.3:443"], tls, h2, alpn = h2)]
    pub struct C;

    #[route(GET, "/a", to = A)]
    fn a() {}
    #[route(GET, "/b", to = B)]
    fn b() {}
    #[route(GET, "/c", to = C)]
    fn c() {}
}

fn main() {}

// Load-balancing mistakes: a hash without a key, a zero weight, weights on a policy
// that ignores them, a passive check with a zero threshold, zero ring points, a zero
// re-resolution interval.
use proxy_runtime::prelude::*;

#[proxy]
mod edge {
    #[upstream(addrs = ["10.0.0.1:80"], lb = consistent)]
    pub struct A;

    #[upstream(addrs = [("10.0.0.2:80", 0)], lb = weighted_round_robin)]
    pub struct B;

    #[upstream(addrs = [("10.0.0.3:80", 3), "10.0.0.4:80"])]
    pub struct C;

    #[upstream(addrs = ["10.0.0.5:80"], passive = passive(failures = 0, eject = "5s"))]
    pub struct D;

    #[upstream(addrs = ["10.0.0.6:80"], lb = consistent(header("x-user"), points = 0))]
    pub struct E;

    #[upstream(addrs = ["backend.internal:80"], resolve_every = "0s")]
    pub struct F;

    #[route(GET, "/a", to = A)]
    fn a() {}
    #[route(GET, "/b", to = B)]
    fn b() {}
    #[route(GET, "/c", to = C)]
    fn c() {}
    #[route(GET, "/d", to = D)]
    fn d() {}
    #[route(GET, "/e", to = E)]
    fn e() {}
    #[route(GET, "/f", to = F)]
    fn f() {}
}

fn main() {}

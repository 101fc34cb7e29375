//! Consistent hashing agrees with nginx's `hash $arg_key consistent`: the vectors in
//! tests/data/ketama_nginx_vectors.txt were produced by a real nginx with
//! tests/data/gen_ketama_vectors.sh (five servers, 1,000 keys).
#![allow(clippy::unwrap_used, missing_docs)]

use proxy_runtime::upstream::{Backend, LoadBalancer, Policy, ToPeerAddress};

#[test]
fn consistent_hashing_picks_what_nginx_picks() {
    let backends: Vec<Backend> = (18081..=18085)
        .map(|p| Backend {
            address: format!("127.0.0.1:{p}").as_str().to_peer_address().unwrap(),
            weight: 1,
        })
        .collect();
    let lb = LoadBalancer::new(backends, Policy::Consistent { points: 160 }).unwrap();
    let vectors = include_str!("data/ketama_nginx_vectors.txt");
    let mut checked = 0;
    for line in vectors.lines().filter(|l| !l.starts_with('#')) {
        let (key, expected) = line.split_once(' ').unwrap();
        let ours = lb.ring_owner(key.as_bytes()).unwrap().address.to_string();
        assert_eq!(ours, expected, "key {key}");
        checked += 1;
    }
    assert_eq!(checked, 1000);
}

// TLS listeners (one certificate, several chosen by SNI, client certificates) and
// upstream groups over TLS and HTTP/2.
use proxy_runtime::prelude::*;

#[proxy(
    name = "secure",
    listen = [
        "0.0.0.0:8080",
        tls("0.0.0.0:8443", cert = "/etc/edge/cert.pem", key = "/etc/edge/key.pem"),
        tls(
            "0.0.0.0:9443",
            certs = [("/etc/edge/a.pem", "/etc/edge/a.key"), ("/etc/edge/b.pem", "/etc/edge/b.key")],
            client_ca = "/etc/edge/clients.pem",
            client_auth_required,
        ),
    ]
)]
mod secure {
    #[upstream(addrs = ["10.0.0.1:443"], tls, sni = "api.internal", h2)]
    pub struct Api;

    #[upstream(addrs = ["10.0.0.2:8080"], h2)]
    pub struct Grpc;

    #[upstream(addrs = ["10.0.0.3:443"], tls, alpn = h2_or_h1)]
    pub struct Either;

    #[route(ANY, "/api/{*rest}", to = Api)]
    fn api() {}

    #[route(POST, "/grpc.Service/{method}", to = Grpc)]
    fn grpc() {}

    #[route(ANY, "/either/{*rest}", to = Either)]
    fn either() {}
}

fn main() {
    assert_eq!(secure::SPEC.listen, &["0.0.0.0:8080"]);
    assert_eq!(secure::SPEC.tls_listen.len(), 2);
    assert_eq!(secure::SPEC.tls_listen[1].certs.len(), 2);
    assert!(secure::SPEC.tls_listen[1].client_auth_required);
    let ups = secure::SPEC.upstreams;
    assert!(ups[0].tls && ups[0].h2);
    assert_eq!(ups[0].sni, Some("api.internal"));
    assert!(!ups[1].tls && ups[1].h2);
    let either = ups.iter().find(|u| u.name == "Either").unwrap();
    assert_eq!(either.alpn, Some(proxy_runtime::protocols::tls::Alpn::H2H1));
    let conf = secure::config();
    assert_eq!(conf.tls_listen.len(), 2);
}

//! A DSL-declared proxy with a TLS listener (certificates read from the declared paths)
//! and an HTTP/2 upstream group: HTTP/2 and HTTP/1.1 clients over TLS reach an origin
//! spoken to in cleartext HTTP/2 (h2c, prior knowledge).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::origin;
use proxy_runtime::prelude::*;
use proxy_runtime::server::{ConnectionTracker, Service, ShutdownWatch, Workers};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CERT: &str = "/tmp/proxy-dsl-tls-h2-test/cert.pem";
const KEY: &str = "/tmp/proxy-dsl-tls-h2-test/key.pem";

#[proxy(name = "secure", listen = [tls("127.0.0.1:0", cert = "/tmp/proxy-dsl-tls-h2-test/cert.pem", key = "/tmp/proxy-dsl-tls-h2-test/key.pem")])]
mod secure {
    #[upstream(addrs = ["127.0.0.1:1"], h2)]
    pub struct Api;

    #[route(ANY, "/{*rest}", to = Api)]
    fn all() {}
}

/// Write a fresh self-signed certificate for `localhost` to the declared paths.
fn write_cert() -> CertificateDer<'static> {
    std::fs::create_dir_all("/tmp/proxy-dsl-tls-h2-test").unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(CERT, cert.cert.pem()).unwrap();
    std::fs::write(KEY, cert.signing_key.serialize_pem()).unwrap();
    CertificateDer::from_pem_slice(cert.cert.pem().as_bytes()).unwrap()
}

async fn tls_client(
    addr: std::net::SocketAddr,
    ca: &CertificateDer<'static>,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test]
async fn tls_listener_and_h2_upstream_serve_h2_and_h1_clients() {
    let ca = write_cert();
    let conf = secure::config().with_upstream("Api", &[&origin("h2-origin").await]);
    let mut service = secure::service(&conf).unwrap();
    let workers = Workers::current();
    let bound = Service::bind(&mut service, &workers).await.unwrap();
    let addr = *bound[0].as_inet().unwrap();
    tokio::spawn(Box::new(service).serve(
        Arc::new(workers),
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ));

    // HTTP/2 over TLS (ALPN h2).
    let tls = tls_client(addr, &ca, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("https://localhost/hello?x=1")
        .body(())
        .unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk: Bytes = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("origin=h2-origin") && text.contains("path=/hello?x=1"),
        "{text}"
    );

    // HTTP/1.1 over TLS on the same listener.
    let mut tls = tls_client(addr, &ca, &[b"http/1.1"]).await;
    tls.write_all(b"GET /one HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).await.unwrap_or_default();
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("path=/one"), "{raw}");
}

#[tokio::test]
async fn a_missing_certificate_file_is_an_error_naming_the_path() {
    let mut conf = secure::config();
    conf.tls_listen[0].1.certs[0].cert = "/nonexistent/cert.pem".into();
    let err = secure::service(&conf).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}

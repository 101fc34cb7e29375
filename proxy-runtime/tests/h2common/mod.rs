//! Shared helpers of the HTTP/2 and TLS integration tests (`h2_*.rs`):
//!
//! - a throw-away PKI made with `rcgen` at test time (a CA, leaf and client
//!   certificates written as PEM files to a temporary directory removed on drop — no
//!   key is ever committed);
//! - test origins speaking HTTP/1.1 or HTTP/2 (the `h2` crate), each optionally behind
//!   TLS (`tokio-rustls`), that checksum the request body and answer with a body of a
//!   requested size and, when asked, trailers;
//! - a routing [`ProxyHttp`] and a way to run the engine on a cleartext port (HTTP/1 and
//!   h2c) and a TLS port (ALPN) at once;
//! - clients: the `h2` crate client (cleartext or TLS with ALPN `h2`), a raw HTTP/1.1
//!   client (cleartext or TLS), and a tiny HTTP/2 frame encoder for hand-made attacks.
//!
//! Every wait is bounded by [`SAFETY`]: exceeding it fails the test with a message
//! instead of hanging. None of these bounds is a timing assertion.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use h2::client::SendRequest;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderName, HeaderValue};
use proxy_runtime::bytes::{Buf, Bytes, BytesMut};
use proxy_runtime::prelude::{
    Error, ErrorKind, ErrorSource, HttpPeer, HttpProxyService, HttpProxyServiceBuilder, ProxyHttp,
    Session,
};
use proxy_runtime::protocols::tls::{Alpn, TlsAcceptor, TlsServerSettings};
use proxy_runtime::proxy::HttpProxy;
use proxy_runtime::server::{ConnectionTracker, ListenAddr, Listener, ShutdownWatch};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// The bound on any single wait in a test: exceeded means the test hangs, and fails.
pub const SAFETY: Duration = Duration::from_secs(10);

/// The name the proxy's default TLS certificate is made for.
pub const PROXY_NAME: &str = "proxy.test";
/// The name the TLS origins' certificates are made for.
pub const ORIGIN_NAME: &str = "origin.test";

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Bound a future by [`SAFETY`]; exceeding it fails the test naming `what`.
pub async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    match timeout(SAFETY, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {SAFETY:?}: {what}"),
    }
}

/// Wait until `cond` holds (polling), or fail the test after [`SAFETY`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + SAFETY;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {SAFETY:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The peak resident set size of this process, in KiB (`VmHWM`).
pub fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Whether an external tool runs here; prints `SKIPPED: <tool> not installed` if not.
pub fn tool_available(tool: &str) -> bool {
    tool_answers(tool, "--version")
}

/// Whether `tool version_arg` runs and succeeds here; prints the skip notice if not.
pub fn tool_answers(tool: &str, version_arg: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg(version_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: {tool} not installed");
    }
    ok
}

// ---------------------------------------------------------------------------------------
// Test data: a deterministic pattern and a checksum
// ---------------------------------------------------------------------------------------

const PATTERN_PERIOD: usize = 251;
/// The largest piece handed out at once.
pub const BLOCK: usize = 64 * 1024;

fn pattern_buf() -> &'static [u8] {
    static BUF: OnceLock<Vec<u8>> = OnceLock::new();
    BUF.get_or_init(|| {
        (0..BLOCK + PATTERN_PERIOD)
            .map(|i| (i % PATTERN_PERIOD) as u8)
            .collect()
    })
}

/// `len` (≤ 64 KiB) bytes of the test pattern starting at absolute `offset`.
pub fn pattern_at(offset: u64, len: usize) -> &'static [u8] {
    assert!(len <= BLOCK);
    let start = (offset % PATTERN_PERIOD as u64) as usize;
    &pattern_buf()[start..start + len]
}

/// The pattern body of `n` bytes, as pieces of at most 64 KiB.
pub fn pattern_pieces(n: u64) -> impl Iterator<Item = Bytes> {
    let mut off = 0u64;
    std::iter::from_fn(move || {
        if off >= n {
            return None;
        }
        let len = (n - off).min(BLOCK as u64) as usize;
        let piece = Bytes::from_static(pattern_at(off, len));
        off += len as u64;
        Some(piece)
    })
}

/// Length and FNV-1a 64 checksum of a body seen piece by piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sum {
    /// Bytes seen.
    pub len: u64,
    hash: u64,
}

impl Default for Sum {
    fn default() -> Self {
        Sum {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
        }
    }
}

impl Sum {
    /// Account for the next piece.
    pub fn update(&mut self, data: &[u8]) {
        let mut h = self.hash;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.hash = h;
        self.len += data.len() as u64;
    }

    /// The checksum as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.hash)
    }
}

/// The checksum of the `n`-byte pattern body (computed once per size).
pub fn pattern_sum(n: u64) -> String {
    static CACHE: OnceLock<Mutex<HashMap<u64, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(s) = lock(cache).get(&n) {
        return s.clone();
    }
    let mut sum = Sum::default();
    for piece in pattern_pieces(n) {
        sum.update(&piece);
    }
    let hex = sum.hex();
    lock(cache).insert(n, hex.clone());
    hex
}

fn query_param<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let q = target.split_once('?')?.1;
    q.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

// ---------------------------------------------------------------------------------------
// The test PKI
// ---------------------------------------------------------------------------------------

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A certificate and key written as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate chain (leaf only).
    pub cert: PathBuf,
    /// The PKCS#8 private key.
    pub key: PathBuf,
    /// The leaf, DER.
    pub der: CertificateDer<'static>,
}

impl CertFiles {
    /// The chain and key, loaded back from the files.
    pub fn load(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (certs, PrivateKeyDer::from_pem_file(&self.key).unwrap())
    }
}

/// A certificate authority made for one test, with its files in a temporary directory
/// (removed on drop).
pub struct Pki {
    /// The directory holding every file.
    pub dir: PathBuf,
    /// The CA certificate, PEM file.
    pub ca_file: PathBuf,
    /// The CA certificate, DER.
    pub ca_der: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    counter: AtomicUsize,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    /// A new CA named `label` (the label also names the directory).
    pub fn new(label: &str) -> Pki {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "proxy-h2-tests-{}-{label}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{label} test CA"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).unwrap();
        Pki {
            dir,
            ca_file,
            ca_der: cert.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
            counter: AtomicUsize::new(0),
        }
    }

    fn issue(&self, names: &[&str], client: bool) -> (String, String, CertificateDer<'static>) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        params.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().clone())
    }

    fn write(
        &self,
        stem: &str,
        cert_pem: &str,
        key_pem: &str,
        der: CertificateDer<'static>,
    ) -> CertFiles {
        let cert = self.dir.join(format!("{stem}.crt"));
        let key = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        CertFiles { cert, key, der }
    }

    /// A server certificate for `names` (DNS names or IP addresses), in new files.
    pub fn server_cert(&self, names: &[&str]) -> CertFiles {
        let (c, k, der) = self.issue(names, false);
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        self.write(&format!("server-{n}"), &c, &k, der)
    }

    /// A new server certificate for `names` written over `files` (a renewal).
    pub fn renew(&self, files: &CertFiles, names: &[&str]) -> CertFiles {
        let (c, k, der) = self.issue(names, false);
        // Write to temporary names and rename, as a deployment would.
        let tmp_c = files.cert.with_extension("crt.new");
        let tmp_k = files.key.with_extension("key.new");
        std::fs::write(&tmp_c, c).unwrap();
        std::fs::write(&tmp_k, k).unwrap();
        std::fs::rename(&tmp_k, &files.key).unwrap();
        std::fs::rename(&tmp_c, &files.cert).unwrap();
        CertFiles {
            cert: files.cert.clone(),
            key: files.key.clone(),
            der,
        }
    }

    /// A client certificate (for mTLS).
    pub fn client_cert(&self, name: &str) -> CertFiles {
        let (c, k, der) = self.issue(&[name], true);
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        self.write(&format!("client-{n}"), &c, &k, der)
    }

    /// A rustls server config presenting `cert`, offering `alpn`.
    pub fn server_config(&self, cert: &CertFiles, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let (chain, key) = cert.load();
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A rustls client config trusting this CA, offering `alpn`, with an optional
    /// client certificate.
    pub fn client_config(&self, alpn: &[&[u8]], client: Option<&CertFiles>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some(c) => {
                let (chain, key) = c.load();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A client config that accepts any server certificate (to look at what a server
/// presents, whatever it is).
pub fn any_cert_client_config(alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAnyCert;

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

/// Any connected byte stream (TCP or TLS).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A boxed connected byte stream.
pub type BoxIo = Box<dyn Io>;

/// A TCP connection to `addr` (bounded, `TCP_NODELAY`).
pub async fn tcp(addr: SocketAddr) -> TcpStream {
    let s = bounded("TCP connect", TcpStream::connect(addr))
        .await
        .expect("TCP connect failed");
    s.set_nodelay(true).unwrap();
    s
}

/// The socket receive buffer of slow readers (set before connecting or listening, so
/// that the kernel's autotuning does not absorb megabytes).
pub const SMALL_RCVBUF: u32 = 16 * 1024;

/// A TCP connection to `addr` with a small receive buffer.
pub async fn tcp_small_rcvbuf(addr: SocketAddr) -> TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(SMALL_RCVBUF).unwrap();
    let s = bounded("TCP connect", s.connect(addr))
        .await
        .expect("TCP connect failed");
    s.set_nodelay(true).unwrap();
    s
}

/// A TLS connection to `addr` presenting `sni` (an IP address means no SNI).
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    sni: &str,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    tls_connect_over(tcp(addr).await, config, sni).await
}

/// A TLS connection over `sock`, presenting `sni`.
pub async fn tls_connect_over(
    sock: TcpStream,
    config: Arc<ClientConfig>,
    sni: &str,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = ServerName::try_from(sni.to_string()).unwrap();
    bounded(
        "TLS handshake",
        tokio_rustls::TlsConnector::from(config).connect(name, sock),
    )
    .await
}

/// The leaf certificate a TLS client connection received.
pub fn leaf_of(s: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref()
        .1
        .peer_certificates()
        .expect("no server certificate")[0]
        .clone()
}

/// The ALPN protocol a TLS client connection agreed.
pub fn alpn_of(s: &tokio_rustls::client::TlsStream<TcpStream>) -> Option<Vec<u8>> {
    s.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

// ---------------------------------------------------------------------------------------
// A buffered reader for the HTTP/1 code of origins and clients
// ---------------------------------------------------------------------------------------

/// A byte stream with a read buffer, for hand-written HTTP/1.1.
pub struct H1Conn<S> {
    /// The stream.
    pub io: S,
    buf: BytesMut,
    /// The peer closed its side.
    pub eof: bool,
    /// Read in small pieces, yielding between them (a slow reader, so that the
    /// peer's writes back up).
    pub slow: bool,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parse `Name: value` lines into (lowercase name, value) pairs.
fn parse_fields<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect()
}

/// The first value of `name` (lowercase) among `fields`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

impl<S: AsyncRead + AsyncWrite + Unpin> H1Conn<S> {
    /// Wrap a stream.
    pub fn new(io: S) -> Self {
        H1Conn {
            io,
            buf: BytesMut::with_capacity(64 * 1024),
            eof: false,
            slow: false,
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        if self.slow {
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            let mut small = [0u8; 512];
            let n = self.io.read(&mut small).await?;
            self.buf.extend_from_slice(&small[..n]);
            if n == 0 {
                self.eof = true;
            }
            return Ok(n);
        }
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = self.io.read_buf(&mut self.buf).await?;
        if n == 0 {
            self.eof = true;
        }
        Ok(n)
    }

    /// The bytes up to the next blank line; `None` at a clean EOF before any byte.
    pub async fn read_head(&mut self) -> io::Result<Option<String>> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let head = self.buf.split_to(i + 4);
                return Ok(Some(String::from_utf8_lossy(&head).into_owned()));
            }
            if self.buf.len() > 1 << 20 {
                return Err(io::Error::other("head too large"));
            }
            if self.fill().await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                };
            }
        }
    }

    async fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                let line = self.buf.split_to(i + 2);
                return Ok(String::from_utf8_lossy(&line[..i]).into_owned());
            }
            if self.buf.len() > 64 * 1024 {
                return Err(io::Error::other("line too long"));
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn read_exact_into(&mut self, mut n: u64, sum: &mut Sum) -> io::Result<()> {
        while n > 0 {
            if self.buf.is_empty() && self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = (self.buf.len() as u64).min(n) as usize;
            sum.update(&self.buf[..take]);
            self.buf.advance(take);
            n -= take as u64;
        }
        Ok(())
    }

    async fn read_to_eof_into(&mut self, sum: &mut Sum) -> io::Result<()> {
        loop {
            sum.update(&self.buf);
            self.buf.clear();
            if self.fill().await? == 0 {
                return Ok(());
            }
        }
    }

    /// A chunked body into `sum`; returns the trailer fields.
    async fn read_chunked_into(&mut self, sum: &mut Sum) -> io::Result<Vec<(String, String)>> {
        loop {
            let line = self.read_line().await?;
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_str, 16)
                .map_err(|_| io::Error::other(format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                let mut lines = Vec::new();
                loop {
                    let l = self.read_line().await?;
                    if l.is_empty() {
                        return Ok(parse_fields(lines.iter().map(String::as_str)));
                    }
                    lines.push(l);
                }
            }
            self.read_exact_into(size, sum).await?;
            if !self.read_line().await?.is_empty() {
                return Err(io::Error::other("chunk data not followed by CRLF"));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Test origins
// ---------------------------------------------------------------------------------------

/// The HTTP version an origin (or a client) speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    /// HTTP/1.1.
    H1,
    /// HTTP/2.
    H2,
}

impl Proto {
    /// `h1` or `h2`, as in the `x-origin-proto` response header.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::H1 => "h1",
            Proto::H2 => "h2",
        }
    }
}

/// How to start a test origin.
#[derive(Clone)]
pub struct OriginConfig {
    /// HTTP/1.1 or HTTP/2 (prior knowledge on cleartext; by ALPN over TLS).
    pub proto: Proto,
    /// TLS, with this server config.
    pub tls: Option<Arc<ServerConfig>>,
    /// HTTP/2: `SETTINGS_MAX_CONCURRENT_STREAMS` (default: the `h2` crate's).
    pub max_concurrent_streams: Option<u32>,
    /// Hold every request until this many are being handled at once, then release
    /// them together (the proof that streams really run concurrently).
    pub barrier: Option<usize>,
    /// HTTP/1: read requests slowly (small reads, a small socket receive buffer), so
    /// the proxy's writes back up.
    pub slow_reader: bool,
}

impl OriginConfig {
    /// A cleartext origin.
    pub fn plain(proto: Proto) -> Self {
        OriginConfig {
            proto,
            tls: None,
            max_concurrent_streams: None,
            barrier: None,
            slow_reader: false,
        }
    }

    /// A TLS origin with a certificate for [`ORIGIN_NAME`] from `pki`, offering the
    /// ALPN id of `proto` only.
    pub fn tls(proto: Proto, pki: &Pki) -> Self {
        let cert = pki.server_cert(&[ORIGIN_NAME]);
        let alpn: &[u8] = match proto {
            Proto::H1 => b"http/1.1",
            Proto::H2 => b"h2",
        };
        OriginConfig {
            proto,
            tls: Some(pki.server_config(&cert, &[alpn])),
            max_concurrent_streams: None,
            barrier: None,
            slow_reader: false,
        }
    }
}

struct Barrier {
    size: usize,
    waiting: Mutex<usize>,
    generation: watch::Sender<u64>,
    timed_out: AtomicUsize,
}

impl Barrier {
    async fn wait(&self) {
        let mut rx = self.generation.subscribe();
        let gen_now = {
            let mut w = lock(&self.waiting);
            let gen_now = *self.generation.borrow();
            *w += 1;
            if *w == self.size {
                *w = 0;
                self.generation.send_replace(gen_now + 1);
                return;
            }
            gen_now
        };
        if timeout(SAFETY, rx.wait_for(|g| *g != gen_now))
            .await
            .is_err()
        {
            self.timed_out.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Default)]
struct OriginState {
    accepts: AtomicUsize,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    gate: Notify,
    barrier: Option<Barrier>,
    /// TLS handshakes that failed.
    tls_failures: AtomicUsize,
    /// `/hold` requests the proxy gave up (stream reset, or connection closed).
    cancelled: AtomicUsize,
}

/// A test origin on a loopback port. Every request's body is read to its end and
/// checksummed; the answer depends on the target's query:
///
/// | query | answer |
/// |---|---|
/// | `n=N` | a body of N pattern bytes (default 0) |
/// | `status=C` | status C (default 200) |
/// | `trailers=1` | trailers `x-checksum` (of the response body) and `x-trailer-two: 2`; an HTTP/1 origin then answers chunked, else with `Content-Length` |
///
/// Response headers: `x-origin-proto` (`h1`/`h2`), `x-origin-conn` (accepted
/// connection number), `x-echo` (the request's `x-test`), `x-req-len` and `x-req-sum`
/// (length and checksum of the request body), `x-req-trailer` (the request trailer
/// `x-checksum`, if any), `x-req-te` (the `te` request header, if any).
///
/// The path `/hold` never answers: the origin waits (up to 3 × [`SAFETY`]) for the proxy
/// to give the request up — RST_STREAM on HTTP/2, closing the connection on HTTP/1 —
/// and counts it in [`TestOrigin::cancelled`].
///
/// The path `/rst` answers 200 (`Content-Length: 1000000` on HTTP/1), sends 10000 body
/// bytes, waits for [`TestOrigin::open_gate`], then aborts: RST_STREAM
/// (`INTERNAL_ERROR`) on HTTP/2, closing the connection mid-body on HTTP/1.
pub struct TestOrigin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it speaks.
    pub proto: Proto,
    /// Whether it speaks TLS.
    pub tls: bool,
    state: Arc<OriginState>,
    task: JoinHandle<()>,
}

impl Drop for TestOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestOrigin {
    /// Start an origin on `127.0.0.1:0`.
    pub async fn start(config: OriginConfig) -> TestOrigin {
        let listener = if config.slow_reader {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.set_recv_buffer_size(SMALL_RCVBUF).unwrap();
            s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            s.listen(128).unwrap()
        } else {
            TcpListener::bind("127.0.0.1:0").await.unwrap()
        };
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(OriginState {
            barrier: config.barrier.map(|size| Barrier {
                size,
                waiting: Mutex::new(0),
                generation: watch::Sender::new(0),
                timed_out: AtomicUsize::new(0),
            }),
            ..OriginState::default()
        });
        let st = state.clone();
        let cfg = config.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let _ = sock.set_nodelay(true);
                let conn = st.accepts.fetch_add(1, Ordering::SeqCst) + 1;
                let st = st.clone();
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let io: BoxIo = match &cfg.tls {
                        None => Box::new(sock),
                        Some(tls) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
                            match timeout(SAFETY, acceptor.accept(sock)).await {
                                Ok(Ok(s)) => Box::new(s),
                                _ => {
                                    st.tls_failures.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                            }
                        }
                    };
                    match cfg.proto {
                        Proto::H1 => {
                            let _ = serve_h1_origin(&st, io, conn, cfg.slow_reader).await;
                        }
                        Proto::H2 => serve_h2_origin(st, io, conn, &cfg).await,
                    }
                });
            }
        });
        TestOrigin {
            addr,
            proto: config.proto,
            tls: config.tls.is_some(),
            state,
            task,
        }
    }

    /// TCP connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.state.accepts.load(Ordering::SeqCst)
    }

    /// Requests whose head arrived so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests being handled right now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests handled at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests whose barrier wait gave up (the barrier never filled).
    pub fn barrier_timeouts(&self) -> usize {
        self.state
            .barrier
            .as_ref()
            .map_or(0, |b| b.timed_out.load(Ordering::SeqCst))
    }

    /// TLS handshakes that failed.
    pub fn tls_failures(&self) -> usize {
        self.state.tls_failures.load(Ordering::SeqCst)
    }

    /// `/hold` requests the proxy gave up on (reset or closed) so far.
    pub fn cancelled(&self) -> usize {
        self.state.cancelled.load(Ordering::SeqCst)
    }

    /// Let a waiting `/rst` answer proceed to its abort.
    pub fn open_gate(&self) {
        self.state.gate.notify_one();
    }

    /// A peer for this origin, the way the matrix reaches it: cleartext HTTP/2 by prior
    /// knowledge; over TLS the ALPN id of its protocol only, verified against `pki`'s
    /// CA for [`ORIGIN_NAME`].
    pub fn peer(&self, pki: &Pki) -> HttpPeer {
        let sni = if self.tls { ORIGIN_NAME } else { "" };
        let mut p = HttpPeer::new(self.addr, self.tls, sni).unwrap();
        if self.tls {
            p.options.ca_file = Some(pki.ca_file.clone());
            p.options.alpn = match self.proto {
                Proto::H1 => Alpn::H1,
                Proto::H2 => Alpn::H2,
            };
        } else {
            p.options.h2 = self.proto == Proto::H2;
        }
        p
    }
}

/// A request as the origin saw it, and what it answers.
struct Answer {
    status: u16,
    n: u64,
    trailers: bool,
    headers: Vec<(String, String)>,
}

fn answer_for(
    proto: Proto,
    conn: usize,
    target: &str,
    req_headers: &[(String, String)],
    body: &Sum,
    req_trailer: Option<&str>,
) -> Answer {
    let status = query_param(target, "status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let n = query_param(target, "n")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let trailers = query_param(target, "trailers") == Some("1");
    let mut headers = vec![
        ("x-origin-proto".to_string(), proto.as_str().to_string()),
        ("x-origin-conn".to_string(), conn.to_string()),
        ("x-req-len".to_string(), body.len.to_string()),
        ("x-req-sum".to_string(), body.hex()),
        (
            "content-type".to_string(),
            "application/octet-stream".to_string(),
        ),
    ];
    if let Some(v) = field(req_headers, "x-test") {
        headers.push(("x-echo".to_string(), v.to_string()));
    }
    if let Some(v) = field(req_headers, "te") {
        headers.push(("x-req-te".to_string(), v.to_string()));
    }
    if let Some(v) = req_trailer {
        headers.push(("x-req-trailer".to_string(), v.to_string()));
    }
    Answer {
        status,
        n,
        trailers,
        headers,
    }
}

async fn serve_h1_origin(st: &OriginState, io: BoxIo, conn: usize, slow: bool) -> io::Result<()> {
    let mut c = H1Conn::new(io);
    c.slow = slow;
    loop {
        let Some(head) = c.read_head().await? else {
            return Ok(());
        };
        st.requests.fetch_add(1, Ordering::SeqCst);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("").to_string();
        let mut parts = request_line.splitn(3, ' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let headers = parse_fields(lines);
        if field(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            c.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            c.io.flush().await?;
        }
        let chunked = field(&headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length: Option<u64> = field(&headers, "content-length").and_then(|v| v.parse().ok());
        let mut sum = Sum::default();
        let req_trailers = if chunked {
            c.read_chunked_into(&mut sum).await?
        } else {
            if let Some(n) = length {
                c.read_exact_into(n, &mut sum).await?;
            }
            Vec::new()
        };
        let answer = answer_for(
            Proto::H1,
            conn,
            &target,
            &headers,
            &sum,
            field(&req_trailers, "x-checksum"),
        );
        let path = target.split('?').next().unwrap_or("");
        if path == "/hold" {
            let mut rest = Sum::default();
            let _ = timeout(SAFETY * 3, c.read_to_eof_into(&mut rest)).await;
            if c.eof {
                st.cancelled.fetch_add(1, Ordering::SeqCst);
            }
            return Ok(());
        }
        let mut resp = format!("HTTP/1.1 {} Test\r\n", answer.status);
        for (n, v) in &answer.headers {
            resp.push_str(&format!("{n}: {v}\r\n"));
        }
        if path == "/rst" {
            resp.push_str("Content-Length: 1000000\r\n\r\n");
            c.io.write_all(resp.as_bytes()).await?;
            c.io.write_all(pattern_at(0, 10_000)).await?;
            c.io.flush().await?;
            let _ = timeout(SAFETY, st.gate.notified()).await;
            // Close mid-body (for TLS: without close_notify).
            return Ok(());
        }
        let bodyless = method == "HEAD" || answer.status == 204 || answer.status == 304;
        if answer.trailers && !bodyless {
            resp.push_str(
                "Transfer-Encoding: chunked\r\nTrailer: x-checksum, x-trailer-two\r\n\r\n",
            );
            c.io.write_all(resp.as_bytes()).await?;
            for piece in pattern_pieces(answer.n) {
                let mut chunk = Vec::with_capacity(piece.len() + 16);
                chunk.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                chunk.extend_from_slice(&piece);
                chunk.extend_from_slice(b"\r\n");
                c.io.write_all(&chunk).await?;
            }
            let end = format!(
                "0\r\nx-checksum: {}\r\nx-trailer-two: 2\r\n\r\n",
                pattern_sum(answer.n)
            );
            c.io.write_all(end.as_bytes()).await?;
        } else {
            resp.push_str(&format!("Content-Length: {}\r\n\r\n", answer.n));
            c.io.write_all(resp.as_bytes()).await?;
            if !bodyless {
                for piece in pattern_pieces(answer.n) {
                    c.io.write_all(&piece).await?;
                }
            }
        }
        c.io.flush().await?;
    }
}

async fn serve_h2_origin(st: Arc<OriginState>, io: BoxIo, conn: usize, cfg: &OriginConfig) {
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20);
    if let Some(m) = cfg.max_concurrent_streams {
        builder.max_concurrent_streams(m);
    }
    let Ok(Ok(mut h2conn)) = timeout(SAFETY, builder.handshake::<_, Bytes>(io)).await else {
        return;
    };
    while let Some(next) = h2conn.accept().await {
        let Ok((req, respond)) = next else { return };
        let st = st.clone();
        tokio::spawn(async move {
            st.requests.fetch_add(1, Ordering::SeqCst);
            let mut in_flight = InFlight::enter(&st);
            if let Some(b) = &st.barrier {
                b.wait().await;
            }
            let _ = handle_h2_origin_stream(&st, conn, req, respond, &mut in_flight).await;
        });
    }
}

/// One stream being handled by the HTTP/2 origin. It stops counting just *before* the
/// frame that ends the stream goes out: once the peer sees the end it may open the
/// next stream, which must not find this one still counted.
struct InFlight<'a> {
    st: &'a OriginState,
    counted: bool,
}

impl<'a> InFlight<'a> {
    fn enter(st: &'a OriginState) -> Self {
        let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        st.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight { st, counted: true }
    }

    fn leave(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.st.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

async fn handle_h2_origin_stream(
    st: &OriginState,
    conn: usize,
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    in_flight: &mut InFlight<'_>,
) -> Result<(), h2::Error> {
    let (parts, mut body) = req.into_parts();
    let mut sum = Sum::default();
    while let Some(data) = body.data().await {
        let data = data?;
        sum.update(&data);
        let _ = body.flow_control().release_capacity(data.len());
    }
    let req_trailers = body.trailers().await?;
    let req_headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let req_trailer = req_trailers
        .as_ref()
        .and_then(|t| t.get("x-checksum"))
        .and_then(|v| v.to_str().ok());
    let answer = answer_for(Proto::H2, conn, &target, &req_headers, &sum, req_trailer);
    let mut resp = http::Response::builder().status(answer.status);
    for (n, v) in &answer.headers {
        resp = resp.header(n.as_str(), v.as_str());
    }
    let path = parts.uri.path();
    if path == "/hold" {
        if timeout(SAFETY * 3, poll_fn(|cx| respond.poll_reset(cx)))
            .await
            .is_ok()
        {
            st.cancelled.fetch_add(1, Ordering::SeqCst);
        }
        return Ok(());
    }
    if path == "/rst" {
        let resp = resp.body(()).unwrap();
        let mut send = respond.send_response(resp, false)?;
        h2_send_all(&mut send, Bytes::from_static(pattern_at(0, 10_000))).await?;
        let _ = timeout(SAFETY, st.gate.notified()).await;
        in_flight.leave();
        send.send_reset(h2::Reason::INTERNAL_ERROR);
        return Ok(());
    }
    let bodyless =
        parts.method == http::Method::HEAD || answer.status == 204 || answer.status == 304;
    if !answer.trailers && !bodyless {
        resp = resp.header("content-length", answer.n.to_string());
    }
    let resp = resp.body(()).unwrap();
    let empty = bodyless || (answer.n == 0 && !answer.trailers);
    if empty {
        in_flight.leave();
    }
    let mut send = respond.send_response(resp, empty)?;
    if empty {
        return Ok(());
    }
    for piece in pattern_pieces(answer.n) {
        h2_send_all(&mut send, piece).await?;
    }
    in_flight.leave();
    if answer.trailers {
        let mut t = HeaderMap::new();
        t.insert(
            "x-checksum",
            HeaderValue::from_str(&pattern_sum(answer.n)).unwrap(),
        );
        t.insert("x-trailer-two", HeaderValue::from_static("2"));
        send.send_trailers(t)?;
    } else {
        send.send_data(Bytes::new(), true)?;
    }
    Ok(())
}

/// Send `data` on an HTTP/2 stream as its flow-control window allows (not ending it).
pub async fn h2_send_all(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), h2::Error> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let n = match poll_fn(|cx| send.poll_capacity(cx)).await {
            None => return Err(h2::Error::from(h2::Reason::CANCEL)),
            Some(r) => r?,
        };
        if n == 0 {
            continue;
        }
        let piece = data.split_to(n.min(data.len()));
        send.send_data(piece, false)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------------------

/// A proxy choosing its peer by the request header `x-route` (else the default route),
/// and recording the errors requests failed with.
pub struct RouteProxy {
    /// Peers by route name.
    pub routes: Mutex<HashMap<String, HttpPeer>>,
    /// The route of requests without `x-route`.
    pub default_route: Mutex<String>,
    /// Every error a request ended with (from `logging`).
    pub errors: Mutex<Vec<String>>,
    /// Requests logged.
    pub logged: AtomicUsize,
    /// `upstream_peer` calls (one per try, retries included).
    pub peer_calls: AtomicUsize,
}

impl RouteProxy {
    /// A proxy with these routes; the first is the default.
    pub fn new(routes: impl IntoIterator<Item = (String, HttpPeer)>) -> Self {
        let routes: Vec<_> = routes.into_iter().collect();
        let default = routes.first().map(|(n, _)| n.clone()).unwrap_or_default();
        RouteProxy {
            routes: Mutex::new(routes.into_iter().collect()),
            default_route: Mutex::new(default),
            errors: Mutex::new(Vec::new()),
            logged: AtomicUsize::new(0),
            peer_calls: AtomicUsize::new(0),
        }
    }

    /// `upstream_peer` calls so far (one per try).
    pub fn tries(&self) -> usize {
        self.peer_calls.load(Ordering::SeqCst)
    }

    /// The errors logged so far.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }
}

impl ProxyHttp for RouteProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        session: &mut Session,
        _ctx: &mut (),
    ) -> proxy_runtime::Result<HttpPeer> {
        self.peer_calls.fetch_add(1, Ordering::SeqCst);
        let name = session
            .get_header("x-route")
            .map(str::to_string)
            .unwrap_or_else(|| lock(&self.default_route).clone());
        lock(&self.routes).get(&name).cloned().ok_or_else(|| {
            Error::explain(
                ErrorKind::HttpStatus(404),
                ErrorSource::Internal,
                format!("no route {name:?}"),
            )
        })
    }

    async fn logging(&self, _session: &mut Session, e: Option<&Error>, _ctx: &mut ()) {
        if let Some(e) = e {
            lock(&self.errors).push(e.to_string());
        }
        self.logged.fetch_add(1, Ordering::SeqCst);
    }
}

/// The engine running in the test's runtime: a cleartext port (HTTP/1.1 and h2c) and,
/// when configured, a TLS port. Stops when dropped.
pub struct RunningProxy<P> {
    /// The cleartext port.
    pub plain: SocketAddr,
    /// The TLS port.
    pub tls: Option<SocketAddr>,
    /// The TLS acceptor (for reloads).
    pub acceptor: Option<Arc<TlsAcceptor>>,
    /// The engine.
    pub engine: Arc<HttpProxy<P>>,
    tasks: Vec<JoinHandle<()>>,
}

impl<P> RunningProxy<P> {
    /// The user's proxy.
    pub fn app(&self) -> &P {
        &self.engine.inner
    }

    /// The TLS port (panics if there is none).
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls.expect("this proxy has no TLS listener")
    }
}

impl<P> Drop for RunningProxy<P> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Run `proxy` (builder changed by `tweak`) on a fresh cleartext port, and on a TLS
/// port with `tls` when given.
pub async fn run_proxy<P: ProxyHttp>(
    proxy: P,
    tls: Option<TlsServerSettings>,
    tweak: impl FnOnce(HttpProxyServiceBuilder<P>) -> HttpProxyServiceBuilder<P>,
) -> RunningProxy<P> {
    let tls = match tls {
        Some(settings) => Some((bind_loopback().await, settings)),
        None => None,
    };
    run_proxy_on(proxy, bind_loopback().await, tls, tweak).await
}

/// Run `proxy` on these listeners (cleartext, and TLS with its settings).
pub async fn run_proxy_on<P: ProxyHttp>(
    proxy: P,
    plain: Listener,
    tls: Option<(Listener, TlsServerSettings)>,
    tweak: impl FnOnce(HttpProxyServiceBuilder<P>) -> HttpProxyServiceBuilder<P>,
) -> RunningProxy<P> {
    let plain_addr = *plain.local_addr().unwrap().as_inet().unwrap();
    let service = tweak(HttpProxyServiceBuilder::new(proxy)).build();
    let engine = service.proxy().clone();
    let mut tasks = vec![tokio::spawn(HttpProxyService::serve_listener(
        engine.clone(),
        plain,
        ShutdownWatch::never(),
        Arc::new(ConnectionTracker::default()),
    ))];
    let (tls_addr, acceptor) = match tls {
        None => (None, None),
        Some((listener, settings)) => {
            let acceptor = Arc::new(TlsAcceptor::new(settings).unwrap());
            let addr = *listener.local_addr().unwrap().as_inet().unwrap();
            tasks.push(tokio::spawn(HttpProxyService::serve_tls_listener(
                engine.clone(),
                listener,
                acceptor.clone(),
                ShutdownWatch::never(),
                Arc::new(ConnectionTracker::default()),
            )));
            (Some(addr), Some(acceptor))
        }
    };
    RunningProxy {
        plain: plain_addr,
        tls: tls_addr,
        acceptor,
        engine,
        tasks,
    }
}

/// A loopback listener whose connections have a small send buffer (so the proxy's
/// writes to a slow client back up instead of vanishing into kernel buffers).
pub fn small_sndbuf_listener() -> Listener {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_send_buffer_size(SMALL_RCVBUF).unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    Listener::Tcp(s.listen(128).unwrap())
}

/// A TCP listener on a free loopback port.
pub async fn bind_loopback() -> Listener {
    Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".into()))
        .await
        .unwrap()
}

/// TLS settings for the proxy: one certificate for [`PROXY_NAME`] (and 127.0.0.1).
pub fn proxy_tls_settings(pki: &Pki) -> TlsServerSettings {
    let cert = pki.server_cert(&[PROXY_NAME, "127.0.0.1"]);
    TlsServerSettings::new(&cert.cert, &cert.key)
}

// ---------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------

/// How a client reaches the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// HTTP/1.1, cleartext.
    H1,
    /// HTTP/2 with prior knowledge, cleartext.
    H2c,
    /// HTTP/1.1 over TLS (ALPN `http/1.1`).
    H1Tls,
    /// HTTP/2 over TLS (ALPN `h2`).
    H2Tls,
}

impl Down {
    /// Every kind.
    pub const ALL: [Down; 4] = [Down::H1, Down::H2c, Down::H1Tls, Down::H2Tls];

    /// The HTTP version the client speaks.
    pub fn proto(self) -> Proto {
        match self {
            Down::H1 | Down::H1Tls => Proto::H1,
            Down::H2c | Down::H2Tls => Proto::H2,
        }
    }

    /// Whether it uses TLS.
    pub fn tls(self) -> bool {
        matches!(self, Down::H1Tls | Down::H2Tls)
    }
}

/// Start an HTTP/2 client connection on `io`; its connection task runs in the
/// background.
pub async fn h2_handshake<S: Io>(io: S) -> SendRequest<Bytes> {
    let (send, conn) = bounded(
        "HTTP/2 client handshake",
        h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .handshake::<_, Bytes>(io),
    )
    .await
    .expect("HTTP/2 handshake failed");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A client connection to the proxy, of any [`Down`] kind.
pub enum DownClient {
    /// An HTTP/1.1 connection.
    H1(H1Conn<BoxIo>),
    /// An HTTP/2 connection.
    H2(SendRequest<Bytes>),
}

/// One request to send through a [`DownClient`].
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The method.
    pub method: &'static str,
    /// Path and query.
    pub path: String,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// A request body of this many pattern bytes.
    pub body_len: u64,
    /// Declare the body length (`Content-Length`); else HTTP/1 sends it chunked and
    /// HTTP/2 without a length.
    pub content_length: bool,
    /// Request trailers (needs `content_length == false`).
    pub trailers: Vec<(String, String)>,
    /// Send `TE: trailers`.
    pub te_trailers: bool,
}

impl Exchange {
    /// `GET path`, no body.
    pub fn get(path: impl Into<String>) -> Self {
        Exchange {
            method: "GET",
            path: path.into(),
            headers: Vec::new(),
            body_len: 0,
            content_length: true,
            trailers: Vec::new(),
            te_trailers: false,
        }
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// What came back.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Status code.
    pub status: u16,
    /// Headers (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Length and checksum of the body received.
    pub body: Sum,
    /// Trailers (lowercase names).
    pub trailers: Vec<(String, String)>,
    /// The response ended as its framing says.
    pub complete: bool,
    /// What went wrong, when it did not complete.
    pub error: Option<String>,
    /// HTTP/2: the reset reason of the stream, if it was reset.
    pub reset: Option<h2::Reason>,
}

impl Outcome {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        field(&self.headers, name)
    }

    /// The first value of trailer `name` (lowercase).
    pub fn trailer(&self, name: &str) -> Option<&str> {
        field(&self.trailers, name)
    }
}

fn map_to_pairs(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

impl DownClient {
    /// Connect to `proxy` as `kind` (TLS clients trust `pki` and present
    /// [`PROXY_NAME`]).
    pub async fn connect<P>(kind: Down, proxy: &RunningProxy<P>, pki: &Pki) -> DownClient {
        let io: BoxIo = if kind.tls() {
            let alpn: &[u8] = match kind.proto() {
                Proto::H1 => b"http/1.1",
                Proto::H2 => b"h2",
            };
            let s = tls_connect(
                proxy.tls_addr(),
                pki.client_config(&[alpn], None),
                PROXY_NAME,
            )
            .await
            .expect("TLS handshake with the proxy failed");
            assert_eq!(alpn_of(&s).as_deref(), Some(alpn), "ALPN with the proxy");
            Box::new(s)
        } else {
            Box::new(tcp(proxy.plain).await)
        };
        Self::over(kind.proto(), io).await
    }

    /// A client speaking `proto` over an established stream.
    pub async fn over(proto: Proto, io: BoxIo) -> DownClient {
        match proto {
            Proto::H1 => DownClient::H1(H1Conn::new(io)),
            Proto::H2 => DownClient::H2(h2_handshake(io).await),
        }
    }

    /// Send `ex` and read the whole response (bounded by [`SAFETY`] per step).
    pub async fn exchange(&mut self, ex: &Exchange) -> Outcome {
        match self {
            DownClient::H1(c) => h1_exchange(c, ex).await,
            DownClient::H2(s) => h2_exchange(s, ex, "proxy.test").await,
        }
    }
}

async fn h1_exchange(c: &mut H1Conn<BoxIo>, ex: &Exchange) -> Outcome {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {PROXY_NAME}\r\n",
        ex.method, ex.path
    );
    for (n, v) in &ex.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if ex.te_trailers {
        head.push_str("TE: trailers\r\n");
    }
    let chunked = !ex.content_length;
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    } else if ex.body_len > 0 || ex.method == "POST" || ex.method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", ex.body_len));
    } else {
        head.push_str("\r\n");
    }
    let send = async {
        c.io.write_all(head.as_bytes()).await?;
        for piece in pattern_pieces(ex.body_len) {
            if chunked {
                let mut chunk = Vec::with_capacity(piece.len() + 16);
                chunk.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                chunk.extend_from_slice(&piece);
                chunk.extend_from_slice(b"\r\n");
                c.io.write_all(&chunk).await?;
            } else {
                c.io.write_all(&piece).await?;
            }
        }
        if chunked {
            let mut end = String::from("0\r\n");
            for (n, v) in &ex.trailers {
                end.push_str(&format!("{n}: {v}\r\n"));
            }
            end.push_str("\r\n");
            c.io.write_all(end.as_bytes()).await?;
        }
        c.io.flush().await
    };
    if let Err(e) = bounded("sending an HTTP/1 request", send).await {
        return Outcome {
            error: Some(format!("sending the request: {e}")),
            ..Outcome::default()
        };
    }
    h1_read_response(c, ex.method == "HEAD").await
}

/// Read one final HTTP/1 response (interim ones skipped).
pub async fn h1_read_response(c: &mut H1Conn<BoxIo>, head_request: bool) -> Outcome {
    let mut out = Outcome::default();
    let raw = loop {
        match bounded("an HTTP/1 response head", c.read_head()).await {
            Ok(Some(raw)) if raw.starts_with("HTTP/1.1 1") && !raw.starts_with("HTTP/1.1 101") => {
                continue;
            }
            Ok(Some(raw)) => break raw,
            Ok(None) => {
                out.error = Some("connection closed before a response".into());
                return out;
            }
            Err(e) => {
                out.error = Some(format!("reading the response head: {e}"));
                return out;
            }
        }
    };
    let mut lines = raw.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    out.status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    out.headers = parse_fields(lines);
    let chunked = field(&out.headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length: Option<u64> = field(&out.headers, "content-length").and_then(|v| v.parse().ok());
    let mut sum = Sum::default();
    let read = async {
        if head_request || out.status == 204 || out.status == 304 {
            Ok(Vec::new())
        } else if chunked {
            c.read_chunked_into(&mut sum).await
        } else if let Some(n) = length {
            c.read_exact_into(n, &mut sum).await.map(|()| Vec::new())
        } else {
            c.read_to_eof_into(&mut sum).await.map(|()| Vec::new())
        }
    };
    match bounded("an HTTP/1 response body", read).await {
        Ok(t) => {
            out.trailers = t;
            out.complete = true;
        }
        Err(e) => out.error = Some(format!("reading the response body: {e}")),
    }
    out.body = sum;
    out
}

/// Send `ex` on an HTTP/2 connection (`authority` as `:authority`) and read the whole
/// response; the upload runs while the response is awaited.
pub async fn h2_exchange(send: &SendRequest<Bytes>, ex: &Exchange, authority: &str) -> Outcome {
    let mut out = Outcome::default();
    let mut req = http::Request::builder()
        .method(ex.method)
        .uri(format!("http://{authority}{}", ex.path));
    for (n, v) in &ex.headers {
        req = req.header(n.as_str(), v.as_str());
    }
    if ex.te_trailers {
        req = req.header("te", "trailers");
    }
    if ex.content_length && (ex.body_len > 0 || ex.method == "POST") {
        req = req.header("content-length", ex.body_len.to_string());
    }
    let req = req.body(()).unwrap();
    let no_body = ex.body_len == 0 && ex.trailers.is_empty();
    let ready = bounded("an HTTP/2 stream slot", send.clone().ready()).await;
    let mut ready = match ready {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(format!("connection not usable: {e}"));
            return out;
        }
    };
    let (response, mut body_tx) = match ready.send_request(req, no_body) {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(format!("sending the request: {e}"));
            return out;
        }
    };
    let upload = if no_body {
        None
    } else {
        let len = ex.body_len;
        let trailers = ex.trailers.clone();
        Some(tokio::spawn(async move {
            for piece in pattern_pieces(len) {
                h2_send_all(&mut body_tx, piece).await?;
            }
            if trailers.is_empty() {
                body_tx.send_data(Bytes::new(), true)
            } else {
                let mut t = HeaderMap::new();
                for (n, v) in trailers {
                    t.append(
                        HeaderName::from_bytes(n.as_bytes()).unwrap(),
                        HeaderValue::from_str(&v).unwrap(),
                    );
                }
                body_tx.send_trailers(t)
            }
        }))
    };
    let resp = match bounded("an HTTP/2 response head", response).await {
        Ok(r) => r,
        Err(e) => {
            out.reset = e.reason();
            out.error = Some(format!("response: {e}"));
            return out;
        }
    };
    out.status = resp.status().as_u16();
    out.headers = map_to_pairs(resp.headers());
    let mut body = resp.into_body();
    let mut sum = Sum::default();
    let result = bounded("an HTTP/2 response body", async {
        while let Some(data) = body.data().await {
            let data = data?;
            sum.update(&data);
            let _ = body.flow_control().release_capacity(data.len());
        }
        body.trailers().await
    })
    .await;
    out.body = sum;
    match result {
        Ok(t) => {
            out.trailers = t.as_ref().map(map_to_pairs).unwrap_or_default();
            out.complete = true;
        }
        Err(e) => {
            out.reset = e.reason();
            out.error = Some(format!("response body: {e}"));
        }
    }
    if let Some(upload) = upload {
        // The upload ended (or failed, e.g. reset along with the response).
        let _ = bounded("the HTTP/2 upload", upload).await;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/2 frames, for hand-made (hostile) clients
// ---------------------------------------------------------------------------------------

/// A tiny HTTP/2 frame encoder and decoder.
pub mod frames {
    use tokio::io::{AsyncRead, AsyncReadExt};

    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;

    /// END_STREAM flag.
    pub const END_STREAM: u8 = 0x1;
    /// ACK flag (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_HEADERS flag.
    pub const END_HEADERS: u8 = 0x4;

    /// CANCEL error code.
    pub const CANCEL: u32 = 0x8;

    /// One frame on the wire.
    pub fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        assert!(len < 1 << 24);
        let mut out = Vec::with_capacity(9 + len);
        out.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags]);
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// A SETTINGS frame with these (id, value) pairs.
    pub fn settings(values: &[(u16, u32)]) -> Vec<u8> {
        let mut p = Vec::new();
        for (id, v) in values {
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&v.to_be_bytes());
        }
        frame(SETTINGS, 0, 0, &p)
    }

    /// RST_STREAM with `code`.
    pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
        frame(RST_STREAM, 0, stream, &code.to_be_bytes())
    }

    /// An HPACK integer with an `n`-bit prefix, the high bits of the first byte `flags`.
    pub fn hpack_int(out: &mut Vec<u8>, n: u8, flags: u8, mut v: usize) {
        let max = (1usize << n) - 1;
        if v < max {
            out.push(flags | v as u8);
            return;
        }
        out.push(flags | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
    }

    /// An HPACK string literal (no Huffman coding).
    pub fn hpack_str(out: &mut Vec<u8>, s: &[u8]) {
        hpack_int(out, 7, 0, s.len());
        out.extend_from_slice(s);
    }

    /// A literal header field without indexing, with a new name.
    pub fn literal(name: &str, value: &[u8]) -> Vec<u8> {
        let mut out = vec![0x00];
        hpack_str(&mut out, name.as_bytes());
        hpack_str(&mut out, value);
        out
    }

    /// The header block of `GET http://authority/path`.
    pub fn get_block(authority: &str, path: &str) -> Vec<u8> {
        // :method GET (static 2), :scheme http (6); :path and :authority literal
        // without indexing, indexed names (4 and 1).
        let mut out = vec![0x82, 0x86];
        out.push(0x04);
        hpack_str(&mut out, path.as_bytes());
        out.push(0x01);
        hpack_str(&mut out, authority.as_bytes());
        out
    }

    /// A frame as read back: (type, flags, stream, payload).
    pub type Frame = (u8, u8, u32, Vec<u8>);

    /// Read one frame; `None` at EOF or error.
    pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Option<Frame> {
        let mut head = [0u8; 9];
        r.read_exact(&mut head).await.ok()?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0; len];
        r.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], stream, payload))
    }
}

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Paths handy for the pattern checks.
pub fn path_of(p: &Path) -> &str {
    p.to_str().unwrap()
}

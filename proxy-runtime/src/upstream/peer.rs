//! [`HttpPeer`]: where and how to reach one upstream for one request.
//!
//! A peer names an address (IP or Unix path), the scheme, the TLS identity (SNI and
//! verification — carried now, used once upstream TLS lands), and per-peer timeouts. Two
//! peers whose connections are interchangeable have the same [`HttpPeer::reuse_hash`],
//! which keys the connection pool. A peer may also carry a [`CustomTransport`]: its
//! requests then go through that transport instead of HTTP/1 or HTTP/2 on a socket.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind, ErrorSource, Result};
use crate::protocols::SocketAddress;
use crate::protocols::custom::CustomTransport;

/// A fast, non-cryptographic hasher (the "Fx" multiply-rotate scheme): pool keys are
/// computed per request and never come from untrusted input alone.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Timeouts and connection options of one peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerOptions {
    /// Longest wait for the TCP/Unix connect (default 10 s).
    pub connect_timeout: Duration,
    /// Longest wait for one read from the origin: the response head or a body piece
    /// (default 60 s). Expiry answers 504.
    pub read_timeout: Duration,
    /// Longest wait for one write to the origin (default 60 s).
    pub write_timeout: Duration,
    /// How long a connection to this peer may sit idle in the pool (default 60 s;
    /// zero disables pooling for this peer).
    pub idle_timeout: Duration,
    /// Verify the origin's certificate (TLS peers; default on).
    pub verify_cert: bool,
    /// Verify that the certificate matches the SNI (TLS peers; default on).
    pub verify_hostname: bool,
    /// Trust this CA bundle instead of the system roots (TLS peers).
    pub ca_file: Option<std::path::PathBuf>,
    /// Present this client certificate (TLS peers).
    pub client_cert: Option<crate::protocols::tls::CertKeyPaths>,
    /// Protocols offered by ALPN (TLS peers; default HTTP/1.1 only).
    pub alpn: crate::protocols::tls::Alpn,
    /// Speak HTTP/2 with prior knowledge (cleartext peers; default off).
    pub h2: bool,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            verify_cert: true,
            verify_hostname: true,
            ca_file: None,
            client_cert: None,
            alpn: crate::protocols::tls::Alpn::H1,
            h2: false,
        }
    }
}

/// One upstream destination for one request.
///
/// Two peers are equal when every field is, and their transports (if any) are the
/// same transport value (`Arc::ptr_eq`).
#[derive(Debug, Clone)]
pub struct HttpPeer {
    /// Where to connect.
    pub address: SocketAddress,
    /// Whether to speak TLS to it.
    pub tls: bool,
    /// The TLS server name (also a reasonable `Host` when the request has none).
    pub sni: String,
    /// Timeouts and options.
    pub options: PeerOptions,
    /// A user-defined transport that carries this peer's requests instead of HTTP on
    /// a socket (see [`crate::protocols::custom`]). Share one value (clone the `Arc`)
    /// for all requests: what it pools lives inside it.
    pub transport: Option<Arc<dyn CustomTransport>>,
}

impl PartialEq for HttpPeer {
    fn eq(&self, other: &Self) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let HttpPeer {
            address,
            tls,
            sni,
            options,
            transport,
        } = self;
        let same_transport = match (transport, &other.transport) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        *address == other.address
            && *tls == other.tls
            && *sni == other.sni
            && *options == other.options
            && same_transport
    }
}

impl Eq for HttpPeer {}

impl HttpPeer {
    /// A peer at `address` (see [`ToPeerAddress`]: a `SocketAddr`, `"ip:port"`,
    /// `"unix:/path"`), with TLS and SNI as given, and default options.
    pub fn new(address: impl ToPeerAddress, tls: bool, sni: impl Into<String>) -> Result<Self> {
        Ok(HttpPeer {
            address: address.to_peer_address()?,
            tls,
            sni: sni.into(),
            options: PeerOptions::default(),
            transport: None,
        })
    }

    /// A plaintext peer at a resolved address.
    pub fn plain(address: SocketAddress) -> Self {
        HttpPeer {
            address,
            tls: false,
            sni: String::new(),
            options: PeerOptions::default(),
            transport: None,
        }
    }

    /// A peer reached through `transport` only, named `name` (the default `Host` of
    /// requests that have none, and what logs show: `custom://name`). Its address is
    /// the unspecified `0.0.0.0:0`: the transport decides where requests go.
    pub fn custom(name: impl Into<String>, transport: Arc<dyn CustomTransport>) -> Self {
        HttpPeer {
            address: SocketAddress::Inet(std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            tls: false,
            sni: name.into(),
            options: PeerOptions::default(),
            transport: Some(transport),
        }
    }

    /// This peer, reached through `transport` (which may use the peer's address, as
    /// [`FramedTransport::at_peer_address`] does): how a load-balanced group's pick
    /// becomes a custom peer.
    ///
    /// [`FramedTransport::at_peer_address`]: crate::protocols::custom::framed::FramedTransport::at_peer_address
    pub fn with_transport(mut self, transport: Arc<dyn CustomTransport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The key of the connection pool: equal for peers whose connections can be shared.
    pub fn reuse_hash(&self) -> u64 {
        let mut h = FxHasher::default();
        self.address.hash(&mut h);
        self.tls.hash(&mut h);
        if self.tls {
            self.sni.hash(&mut h);
            self.options.verify_cert.hash(&mut h);
            self.options.verify_hostname.hash(&mut h);
            self.options.ca_file.hash(&mut h);
            self.options.client_cert.hash(&mut h);
            self.options.alpn.hash(&mut h);
        }
        self.options.h2.hash(&mut h);
        if let Some(t) = &self.transport {
            // The transport's identity: its connections are its own.
            (Arc::as_ptr(t).cast::<()>() as usize).hash(&mut h);
        }
        h.finish()
    }

    /// The TLS options of this peer.
    pub fn upstream_tls(&self) -> crate::protocols::tls::UpstreamTls {
        crate::protocols::tls::UpstreamTls {
            verify_cert: self.options.verify_cert,
            verify_hostname: self.options.verify_hostname,
            ca_file: self.options.ca_file.clone(),
            client_cert: self.options.client_cert.clone(),
            alpn: self.options.alpn,
        }
    }

    /// The name presented by SNI and verified: `sni`, else the address's IP.
    pub fn tls_server_name(&self) -> String {
        if !self.sni.is_empty() {
            return self.sni.clone();
        }
        match &self.address {
            SocketAddress::Inet(a) => a.ip().to_string(),
            SocketAddress::Unix(_) => "localhost".to_string(),
        }
    }

    /// A value for the `Host` header when the client sent none.
    pub fn default_host(&self) -> String {
        if !self.sni.is_empty() {
            return self.sni.clone();
        }
        match &self.address {
            SocketAddress::Inet(a) => a.to_string(),
            SocketAddress::Unix(_) => "localhost".to_string(),
        }
    }
}

impl std::fmt::Display for HttpPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.transport.is_some() {
            return if self.sni.is_empty() {
                write!(f, "custom://{}", self.address)
            } else {
                write!(f, "custom://{}", self.sni)
            };
        }
        write!(
            f,
            "{}{}",
            if self.tls { "https://" } else { "http://" },
            self.address
        )
    }
}

/// Things that name a peer address without a DNS lookup.
pub trait ToPeerAddress {
    /// The address, or an error naming what could not be parsed.
    fn to_peer_address(self) -> Result<SocketAddress>;
}

impl ToPeerAddress for SocketAddress {
    fn to_peer_address(self) -> Result<SocketAddress> {
        Ok(self)
    }
}

impl ToPeerAddress for std::net::SocketAddr {
    fn to_peer_address(self) -> Result<SocketAddress> {
        Ok(SocketAddress::Inet(self))
    }
}

impl ToPeerAddress for &str {
    fn to_peer_address(self) -> Result<SocketAddress> {
        if let Some(path) = self.strip_prefix("unix:") {
            return Ok(SocketAddress::Unix(PathBuf::from(path)));
        }
        self.parse::<std::net::SocketAddr>()
            .map(SocketAddress::Inet)
            .map_err(|_| {
                Error::explain(
                    ErrorKind::Config,
                    ErrorSource::Internal,
                    format!(
                        "invalid peer address {self:?}: expected \"ip:port\" or \"unix:/path\" \
                         (resolve host names first, e.g. with tokio::net::lookup_host)"
                    ),
                )
            })
    }
}

impl ToPeerAddress for &String {
    fn to_peer_address(self) -> Result<SocketAddress> {
        self.as_str().to_peer_address()
    }
}

impl ToPeerAddress for String {
    fn to_peer_address(self) -> Result<SocketAddress> {
        self.as_str().to_peer_address()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            HttpPeer::new("127.0.0.1:80", false, "")
                .unwrap()
                .address
                .to_string(),
            "127.0.0.1:80"
        );
        assert_eq!(
            HttpPeer::new("unix:/tmp/s", false, "")
                .unwrap()
                .address
                .to_string(),
            "unix:/tmp/s"
        );
        assert!(HttpPeer::new("example.com:80", false, "").is_err());
    }

    #[test]
    fn reuse_hash_separates_what_matters() {
        let a = HttpPeer::new("127.0.0.1:80", false, "").unwrap();
        let mut b = a.clone();
        b.options.read_timeout = Duration::from_secs(1);
        assert_eq!(
            a.reuse_hash(),
            b.reuse_hash(),
            "timeouts do not change the connection"
        );
        let c = HttpPeer::new("127.0.0.1:81", false, "").unwrap();
        assert_ne!(a.reuse_hash(), c.reuse_hash());
        let mut d = HttpPeer::new("127.0.0.1:80", true, "a").unwrap();
        let e = HttpPeer::new("127.0.0.1:80", true, "b").unwrap();
        assert_ne!(d.reuse_hash(), e.reuse_hash());
        d.options.verify_cert = false;
        assert_ne!(
            d.reuse_hash(),
            HttpPeer::new("127.0.0.1:80", true, "a")
                .unwrap()
                .reuse_hash()
        );
    }

    #[test]
    fn custom_peers_are_told_apart_by_their_transport() {
        use crate::protocols::custom::framed::FramedTransport;
        let t1: Arc<dyn CustomTransport> = Arc::new(FramedTransport::unix("/tmp/a"));
        let t2: Arc<dyn CustomTransport> = Arc::new(FramedTransport::unix("/tmp/a"));
        let a = HttpPeer::custom("api", t1.clone());
        let b = HttpPeer::custom("api", t1);
        let c = HttpPeer::custom("api", t2.clone());
        assert_eq!(a, b);
        assert_eq!(a.reuse_hash(), b.reuse_hash());
        assert_ne!(a, c);
        assert_ne!(a.reuse_hash(), c.reuse_hash());
        let plain = HttpPeer::new("0.0.0.0:0", false, "api").unwrap();
        assert_ne!(plain, a);
        assert_ne!(plain.reuse_hash(), a.reuse_hash());
        assert_eq!(a.to_string(), "custom://api");
        assert_eq!(a.default_host(), "api");
        let lb = HttpPeer::new("10.0.0.1:80", false, "")
            .unwrap()
            .with_transport(t2);
        assert_eq!(lb.to_string(), "custom://10.0.0.1:80");
        assert!(format!("{lb:?}").contains("FramedTransport"));
    }
}

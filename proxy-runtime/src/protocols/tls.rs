//! TLS on `rustls`: the listener side (certificates chosen by SNI, ALPN, client
//! certificates, reload without dropping connections) and the upstream side (SNI,
//! verification against the system roots or a CA file, client certificates, ALPN).
//!
//! Certificates and keys are read from PEM files. A listener may have several
//! certificates: the one whose names match the client's SNI is used, the first one when
//! none matches (or the client sends no SNI). [`TlsAcceptor::reload`] re-reads every
//! file; new handshakes use the new certificates, established connections keep theirs.
//! [`TlsAcceptor::watch`] reloads on SIGHUP and when a file's modification time changes.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::error::{Error, ErrorKind, ErrorSource, Result, RetryType};
use crate::protocols::Stream;

/// The crypto implementation (ring) shared by every config.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn config_error(what: impl fmt::Display) -> Box<Error> {
    Error::explain(ErrorKind::Config, ErrorSource::Internal, what.to_string())
}

/// Which application protocols to offer or accept (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Alpn {
    /// HTTP/1.1 only.
    H1,
    /// HTTP/2 only.
    H2,
    /// HTTP/2 preferred, HTTP/1.1 accepted.
    #[default]
    H2H1,
}

impl Alpn {
    /// The protocol ids, in preference order.
    pub fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::H1 => vec![b"http/1.1".to_vec()],
            Alpn::H2 => vec![b"h2".to_vec()],
            Alpn::H2H1 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        }
    }

    /// The protocol ids a listener accepts: also `http/1.0` where HTTP/1.1 is served
    /// (curl `--http1.0` offers nothing else, and nginx accepts it), so such a client
    /// is served instead of refused with `no_application_protocol`.
    pub fn server_protocols(self) -> Vec<Vec<u8>> {
        let mut ids = self.protocols();
        if self != Alpn::H2 {
            ids.push(b"http/1.0".to_vec());
        }
        ids
    }
}

/// One certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertKeyPaths {
    /// The certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The TLS settings of a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerSettings {
    /// Certificates; the first is the default.
    pub certs: Vec<CertKeyPaths>,
    /// Protocols offered to clients.
    pub alpn: Alpn,
    /// Verify client certificates against this CA bundle (mTLS).
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse clients without a certificate (else they are allowed,
    /// and those with one are verified).
    pub client_auth_required: bool,
}

impl TlsServerSettings {
    /// One certificate, ALPN `h2` and `http/1.1`, no client authentication.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        TlsServerSettings {
            certs: vec![CertKeyPaths {
                cert: cert.into(),
                key: key.into(),
            }],
            alpn: Alpn::H2H1,
            client_ca: None,
            client_auth_required: false,
        }
    }

    /// Add a certificate, chosen when the client's SNI matches its names.
    pub fn with_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.certs.push(CertKeyPaths {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            config_error(format!(
                "cannot read certificate file {}: {e}",
                path.display()
            ))
        })?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            config_error(format!(
                "invalid PEM in certificate file {}: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(config_error(format!(
            "no certificate in {} (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| config_error(format!("cannot read private key {}: {e}", path.display())))
}

fn read_roots(path: &Path) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| {
            config_error(format!("invalid CA certificate in {}: {e}", path.display()))
        })?;
    }
    Ok(roots)
}

/// A loaded certificate with what is needed to match it against an SNI name.
struct LoadedCert {
    key: Arc<CertifiedKey>,
}

impl LoadedCert {
    fn load(paths: &CertKeyPaths) -> Result<Self> {
        let certs = read_certs(&paths.cert)?;
        let key = read_key(&paths.key)?;
        let signing = provider().key_provider.load_private_key(key).map_err(|e| {
            config_error(format!("unusable private key {}: {e}", paths.key.display()))
        })?;
        let certified = CertifiedKey::new(certs, signing);
        certified.keys_match().map_err(|e| {
            config_error(format!(
                "the key {} does not belong to the certificate {}: {e}",
                paths.key.display(),
                paths.cert.display()
            ))
        })?;
        Ok(LoadedCert {
            key: Arc::new(certified),
        })
    }

    fn matches(&self, name: &ServerName<'_>) -> bool {
        let Some(leaf) = self.key.cert.first() else {
            return false;
        };
        webpki::EndEntityCert::try_from(leaf)
            .is_ok_and(|c| c.verify_is_valid_for_subject_name(name).is_ok())
    }
}

/// Picks the certificate for a handshake by SNI.
struct SniResolver {
    certs: RwLock<Arc<Vec<LoadedCert>>>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.read().unwrap_or_else(|p| p.into_inner()).clone();
        let by_name = hello
            .server_name()
            .and_then(|n| ServerName::try_from(n).ok())
            .and_then(|name| certs.iter().find(|c| c.matches(&name)));
        by_name.or_else(|| certs.first()).map(|c| c.key.clone())
    }
}

/// Accepts TLS connections for one listener.
pub struct TlsAcceptor {
    settings: TlsServerSettings,
    resolver: Arc<SniResolver>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("settings", &self.settings)
            .finish()
    }
}

impl TlsAcceptor {
    /// Load every certificate and key; errors name the file.
    pub fn new(settings: TlsServerSettings) -> Result<Self> {
        if settings.certs.is_empty() {
            return Err(config_error(
                "a TLS listener needs at least one certificate",
            ));
        }
        let certs = settings
            .certs
            .iter()
            .map(LoadedCert::load)
            .collect::<Result<Vec<_>>>()?;
        let resolver = Arc::new(SniResolver {
            certs: RwLock::new(Arc::new(certs)),
        });
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(format!("TLS versions: {e}")))?;
        let builder = match &settings.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let roots = Arc::new(read_roots(ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
                let verifier = if settings.client_auth_required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .map_err(|e| config_error(format!("client CA {}: {e}", ca.display())))?,
                )
            }
        };
        let mut config = builder.with_cert_resolver(resolver.clone());
        config.alpn_protocols = settings.alpn.server_protocols();
        Ok(TlsAcceptor {
            settings,
            resolver,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Re-read every certificate and key. On error the current ones stay in use.
    pub fn reload(&self) -> Result<()> {
        let certs = self
            .settings
            .certs
            .iter()
            .map(LoadedCert::load)
            .collect::<Result<Vec<_>>>()?;
        *self
            .resolver
            .certs
            .write()
            .unwrap_or_else(|p| p.into_inner()) = Arc::new(certs);
        Ok(())
    }

    /// Reload on SIGHUP, and when a certificate or key file changes (checked every
    /// `every`). Runs until the acceptor is dropped everywhere else.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut seen = weak.upgrade().map(|a| a.mtimes()).unwrap_or_default();
            loop {
                let hup_fired = async {
                    match hup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                let by_signal = tokio::select! {
                    () = tokio::time::sleep(every) => false,
                    () = hup_fired => true,
                };
                let Some(acceptor) = weak.upgrade() else {
                    return;
                };
                let now = acceptor.mtimes();
                if by_signal || now != seen {
                    match acceptor.reload() {
                        Ok(()) => tracing::info!("TLS certificates reloaded"),
                        Err(e) => tracing::error!(
                            "TLS certificate reload failed, keeping the old ones: {e}"
                        ),
                    }
                    seen = now;
                }
            }
        });
    }

    fn mtimes(&self) -> Vec<Option<SystemTime>> {
        self.settings
            .certs
            .iter()
            .flat_map(|c| [&c.cert, &c.key])
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// The TLS handshake on an accepted connection.
    pub async fn accept(&self, stream: Stream) -> io::Result<Stream> {
        let tls = self.acceptor.accept(stream).await?;
        Ok(Stream::TlsServer(Box::new(tls)))
    }
}

/// What distinguishes one client TLS configuration from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    verify_cert: bool,
    verify_hostname: bool,
    ca_file: Option<PathBuf>,
    client_cert: Option<CertKeyPaths>,
    alpn: Alpn,
}

/// The TLS side of upstream connections.
#[derive(Default)]
pub struct TlsConnector {
    configs: Mutex<HashMap<ClientKey, Arc<ClientConfig>>>,
    system_roots: OnceLock<std::result::Result<Arc<RootCertStore>, String>>,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConnector")
    }
}

/// The TLS options of an upstream peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// Verify the certificate chain.
    pub verify_cert: bool,
    /// Verify that the certificate matches the SNI.
    pub verify_hostname: bool,
    /// Trust this CA bundle instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Present this client certificate.
    pub client_cert: Option<CertKeyPaths>,
    /// Protocols to offer.
    pub alpn: Alpn,
}

impl TlsConnector {
    fn system_roots(&self) -> Result<Arc<RootCertStore>> {
        self.system_roots
            .get_or_init(|| {
                let found = rustls_native_certs::load_native_certs();
                let mut roots = RootCertStore::empty();
                for cert in found.certs {
                    // A system bundle may hold certificates rustls cannot use; skip them.
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    Err(format!(
                        "no system root certificates found ({} errors); install ca-certificates or give a CA file",
                        found.errors.len()
                    ))
                } else {
                    Ok(Arc::new(roots))
                }
            })
            .clone()
            .map_err(config_error)
    }

    fn config(&self, opts: &UpstreamTls) -> Result<Arc<ClientConfig>> {
        let key = ClientKey {
            verify_cert: opts.verify_cert,
            verify_hostname: opts.verify_hostname,
            ca_file: opts.ca_file.clone(),
            client_cert: opts.client_cert.clone(),
            alpn: opts.alpn,
        };
        if let Some(c) = self
            .configs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(c.clone());
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(format!("TLS versions: {e}")))?;
        let builder = if !opts.verify_cert {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification))
        } else {
            let roots = match &opts.ca_file {
                Some(ca) => Arc::new(read_roots(ca)?),
                None => self.system_roots()?,
            };
            let webpki =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| config_error(format!("certificate verifier: {e}")))?;
            if opts.verify_hostname {
                builder.with_webpki_verifier(webpki)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
            }
        };
        let mut config = match &opts.client_cert {
            None => builder.with_no_client_auth(),
            Some(paths) => builder
                .with_client_auth_cert(read_certs(&paths.cert)?, read_key(&paths.key)?)
                .map_err(|e| {
                    config_error(format!("client certificate {}: {e}", paths.cert.display()))
                })?,
        };
        config.alpn_protocols = opts.alpn.protocols();
        let config = Arc::new(config);
        self.configs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, config.clone());
        Ok(config)
    }

    /// The TLS handshake with an upstream over `stream`, presenting `sni`.
    pub async fn connect(&self, stream: Stream, sni: &str, opts: &UpstreamTls) -> Result<Stream> {
        let config = self.config(opts)?;
        let name = ServerName::try_from(sni.to_string()).map_err(|_| {
            config_error(format!("invalid TLS server name {sni:?} for an upstream"))
        })?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(|e| {
                Error::because(
                    ErrorKind::ConnectError,
                    ErrorSource::Upstream,
                    format!("TLS handshake with {sni}"),
                    e,
                )
                // A handshake failure is a property of the peer: another backend may do.
                .with_retry(RetryType::Decided(true))
            })?;
        Ok(Stream::TlsClient(Box::new(tls)))
    }
}

/// Accepts any certificate: for test origins only (`verify_cert = false`).
#[derive(Debug)]
struct NoVerification;

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
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

/// Verifies the chain but not the name (`verify_hostname = false`).
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

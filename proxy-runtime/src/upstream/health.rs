//! Active health checks: a background task probes every backend of a group on an
//! interval and marks it down after `fall` consecutive failures, up again after `rise`
//! consecutive successes. State changes are logged. Selection skips backends that are
//! down (see [`LoadBalancer::select`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::Method;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use super::LoadBalancer;
use crate::protocols::h1::HeadLimits;
use crate::protocols::h1::body::{BodyDecoder, BodyEvent};
use crate::protocols::h1::head::BodyFraming;
use crate::protocols::h1::io::ConnIo;
use crate::protocols::tls::{Alpn, TlsConnector, UpstreamTls};
use crate::protocols::{SocketAddress, Stream};

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthProbe {
    /// The backend accepts a TCP (or Unix) connection.
    Tcp,
    /// `GET path` answers with `expect` (or any 2xx/3xx when `None`).
    Http {
        /// The path to request.
        path: String,
        /// The `Host` header to send (default: the backend's address).
        host: Option<String>,
        /// The status to expect.
        expect: Option<u16>,
        /// Text the body must contain (the first 64 KiB are read).
        body: Option<String>,
    },
}

/// The TLS handshake a probe makes before anything else (groups spoken to over TLS):
/// a backend whose handshake fails is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProbe {
    /// The server name presented (empty: the backend's IP address).
    pub sni: String,
    /// Verification settings, as for requests.
    pub settings: UpstreamTls,
}

/// How a group is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The probe.
    pub probe: HealthProbe,
    /// Time between two probes of a backend.
    pub interval: Duration,
    /// Time a probe may take.
    pub timeout: Duration,
    /// Consecutive successes that bring a backend back up.
    pub rise: u32,
    /// Consecutive failures that take a backend down.
    pub fall: u32,
    /// Handshake TLS first (`None`: plain TCP or Unix).
    pub tls: Option<TlsProbe>,
}

impl HealthCheck {
    /// A check with this probe every `interval`, 1 s timeout (at most the interval),
    /// rise 2, fall 3.
    pub fn new(probe: HealthProbe, interval: Duration) -> Self {
        HealthCheck {
            probe,
            interval,
            timeout: Duration::from_secs(1).min(interval),
            rise: 2,
            fall: 3,
            tls: None,
        }
    }
}

/// Probe one backend once: `Ok(())` when healthy, else why not.
pub async fn probe(addr: &SocketAddress, check: &HealthCheck) -> Result<(), String> {
    let run = async {
        let stream = match addr {
            SocketAddress::Inet(a) => Stream::Tcp(
                tokio::net::TcpStream::connect(a)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            SocketAddress::Unix(p) => Stream::Unix(
                tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(|e| e.to_string())?,
            ),
        };
        let stream = match &check.tls {
            None => stream,
            Some(tls) => {
                static CONNECTOR: OnceLock<TlsConnector> = OnceLock::new();
                let connector = CONNECTOR.get_or_init(TlsConnector::default);
                // HTTP probes speak HTTP/1.1, whatever the group negotiates for traffic.
                let mut settings = tls.settings.clone();
                settings.alpn = Alpn::H1;
                let name = match (tls.sni.is_empty(), addr) {
                    (true, SocketAddress::Inet(a)) => a.ip().to_string(),
                    _ => tls.sni.clone(),
                };
                connector
                    .connect(stream, &name, &settings)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        let HealthProbe::Http {
            path,
            host,
            expect,
            body,
        } = &check.probe
        else {
            return Ok(());
        };
        let mut io = ConnIo::new(stream);
        let host = host.clone().unwrap_or_else(|| match addr {
            SocketAddress::Inet(a) => a.to_string(),
            SocketAddress::Unix(_) => "localhost".to_string(),
        });
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: proxy-runtime-health-check\r\nConnection: close\r\n\r\n"
        );
        io.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let limits = HeadLimits::default();
        loop {
            match crate::protocols::h1::head::parse_response(&mut io.rbuf, &limits, &Method::GET) {
                Ok(Some(resp)) => {
                    let status = resp.header.status.as_u16();
                    let ok = match expect {
                        Some(e) => status == *e,
                        None => (200..400).contains(&status),
                    };
                    if !ok {
                        return Err(format!("status {status}"));
                    }
                    return match body {
                        None => Ok(()),
                        Some(want) => body_contains(&mut io, resp.framing, want).await,
                    };
                }
                Ok(None) => {}
                Err(e) => return Err(e.reason.to_string()),
            }
            if io.fill(None).await.map_err(|e| e.to_string())? == 0 {
                return Err("closed before answering".to_string());
            }
        }
    };
    match timeout(check.timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}

/// The most body bytes a probe reads when it looks for a text.
const PROBE_BODY_LIMIT: usize = 64 * 1024;

/// Read the response body (up to [`PROBE_BODY_LIMIT`]) and look for `want` in it.
async fn body_contains(io: &mut ConnIo, framing: BodyFraming, want: &str) -> Result<(), String> {
    let mut decoder = BodyDecoder::new(framing);
    let mut body = Vec::new();
    let mut eof = false;
    loop {
        match decoder.decode(&mut io.rbuf, eof) {
            Ok(Some(BodyEvent::Data(d))) => {
                let room = PROBE_BODY_LIMIT - body.len();
                body.extend_from_slice(&d[..d.len().min(room)]);
                if body.len() >= PROBE_BODY_LIMIT {
                    break;
                }
            }
            Ok(Some(BodyEvent::Trailers(_))) => {}
            Ok(Some(BodyEvent::End)) => break,
            Ok(None) => eof = io.fill(None).await.map_err(|e| e.to_string())? == 0,
            Err(e) => return Err(format!("body: {e:?}")),
        }
    }
    let found = body
        .windows(want.len().max(1))
        .any(|w| w == want.as_bytes());
    if found || want.is_empty() {
        Ok(())
    } else {
        Err(format!("body does not contain {want:?}"))
    }
}

/// Probe every backend of `lb` forever (until the balancer is dropped everywhere
/// else), updating its health. `group` names it in logs.
pub async fn run_health_checks(lb: Arc<LoadBalancer>, check: HealthCheck, group: String) {
    let group_lb = Arc::downgrade(&lb);
    drop(lb);
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(lb) = group_lb.upgrade() else {
            return; // nobody selects from this group any more
        };
        // The set current now: discovery may change it between rounds; each backend's
        // rise/fall counters live with its state, so they survive the change.
        let targets = lb.probe_targets();
        let probes = targets.iter().map(|(b, _)| probe(&b.address, &check));
        let results = futures_join_all(probes).await;
        for ((backend, target), result) in targets.iter().zip(results) {
            let addr = &backend.address;
            match (
                target.record(result.is_ok(), check.rise, check.fall),
                result,
            ) {
                (Some(true), _) => {
                    tracing::warn!(upstream = %group, backend = %addr, "backend is healthy again");
                    HEALTH_CHANGES.fetch_add(1, Ordering::Relaxed);
                }
                (Some(false), Err(why)) => {
                    tracing::warn!(upstream = %group, backend = %addr, "backend marked down: {why}");
                    HEALTH_CHANGES.fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
    }
}

/// Health state changes (up → down and down → up) seen by active checks since start.
pub static HEALTH_CHANGES: AtomicU64 = AtomicU64::new(0);

/// Run futures concurrently and collect their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(set.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn tcp_and_http_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = SocketAddress::Inet(listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let ok = buf[..n].starts_with(b"GET /healthz ");
                    let resp: &[u8] = if ok {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                    };
                    let _ = s.write_all(resp).await;
                });
            }
        });
        let every = Duration::from_secs(1);
        assert_eq!(
            probe(&addr, &HealthCheck::new(HealthProbe::Tcp, every)).await,
            Ok(())
        );
        let http = |path: &str| {
            HealthCheck::new(
                HealthProbe::Http {
                    path: path.into(),
                    host: None,
                    expect: None,
                    body: None,
                },
                every,
            )
        };
        assert_eq!(probe(&addr, &http("/healthz")).await, Ok(()));
        assert_eq!(
            probe(&addr, &http("/other")).await,
            Err("status 503".to_string())
        );
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = SocketAddress::Inet(closed.local_addr().unwrap());
        drop(closed);
        assert!(
            probe(&closed_addr, &HealthCheck::new(HealthProbe::Tcp, every))
                .await
                .is_err()
        );
    }

    /// A TLS origin (certificate for `localhost`) answering `GET /` with `body`.
    async fn tls_origin(body: &'static str) -> (SocketAddress, std::path::PathBuf) {
        use crate::protocols::tls::{TlsAcceptor, TlsServerSettings};
        let dir =
            std::env::temp_dir().join(format!("health-tls-{}-{}", std::process::id(), body.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let acceptor =
            Arc::new(TlsAcceptor::new(TlsServerSettings::new(&cert_path, &key_path)).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = SocketAddress::Inet(listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(Stream::Tcp(s)).await else {
                        return;
                    };
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        (addr, cert_path)
    }

    #[tokio::test]
    async fn tls_probes_handshake_and_match_the_body() {
        let (addr, ca) = tls_origin("status: ok").await;
        let tls = |sni: &str| TlsProbe {
            sni: sni.into(),
            settings: UpstreamTls {
                verify_cert: true,
                verify_hostname: true,
                ca_file: Some(ca.clone()),
                client_cert: None,
                alpn: Alpn::H1,
            },
        };
        let check = |body: Option<&str>, sni: &str| {
            let mut c = HealthCheck::new(
                HealthProbe::Http {
                    path: "/".into(),
                    host: None,
                    expect: Some(200),
                    body: body.map(str::to_string),
                },
                Duration::from_secs(1),
            );
            c.tls = Some(tls(sni));
            c
        };
        assert_eq!(probe(&addr, &check(None, "localhost")).await, Ok(()));
        assert_eq!(probe(&addr, &check(Some("ok"), "localhost")).await, Ok(()));
        let missing = probe(&addr, &check(Some("ready"), "localhost")).await;
        assert_eq!(missing, Err("body does not contain \"ready\"".to_string()));
        // A certificate that does not match the name: the handshake fails, so down.
        assert!(probe(&addr, &check(None, "other.example")).await.is_err());
        // A TCP probe of a TLS group is a handshake: fine here, failed on a plain server.
        let mut tcp = HealthCheck::new(HealthProbe::Tcp, Duration::from_secs(1));
        tcp.tls = Some(tls("localhost"));
        assert_eq!(probe(&addr, &tcp).await, Ok(()));
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_addr = SocketAddress::Inet(plain.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = plain.accept().await.unwrap();
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        assert!(probe(&plain_addr, &tcp).await.is_err());
    }

    #[tokio::test]
    async fn failing_backends_go_down_and_come_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let _ = listener.accept().await;
            }
        });
        let dead = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let lb = Arc::new(LoadBalancer::round_robin([live, dead]).unwrap());
        let mut check = HealthCheck::new(HealthProbe::Tcp, Duration::from_millis(10));
        check.fall = 2;
        tokio::spawn(run_health_checks(lb.clone(), check, "test".into()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while lb.is_healthy(1) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the dead backend was never marked down"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(lb.is_healthy(0));
        for _ in 0..5 {
            assert_eq!(lb.select().unwrap().address, SocketAddress::Inet(live));
        }
    }
}

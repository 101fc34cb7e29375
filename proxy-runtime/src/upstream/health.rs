//! Active health checks: a background task probes every backend of a group on an
//! interval and marks it down after `fall` consecutive failures, up again after `rise`
//! consecutive successes. State changes are logged. Selection skips backends that are
//! down (see [`LoadBalancer::select`]).

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use super::LoadBalancer;
use crate::protocols::h1::HeadLimits;
use crate::protocols::h1::io::ConnIo;
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
    },
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
        let HealthProbe::Http { path, host, expect } = &check.probe else {
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
                    return if ok {
                        Ok(())
                    } else {
                        Err(format!("status {status}"))
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

/// Probe every backend of `lb` forever (until the balancer is dropped elsewhere and
/// only this task holds it), updating its health. `group` names it in logs.
pub async fn run_health_checks(lb: Arc<LoadBalancer>, check: HealthCheck, group: String) {
    let n = lb.backends().len();
    let mut successes = vec![0u32; n];
    let mut failures = vec![0u32; n];
    let mut ticker = tokio::time::interval(check.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if Arc::strong_count(&lb) == 1 {
            return; // nobody selects from this group any more
        }
        let probes = lb.backends().iter().map(|b| probe(&b.address, &check));
        let results = futures_join_all(probes).await;
        for (i, result) in results.into_iter().enumerate() {
            let addr = &lb.backends()[i].address;
            let up = lb.is_healthy(i);
            match result {
                Ok(()) => {
                    failures[i] = 0;
                    successes[i] = successes[i].saturating_add(1);
                    if !up && successes[i] >= check.rise {
                        lb.set_healthy(i, true);
                        tracing::warn!(upstream = %group, backend = %addr, "backend is healthy again");
                    }
                }
                Err(why) => {
                    successes[i] = 0;
                    failures[i] = failures[i].saturating_add(1);
                    if up && failures[i] >= check.fall {
                        lb.set_healthy(i, false);
                        tracing::warn!(upstream = %group, backend = %addr, "backend marked down: {why}");
                    }
                }
            }
        }
    }
}

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

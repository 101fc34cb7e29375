//! The idle keep-alive client: open many connections, one `GET` on each (a bounded
//! number in flight), keep them all open, let them sit, measure, close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::load::http::{body_complete, get_request, parse_head};

/// What the idle client did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdleOutcome {
    /// Connections that got a `200` and were kept.
    pub opened: usize,
    /// Connections that failed (connect, write, read, status).
    pub failed: usize,
    /// Of `opened`, still open (no EOF, no error) after the idle wait.
    pub still_open: usize,
    /// The first failure, for the log.
    pub first_error: Option<String>,
}

/// Settings of one idle run.
#[derive(Debug, Clone)]
pub struct IdlePlan {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The path of the one `GET` per connection.
    pub path: String,
    /// Connections to open.
    pub conns: usize,
    /// Connections opening (connect + request + response) at once.
    pub in_flight: usize,
    /// How long all connections sit idle before `measure` runs.
    pub idle: Duration,
    /// Upper bound on the whole run (opening included).
    pub limit: Duration,
}

async fn open_one(addr: SocketAddr, request: Arc<Vec<u8>>) -> Result<TcpStream, String> {
    let mut s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .map_err(|_| "connect: timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(&request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 8192];
    let read = async {
        let mut head = None;
        loop {
            let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("closed before the response ended".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
            if head.is_none() {
                head = parse_head(&buf)?;
            }
            if let Some(h) = head {
                if h.status != 200 {
                    return Err(format!("status {}", h.status));
                }
                if body_complete(h.body, &buf[h.len..]) {
                    return Ok(());
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| "response: timed out".to_string())??;
    Ok(s)
}

/// Run the plan on a one-thread runtime (on the calling thread, so on the harness's
/// CPU). `measure` runs after the idle wait, while every connection is still open;
/// the connections are closed when this returns.
pub fn hold_idle<T>(
    plan: &IdlePlan,
    measure: impl FnOnce() -> T,
) -> Result<(IdleOutcome, T), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("idle client runtime: {e}"))?;
    rt.block_on(async {
        let gate = Arc::new(Semaphore::new(plan.in_flight.max(1)));
        let request = Arc::new(get_request(&plan.path));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..plan.conns {
            let gate = gate.clone();
            let request = request.clone();
            let addr = plan.addr;
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                open_one(addr, request).await
            });
        }
        let mut out = IdleOutcome::default();
        let mut streams = Vec::with_capacity(plan.conns);
        let collect = async {
            while let Some(r) = tasks.join_next().await {
                match r.map_err(|e| e.to_string()).and_then(|r| r) {
                    Ok(s) => streams.push(s),
                    Err(e) => {
                        out.failed += 1;
                        out.first_error.get_or_insert(e);
                    }
                }
            }
        };
        if tokio::time::timeout(plan.limit, collect).await.is_err() {
            tasks.abort_all();
            return Err(format!(
                "idle client: {} connections not open after {:?}",
                plan.conns, plan.limit
            ));
        }
        out.opened = streams.len();
        tokio::time::sleep(plan.idle).await;
        let mut probe = [0u8; 1];
        out.still_open = streams
            .iter()
            .filter(|s| {
                matches!(s.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            })
            .count();
        let value = measure();
        drop(streams);
        Ok((out, value))
    })
}

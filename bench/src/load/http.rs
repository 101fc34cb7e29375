//! A minimal HTTP/1.1 client: enough for readiness checks, the origin's `stub_status`,
//! the cache-hit checks and the idle client. Responses must have a `Content-Length` or
//! be chunked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`: ends with the zero-size chunk.
    Chunked,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Bytes of the head, blank line included.
    pub len: usize,
    /// How the body ends.
    pub body: BodyLen,
}

/// Parse a response head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > 64 * 1024 {
            return Err("response head longer than 64 KiB".into());
        }
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut body = None;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            body = Some(BodyLen::Length(n));
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            body = Some(BodyLen::Chunked);
        }
    }
    let body = match body {
        Some(b) => b,
        None if status == 204 || status == 304 => BodyLen::Length(0),
        None => {
            return Err(format!(
                "status {status} without Content-Length or chunked (cannot keep the connection)"
            ));
        }
    };
    Ok(Some(Head {
        status,
        len: end + 4,
        body,
    }))
}

/// Whether `body` (what followed the head so far) is complete; for chunked bodies a
/// simple end check (the last chunk and an empty trailer).
pub fn body_complete(body_len: BodyLen, body: &[u8]) -> bool {
    match body_len {
        BodyLen::Length(n) => body.len() >= n,
        BodyLen::Chunked => body.ends_with(b"0\r\n\r\n"),
    }
}

/// The request line and headers of a keep-alive `GET`.
pub fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: loadbench\r\n\r\n").into_bytes()
}

/// The header fields of a response head (`head`: up to the blank line), in order, names
/// as sent; lines without a colon (the status line) are skipped.
pub fn parse_header_fields(head: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A whole response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked bodies as received, framing included).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One `GET` on a new connection: status and body. Every step is bounded by `timeout`.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    get_response(addr, path, timeout).map(|r| (r.status, r.body))
}

/// One `GET` on a new connection, headers included. The `Host` is `addr` with its port,
/// as `wrk` sends it, so that a cache keyed on the authority stores what `wrk` asks for.
/// Every step is bounded by `timeout`.
pub fn get_response(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: loadbench\r\n\r\n");
    s.write_all(request.as_bytes())
        .map_err(|e| format!("write to {addr}: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    let mut head = None;
    loop {
        if Instant::now() > deadline {
            return Err(format!(
                "GET {path} from {addr}: no full response in {timeout:?}"
            ));
        }
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("GET {path} from {addr}: read: {e}"))?;
        if n == 0 {
            return Err(format!("GET {path} from {addr}: connection closed early"));
        }
        buf.extend_from_slice(&chunk[..n]);
        if head.is_none() {
            head = parse_head(&buf).map_err(|e| format!("GET {path} from {addr}: {e}"))?;
        }
        if let Some(h) = head
            && body_complete(h.body, &buf[h.len..])
        {
            return Ok(Response {
                status: h.status,
                headers: parse_header_fields(&buf[..h.len]),
                body: buf[h.len..].to_vec(),
            });
        }
    }
}

/// The HTTP/2 connection preface and an empty SETTINGS frame (what an h2c client with
/// prior knowledge sends first).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Whether the first bytes of a server's answer are an HTTP/2 SETTINGS frame (type 4,
/// not an ACK, stream 0): what an HTTP/2 server sends first. An HTTP/1 server answers
/// `HTTP/1.1 400 ...` or closes.
pub fn is_h2_settings(first: &[u8]) -> bool {
    first.len() >= 9 && first[3] == 0x04 && first[4] & 0x01 == 0 && first[5..9] == [0, 0, 0, 0]
}

/// Whether `addr` speaks h2c with prior knowledge: send the preface, look at the
/// first frame. Bounded by `timeout`.
pub fn speaks_h2c(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    if s.set_read_timeout(Some(timeout)).is_err() || s.write_all(H2_PREFACE).is_err() {
        return false;
    }
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    while buf.len() < 9 && Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    is_h2_settings(&buf)
}

/// nginx `stub_status` counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StubStatus {
    /// Connections accepted since start.
    pub accepts: u64,
    /// Requests since start.
    pub requests: u64,
}

/// Parse the text of nginx's `stub_status` page.
pub fn parse_stub_status(text: &str) -> Result<StubStatus, String> {
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        if l.trim().starts_with("server accepts handled requests") {
            let nums: Vec<u64> = lines
                .next()
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            if let [accepts, _handled, requests] = nums[..] {
                return Ok(StubStatus { accepts, requests });
            }
        }
    }
    Err(format!("not a stub_status page: {text:?}"))
}

/// Read the origin's `stub_status` (its own connection counts: callers subtract it).
pub fn stub_status(addr: SocketAddr) -> Result<StubStatus, String> {
    let (status, body) = get(addr, "/", Duration::from_secs(5))?;
    if status != 200 {
        return Err(format!("stub_status at {addr}: status {status}"));
    }
    parse_stub_status(&String::from_utf8_lossy(&body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        let h = parse_head(r).expect("ok").expect("complete");
        assert_eq!(h.status, 200);
        assert_eq!(h.body, BodyLen::Length(3));
        assert!(body_complete(h.body, &r[h.len..]));
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n").expect("ok"), None);
        let c = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let h = parse_head(c).expect("ok").expect("complete");
        assert!(body_complete(h.body, &c[h.len..]));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn header_fields() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nx-cache-status: hit\r\nAge:0\r\n\r\n";
        let h = parse_head(r).expect("ok").expect("complete");
        let resp = Response {
            status: h.status,
            headers: parse_header_fields(&r[..h.len]),
            body: Vec::new(),
        };
        assert_eq!(resp.headers.len(), 3);
        assert_eq!(resp.header("X-Cache-Status"), Some("hit"));
        assert_eq!(resp.header("age"), Some("0"));
        assert_eq!(resp.header("etag"), None);
    }

    #[test]
    fn h2_first_frame() {
        assert!(is_h2_settings(&[
            0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100
        ]));
        assert!(!is_h2_settings(&[0, 0, 0, 4, 1, 0, 0, 0, 0]), "an ACK");
        assert!(!is_h2_settings(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(!is_h2_settings(b""));
    }

    #[test]
    fn stub() {
        let t = "Active connections: 1 \nserver accepts handled requests\n 10 10 12 \nReading: 0 Writing: 1 Waiting: 0 \n";
        assert_eq!(
            parse_stub_status(t).expect("parses"),
            StubStatus {
                accepts: 10,
                requests: 12
            }
        );
    }
}

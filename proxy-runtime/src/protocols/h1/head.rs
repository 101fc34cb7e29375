//! Parsing HTTP/1.x message heads (request and response) with `httparse`, and the
//! framing rules of RFC 9112 §6 that decide how long a body is.
//!
//! The head is parsed straight out of the connection's read buffer; header values and the
//! request target are then sliced out of the same allocation (`Bytes::slice`), so a
//! request head is not copied. Everything the RFC calls faulty framing is rejected here,
//! with the status a client should see: conflicting or malformed `Content-Length`,
//! `Transfer-Encoding` on HTTP/1.0, a last transfer coding that is not `chunked`, both
//! `Content-Length` and `Transfer-Encoding`, obs-fold, control characters, missing or
//! repeated `Host`, oversized heads and request lines.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri, Version, header};

use crate::http::KeyRef;
use crate::http::fields::Fields;
use crate::http::hop;
use crate::http::{RequestHeader, ResponseHeader};

/// Size and count limits for a message head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The largest head (request/status line + headers + blank line), in bytes. Over it: 431.
    pub max_head_bytes: usize,
    /// The most header fields in one head. Over it: 431.
    pub max_headers: usize,
    /// The longest request line, in bytes. Over it: 414.
    pub max_request_line: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: 64 * 1024,
            max_headers: 128,
            max_request_line: 8 * 1024,
        }
    }
}

/// The hard upper bound on `max_headers` (the parser's header slots live on the stack).
pub const MAX_HEADERS_CEILING: usize = 512;

/// How the body of a message is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    Empty,
    /// Exactly this many bytes (`Content-Length`).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

impl BodyFraming {
    /// Whether there is no body.
    pub fn is_empty(&self) -> bool {
        matches!(self, BodyFraming::Empty | BodyFraming::Length(0))
    }
}

/// A head that cannot be accepted, and the status that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadError {
    /// The HTTP status to answer with (400, 413, 414, 417, 431, 501, 505; 502 for
    /// responses from an origin).
    pub status: u16,
    /// What was wrong, for the log line and the short response body.
    pub reason: &'static str,
}

fn bad(status: u16, reason: &'static str) -> HeadError {
    HeadError { status, reason }
}

/// A parsed request head with what the connection needs to know about it.
#[derive(Debug)]
pub struct ParsedRequest {
    /// The head itself.
    pub header: RequestHeader,
    /// How the request body is delimited.
    pub framing: BodyFraming,
    /// Whether the client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// A protocol upgrade (e.g. WebSocket) was requested: `Upgrade` + `Connection: upgrade`,
    /// and not `h2c`, which is removed instead.
    pub upgrade: bool,
}

/// A parsed response head with what the connection needs to know about it.
#[derive(Debug)]
pub struct ParsedResponse {
    /// The head itself.
    pub header: ResponseHeader,
    /// How the response body is delimited.
    pub framing: BodyFraming,
    /// Whether the origin allows the connection to be reused after this response.
    pub keep_alive: bool,
}

/// Where one header's name and value sit inside the buffer that was parsed.
#[derive(Clone, Copy, Default)]
struct RawHeader {
    name_at: (u32, u32),
    value_at: (u32, u32),
}

/// Header positions of one head: on the stack for the usual few dozen headers, on the
/// heap beyond.
struct RawHeaders {
    inline: [RawHeader; INLINE_HEADERS],
    len: usize,
    spill: Vec<RawHeader>,
}

/// Headers whose positions are kept without allocating.
const INLINE_HEADERS: usize = 48;

impl RawHeaders {
    fn new() -> Self {
        RawHeaders {
            inline: [RawHeader::default(); INLINE_HEADERS],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, h: RawHeader) {
        if self.len < INLINE_HEADERS {
            self.inline[self.len] = h;
        } else {
            self.spill.push(h);
        }
        self.len += 1;
    }

    fn iter(&self) -> impl Iterator<Item = &RawHeader> {
        self.inline[..self.len.min(INLINE_HEADERS)]
            .iter()
            .chain(self.spill.iter())
    }
}

/// Where `part`, a slice the parser returned, sits in `base`. An empty part has no
/// position to trust (httparse returns a static `""` for a missing reason phrase) and
/// gets the empty range at 0; so does, defensively, anything outside `base`.
fn offset_in(base: &[u8], part: &[u8]) -> (usize, usize) {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if !part.is_empty() && end <= base.len() => (start, end),
        _ => (0, 0),
    }
}

fn offset32(base: &[u8], part: &[u8]) -> (u32, u32) {
    // Heads are bounded far below 4 GiB (`max_head_bytes`).
    let (a, b) = offset_in(base, part);
    (a as u32, b as u32)
}

/// Trim optional whitespace (SP / HTAB) from both ends of a header value.
fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Record where each header sits in `base` into `out` (filled in place: the positions
/// are most of a kilobyte, which a return by value would copy).
fn collect_headers(base: &[u8], headers: &[httparse::Header<'_>], out: &mut RawHeaders) {
    for h in headers {
        out.push(RawHeader {
            name_at: offset32(base, h.name.as_bytes()),
            value_at: offset32(base, trim_ows(h.value)),
        });
    }
}

/// The names most heads carry, in the two spellings agents send (title case, and the
/// lower case of curl-like clients and HTTP/2-minded stacks), matched as written.
/// `HeaderName::from_bytes` lower-cases every name into a scratch buffer before its
/// table lookup; this skips both for the usual names.
fn common_name(bytes: &[u8]) -> Option<HeaderName> {
    use http::header;
    let name = match bytes {
        b"Host" | b"host" => header::HOST,
        b"Date" | b"date" => header::DATE,
        b"ETag" | b"etag" => header::ETAG,
        b"Vary" | b"vary" => header::VARY,
        b"Accept" | b"accept" => header::ACCEPT,
        b"Server" | b"server" => header::SERVER,
        b"Cookie" | b"cookie" => header::COOKIE,
        b"Expires" | b"expires" => header::EXPIRES,
        b"Referer" | b"referer" => header::REFERER,
        b"Connection" | b"connection" => header::CONNECTION,
        b"User-Agent" | b"user-agent" => header::USER_AGENT,
        b"Set-Cookie" | b"set-cookie" => header::SET_COOKIE,
        b"Content-Type" | b"content-type" => header::CONTENT_TYPE,
        b"Last-Modified" | b"last-modified" => header::LAST_MODIFIED,
        b"Accept-Ranges" | b"accept-ranges" => header::ACCEPT_RANGES,
        b"Cache-Control" | b"cache-control" => header::CACHE_CONTROL,
        b"Content-Length" | b"content-length" => header::CONTENT_LENGTH,
        b"Accept-Encoding" | b"accept-encoding" => header::ACCEPT_ENCODING,
        b"Accept-Language" | b"accept-language" => header::ACCEPT_LANGUAGE,
        b"Content-Encoding" | b"content-encoding" => header::CONTENT_ENCODING,
        b"Transfer-Encoding" | b"transfer-encoding" => header::TRANSFER_ENCODING,
        _ => return None,
    };
    Some(name)
}

fn fill_headers(
    head: &Bytes,
    raw: &RawHeaders,
    map: &mut Fields,
    status: u16,
) -> Result<(), HeadError> {
    // Names are spelled by position in the head: one shared count for all of them.
    map.set_head(head.clone());
    for h in raw.iter() {
        let (n0, n1) = (h.name_at.0 as usize, h.name_at.1 as usize);
        let (v0, v1) = (h.value_at.0 as usize, h.value_at.1 as usize);
        let spelled = &head[n0..n1];
        let (name, hop_bit) = match common_name(spelled) {
            // Of the common names, only these two are hop-by-hop (a tag comparison each).
            Some(name) if name == header::CONNECTION => (name, hop::CONNECTION),
            Some(name) if name == header::TRANSFER_ENCODING => (name, hop::TRANSFER_ENCODING),
            Some(name) => (name, 0),
            None => {
                let name = HeaderName::from_bytes(spelled)
                    .map_err(|_| bad(status, "invalid header name"))?;
                let bit = hop::bit(&name);
                (name, bit)
            }
        };
        let value = HeaderValue::from_maybe_shared(head.slice(v0..v1))
            .map_err(|_| bad(status, "invalid header value"))?;
        map.append_parsed(name, h.name_at, value, hop_bit);
    }
    Ok(())
}

/// Parse a request head from the front of `buf`.
///
/// `Ok(None)`: the head is not complete yet (read more). `Ok(Some(_))`: the head was
/// removed from `buf`; what follows it (body, pipelined requests) stays. `Err`: reject
/// with the given status and close the connection.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: &HeadLimits,
) -> Result<Option<ParsedRequest>, HeadError> {
    let max_headers = limits.max_headers.min(MAX_HEADERS_CEILING);
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
    let mut req = httparse::Request::new(&mut []);
    let parsed = req.parse_with_uninit_headers(&buf[..], &mut slots[..max_headers]);
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            check_partial_request(buf, limits)?;
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(bad(431, "too many header fields"));
        }
        Err(httparse::Error::Version) => {
            return Err(if looks_like_other_http_version(buf) {
                bad(505, "HTTP version not supported")
            } else {
                bad(400, "malformed request line")
            });
        }
        Err(e) => return Err(bad(400, request_error_reason(e))),
    };
    if head_len > limits.max_head_bytes {
        return Err(bad(431, "request head too large"));
    }
    let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(bad(400, "malformed request line"));
    };
    if request_line_len(buf) > limits.max_request_line {
        return Err(bad(414, "request line too long"));
    }
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| bad(400, "invalid method"))?;
    let path_at = offset_in(buf, path.as_bytes());
    let mut raw = RawHeaders::new();
    collect_headers(buf, req.headers, &mut raw);

    let head = buf.split_to(head_len).freeze();
    let target = head.slice(path_at.0..path_at.1);
    let uri = parse_target(&method, target)?;
    let mut header = RequestHeader::from_parts(method, uri, version);
    header.fields_mut().reserve(raw.len.saturating_sub(8));
    fill_headers(&head, &raw, header.fields_mut(), 400)?;
    finish_request(header).map(Some)
}

/// While the head is incomplete: is it already too large?
fn check_partial_request(buf: &[u8], limits: &HeadLimits) -> Result<(), HeadError> {
    let line_end = memchr_newline(buf);
    match line_end {
        None if buf.len() > limits.max_request_line => {
            return Err(bad(414, "request line too long"));
        }
        Some(n) if n > limits.max_request_line => {
            return Err(bad(414, "request line too long"));
        }
        _ => {}
    }
    if buf.len() > limits.max_head_bytes {
        return Err(bad(431, "request head too large"));
    }
    Ok(())
}

/// The length of the request line, its CRLF (or bare LF) not counted, once its end has
/// arrived.
fn memchr_newline(buf: &[u8]) -> Option<usize> {
    // Skip the empty lines a client may send before the request line (RFC 9112 §2.2).
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let line = &buf[start..];
    let n = line.iter().position(|&b| b == b'\n')?;
    Some(if n > 0 && line[n - 1] == b'\r' {
        n - 1
    } else {
        n
    })
}

fn request_line_len(buf: &[u8]) -> usize {
    memchr_newline(buf).unwrap_or(buf.len())
}

/// `GET / HTTP/2.0`, `HTTP/3.0`, `HTTP/1.2`: a well-formed version we do not speak.
fn looks_like_other_http_version(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let rest = &buf[start..];
    let line = &rest[..memchr_newline(rest).unwrap_or(rest.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // method SP target SP version: a line with more spaces (`GET /a b HTTP/1.1`) is a
    // malformed target, not another version.
    if line.iter().filter(|&&b| b == b' ').count() != 2 {
        return false;
    }
    match line.rsplit(|&b| b == b' ').next() {
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor]) => {
            major.is_ascii_digit() && minor.is_ascii_digit()
        }
        Some([b'H', b'T', b'T', b'P', b'/', major]) => major.is_ascii_digit(),
        _ => false,
    }
}

fn request_error_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in request line",
        httparse::Error::TooManyHeaders => "too many header fields",
        httparse::Error::Version => "invalid version",
    }
}

/// Check the request target's form against the method (RFC 9112 §3.2).
fn parse_target(method: &Method, target: Bytes) -> Result<Uri, HeadError> {
    if target.contains(&b'#') {
        return Err(bad(400, "fragment in request target"));
    }
    let first = target.first().copied();
    if *method == Method::CONNECT {
        // authority-form only; CONNECT tunnels are not offered by a reverse proxy.
        return Err(bad(405, "CONNECT is not supported"));
    }
    match first {
        Some(b'/') => {}
        Some(b'*') if target.len() == 1 && *method == Method::OPTIONS => {}
        Some(b'h' | b'H') => {} // absolute-form, validated below
        _ => return Err(bad(400, "invalid request target")),
    }
    let uri = Uri::from_maybe_shared(target).map_err(|_| bad(400, "invalid request target"))?;
    if uri.authority().is_some() {
        match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => {}
            _ => return Err(bad(400, "unsupported scheme in request target")),
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(bad(400, "userinfo in request target"));
        }
        // It becomes the Host the origin sees: the same rules as a Host header.
        if !uri
            .authority()
            .is_some_and(|a| valid_authority(a.as_str().as_bytes()))
        {
            return Err(bad(400, "invalid authority in request target"));
        }
    } else if uri.scheme().is_some() {
        return Err(bad(400, "invalid request target"));
    }
    Ok(uri)
}

/// Apply the framing and connection rules to a freshly parsed request head.
fn finish_request(mut header: RequestHeader) -> Result<ParsedRequest, HeadError> {
    let version = header.version;
    let headers = header.fields();
    let present = Present::scan(headers);

    // Host: exactly one on HTTP/1.1; must be a valid authority when present.
    let host = {
        let mut hosts = headers.get_all(KeyRef::Name(&header::HOST));
        let host = hosts.next();
        if hosts.next().is_some() {
            return Err(bad(400, "more than one Host header"));
        }
        host
    };
    match host {
        None if version == Version::HTTP_11 => return Err(bad(400, "missing Host header")),
        None => {}
        Some(h) => {
            let valid = !h.is_empty() && valid_authority(h.as_bytes());
            // An empty Host is allowed only when the target has no authority.
            let empty_allowed = h.is_empty() && header.uri.authority().is_none();
            if !(valid || empty_allowed) {
                return Err(bad(400, "invalid Host header"));
            }
        }
    }

    let te = if present.te {
        transfer_coding(headers, version, true)?
    } else {
        None
    };
    let cl = if present.cl {
        content_length(headers, 400)?
    } else {
        None
    };
    let framing = match (te, cl) {
        (Some(_), Some(_)) => {
            return Err(bad(400, "both Content-Length and Transfer-Encoding"));
        }
        (Some(TransferCoding::Chunked), None) => BodyFraming::Chunked,
        (Some(TransferCoding::NotChunked), None) => {
            return Err(bad(400, "last transfer coding is not chunked"));
        }
        (None, Some(0)) | (None, None) => BodyFraming::Empty,
        (None, Some(n)) => BodyFraming::Length(n),
    };

    let conn = if present.connection {
        ConnectionTokens::of(headers.get_all(KeyRef::Name(&header::CONNECTION)))
    } else {
        ConnectionTokens::default()
    };
    let keep_alive = match version {
        Version::HTTP_11 => !conn.close,
        _ => conn.keep_alive && !conn.close,
    };

    let expect = if present.expect {
        headers.get(KeyRef::Name(&header::EXPECT))
    } else {
        None
    };
    let expect_continue = match expect {
        None => false,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"100-continue") => {
            version == Version::HTTP_11
        }
        Some(_) => return Err(bad(417, "unsupported expectation")),
    };

    let mut upgrade = false;
    let up = if present.upgrade {
        headers.get(KeyRef::Name(&header::UPGRADE))
    } else {
        None
    };
    if let Some(up) = up {
        let h2c = up
            .as_bytes()
            .split(|&b| b == b',')
            .any(|p| trim_ows(p).eq_ignore_ascii_case(b"h2c"));
        if h2c {
            // Never tunnel h2c: serve the request as plain HTTP/1.1 (RFC 9113 §3.1).
            header.remove_header(header::UPGRADE);
            header.remove_header("http2-settings");
        } else if conn.upgrade && version == Version::HTTP_11 {
            upgrade = true;
        }
    }

    // absolute-form: the target's authority replaces Host (RFC 9112 §3.2.2).
    if let Some(auth) = header.uri.authority().map(|a| a.as_str().to_owned()) {
        header
            .insert_header(header::HOST, auth)
            .map_err(|_| bad(400, "invalid request target"))?;
    }

    Ok(ParsedRequest {
        header,
        framing,
        keep_alive,
        expect_continue,
        upgrade,
    })
}

/// Which of the headers that decide framing are present: one pass of cheap name
/// comparisons (standard names compare as enum tags), so absent ones cost no lookup.
#[derive(Default, Clone, Copy)]
struct Present {
    te: bool,
    cl: bool,
    connection: bool,
    expect: bool,
    upgrade: bool,
}

impl Present {
    fn scan(headers: &Fields) -> Self {
        let mut p = Present::default();
        for name in headers.names() {
            if *name == header::TRANSFER_ENCODING {
                p.te = true;
            } else if *name == header::CONTENT_LENGTH {
                p.cl = true;
            } else if *name == header::CONNECTION {
                p.connection = true;
            } else if *name == header::EXPECT {
                p.expect = true;
            } else if *name == header::UPGRADE {
                p.upgrade = true;
            }
        }
        p
    }
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2) without userinfo, checked in place: a
/// valid `Host` value.
pub(crate) fn valid_authority(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(close) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &v[1..close];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &v[close + 1..] {
            [] => (&v[..0], None),
            [b':', port @ ..] => (&v[..0], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    let host_ok = v.first() == Some(&b'[')
        || (!host.is_empty()
            && host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b)));
    let port_ok = match port {
        None => true,
        Some([]) => true, // "host:" is allowed by the grammar (empty port)
        Some(p) => {
            p.len() <= 5
                && p.iter().all(u8::is_ascii_digit)
                && p.iter().fold(0u32, |a, &d| a * 10 + u32::from(d - b'0')) <= 65535
        }
    };
    host_ok && port_ok
}

/// The last transfer coding of a message, as far as framing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferCoding {
    Chunked,
    NotChunked,
}

/// Interpret every `Transfer-Encoding` field of a message.
fn transfer_coding(
    headers: &Fields,
    version: Version,
    is_request: bool,
) -> Result<Option<TransferCoding>, HeadError> {
    let mut values = headers
        .get_all(KeyRef::Name(&header::TRANSFER_ENCODING))
        .peekable();
    if values.peek().is_none() {
        return Ok(None);
    }
    let status = if is_request { 400 } else { 502 };
    if version == Version::HTTP_10 {
        // Faulty framing in either direction (RFC 9112 §6.1).
        return Err(bad(
            status,
            if is_request {
                "Transfer-Encoding in an HTTP/1.0 request"
            } else {
                "Transfer-Encoding in an HTTP/1.0 response"
            },
        ));
    }
    let mut chunked_seen = 0;
    let mut last_chunked = false;
    let mut unknown = false;
    let mut any = false;
    for v in values {
        for coding in v.as_bytes().split(|&b| b == b',') {
            let coding = trim_ows(coding);
            if coding.is_empty() {
                continue; // empty list elements are allowed (RFC 9110 §5.6.1)
            }
            any = true;
            // Transfer parameters (";q=...") are not allowed on chunked and are
            // meaningless to us on others.
            let name = coding
                .split(|&b| b == b';')
                .next()
                .map(trim_ows)
                .unwrap_or(b"");
            if !name.iter().all(|&b| is_tchar(b)) || name.is_empty() {
                return Err(bad(status, "invalid Transfer-Encoding"));
            }
            last_chunked = name.eq_ignore_ascii_case(b"chunked");
            if last_chunked {
                if name.len() != coding.len() {
                    return Err(bad(status, "parameters on chunked coding"));
                }
                chunked_seen += 1;
            } else {
                unknown = true;
            }
        }
    }
    if !any {
        return Err(bad(status, "empty Transfer-Encoding"));
    }
    if chunked_seen > 1 {
        return Err(bad(status, "chunked applied more than once"));
    }
    if unknown && !is_request {
        // Transfer-Encoding is not forwarded and gzip & co. are not decoded here:
        // relaying the coded bytes as the body would corrupt it.
        return Err(bad(502, "unsupported transfer coding in response"));
    }
    if !last_chunked {
        return Ok(Some(TransferCoding::NotChunked));
    }
    if unknown && is_request {
        // gzip/deflate/... under chunked: valid HTTP, but not a coding we relay.
        return Err(bad(501, "unsupported transfer coding"));
    }
    Ok(Some(TransferCoding::Chunked))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parse every `Content-Length` field: one value (repeated identical values are folded).
fn content_length(headers: &Fields, status: u16) -> Result<Option<u64>, HeadError> {
    let mut found: Option<u64> = None;
    for v in headers.get_all(KeyRef::Name(&header::CONTENT_LENGTH)) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let part = trim_ows(part);
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err(bad(status, "invalid Content-Length"));
            }
            let n = part
                .iter()
                .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
            match found {
                Some(prev) if prev != n => {
                    return Err(bad(status, "conflicting Content-Length values"));
                }
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// The tokens of the `Connection` header(s) that matter to us.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnectionTokens {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
}

impl ConnectionTokens {
    /// The tokens of every `Connection` value in `values`.
    pub(crate) fn of<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Self {
        let mut t = ConnectionTokens::default();
        for v in values {
            for token in v.as_bytes().split(|&b| b == b',') {
                let token = trim_ows(token);
                if token.eq_ignore_ascii_case(b"close") {
                    t.close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    t.keep_alive = true;
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    t.upgrade = true;
                }
            }
        }
        t
    }
}

/// Parse a response head from the front of `buf` (an origin's answer to a request with
/// method `method`).
///
/// Errors carry status 502: a broken origin response becomes a Bad Gateway.
pub fn parse_response(
    buf: &mut BytesMut,
    limits: &HeadLimits,
    method: &Method,
) -> Result<Option<ParsedResponse>, HeadError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let max_headers = limits.max_headers.min(MAX_HEADERS_CEILING);
    // Uninitialized slots, as for requests: nothing is written before the parser fills
    // a slot, so the limit's size costs nothing on the usual few-header response.
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CEILING];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        &buf[..],
        &mut slots[..max_headers],
    );
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_head_bytes {
                return Err(bad(502, "response head too large"));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(bad(502, "too many header fields in response"));
        }
        Err(_) => return Err(bad(502, "malformed response head")),
    };
    if head_len > limits.max_head_bytes {
        return Err(bad(502, "response head too large"));
    }
    let (Some(code), Some(minor)) = (resp.code, resp.version) else {
        return Err(bad(502, "malformed status line"));
    };
    let status = StatusCode::from_u16(code).map_err(|_| bad(502, "invalid status code"))?;
    // No reason phrase (`HTTP/1.1 200`) is allowed; the client then gets the usual one.
    let reason_at = resp
        .reason
        .filter(|r| !r.is_empty())
        .map(|r| offset_in(buf, r.as_bytes()));
    let mut raw = RawHeaders::new();
    collect_headers(buf, resp.headers, &mut raw);
    // The head gets its own small allocation rather than a share of the read buffer:
    // the response header outlives the upstream connection's use of that buffer (it is
    // still held while the client is answered), and a shared buffer could not go back
    // to the buffer pool when the connection returns to the connection pool.
    let head = copy_head(&buf[..head_len]);
    buf.advance(head_len);
    // Room for two more fields: a proxy commonly adds some (`Date` when the origin
    // sent none, a phase's own), and a full list would be copied to grow.
    let mut header = ResponseHeader::new(status, raw.len + 2);
    header.version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    if let Some((a, b)) = reason_at {
        let reason = head.slice(a..b);
        if reason.as_ref() != status.canonical_reason().unwrap_or("").as_bytes() {
            header.set_reason(reason);
        }
    }
    fill_headers(&head, &raw, header.fields_mut(), 502)?;
    finish_response(header, method).map(Some)
}

/// A response head's own copy, in one allocation that its slices (header values,
/// spellings) share. `Bytes::copy_from_slice` would make a second allocation, for the
/// shared count, at the first slice.
fn copy_head(head: &[u8]) -> Bytes {
    match head.len() {
        0..=256 => inline_copy::<256>(head),
        257..=512 => inline_copy::<512>(head),
        513..=1024 => inline_copy::<1024>(head),
        _ => Bytes::copy_from_slice(head),
    }
}

/// Up to `N` bytes stored inline, as the owner of a `Bytes`.
struct InlineBytes<const N: usize> {
    len: usize,
    bytes: [u8; N],
}

impl<const N: usize> AsRef<[u8]> for InlineBytes<N> {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn inline_copy<const N: usize>(data: &[u8]) -> Bytes {
    let mut bytes = [0u8; N];
    bytes[..data.len()].copy_from_slice(data);
    Bytes::from_owner(InlineBytes {
        len: data.len(),
        bytes,
    })
}

/// Decide the body framing of a response (RFC 9112 §6.3).
fn finish_response(
    mut header: ResponseHeader,
    method: &Method,
) -> Result<ParsedResponse, HeadError> {
    let headers = header.fields();
    let present = Present::scan(headers);
    let conn = if present.connection {
        ConnectionTokens::of(headers.get_all(KeyRef::Name(&header::CONNECTION)))
    } else {
        ConnectionTokens::default()
    };
    let mut keep_alive = match header.version {
        Version::HTTP_11 => !conn.close,
        _ => conn.keep_alive && !conn.close,
    };
    let status = header.status.as_u16();
    let no_body =
        *method == Method::HEAD || (100..200).contains(&status) || status == 204 || status == 304;
    let te = if present.te {
        match transfer_coding(headers, header.version, false) {
            Ok(te) => te,
            // Without a body, the transfer coding frames nothing.
            Err(_) if no_body => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let cl = if present.cl {
        content_length(headers, 502)
    } else {
        Ok(None)
    };
    let framing = if no_body {
        BodyFraming::Empty
    } else {
        match te {
            Some(TransferCoding::Chunked) if header.version == Version::HTTP_11 => {
                if cl.as_ref().is_ok_and(|c| c.is_some()) || cl.is_err() {
                    // TE overrides CL, but the sender is suspect: do not reuse.
                    keep_alive = false;
                }
                BodyFraming::Chunked
            }
            Some(_) => {
                keep_alive = false;
                BodyFraming::UntilClose
            }
            None => match cl? {
                Some(n) => BodyFraming::Length(n),
                None => {
                    keep_alive = false;
                    BodyFraming::UntilClose
                }
            },
        }
    };
    let framing = if framing == BodyFraming::Length(0) {
        BodyFraming::Empty
    } else {
        framing
    };
    if te.is_some() && !no_body {
        // Transfer-Encoding overrides Content-Length, and the received Content-Length
        // must be removed before the message is forwarded (RFC 9112 §6.3).
        header.remove_header(header::CONTENT_LENGTH);
    }
    Ok(ParsedResponse {
        header,
        framing,
        keep_alive,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_copies_hold_exactly_the_head() {
        for len in [0, 1, 255, 256, 257, 512, 513, 1024, 1025, 5000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let copy = copy_head(&data);
            assert_eq!(&copy[..], &data[..], "{len}");
            if len > 10 {
                assert_eq!(&copy.slice(3..10)[..], &data[3..10]);
            }
        }
    }

    #[test]
    fn common_names_are_the_names_from_bytes_would_give() {
        let spellings = [
            "Host",
            "Date",
            "ETag",
            "Vary",
            "Accept",
            "Server",
            "Cookie",
            "Expires",
            "Referer",
            "Connection",
            "User-Agent",
            "Set-Cookie",
            "Content-Type",
            "Last-Modified",
            "Accept-Ranges",
            "Cache-Control",
            "Content-Length",
            "Accept-Encoding",
            "Accept-Language",
            "Content-Encoding",
            "Transfer-Encoding",
        ];
        for title in spellings {
            let lower = title.to_ascii_lowercase();
            for spelled in [title, lower.as_str()] {
                let expected = HeaderName::from_bytes(spelled.as_bytes()).unwrap();
                assert_eq!(common_name(spelled.as_bytes()), Some(expected), "{spelled}");
            }
            // Other spellings take the general path (and still parse).
            assert_eq!(common_name(title.to_ascii_uppercase().as_bytes()), None);
        }
        assert_eq!(common_name(b"X-Request-ID"), None);
        assert_eq!(common_name(b""), None);
    }

    fn req(raw: &str) -> Result<Option<ParsedRequest>, HeadError> {
        let mut buf = BytesMut::from(raw);
        parse_request(&mut buf, &HeadLimits::default())
    }

    fn status_of(raw: &str) -> u16 {
        match req(raw) {
            Err(e) => e.status,
            Ok(Some(_)) => 0,
            Ok(None) => 1,
        }
    }

    #[test]
    fn simple_request_is_parsed_and_leaves_the_rest() {
        let mut buf = BytesMut::from("GET /a?b HTTP/1.1\r\nHost: x\r\nX-Case: V\r\n\r\nNEXT");
        let p = parse_request(&mut buf, &HeadLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(p.header.method, Method::GET);
        assert_eq!(p.header.path_and_query(), "/a?b");
        assert_eq!(p.framing, BodyFraming::Empty);
        assert!(p.keep_alive);
        assert_eq!(&buf[..], b"NEXT");
        assert_eq!(p.header.header_str("x-case"), Some("V"));
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        assert_eq!(status_of("GET / HTTP/1.1\r\nHost: x\r\n"), 1);
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            status_of(
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n"),
            0
        );
        assert_eq!(
            status_of("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            400
        );
        assert_eq!(
            status_of("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            501
        );
        assert_eq!(
            status_of(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            ),
            400
        );
        assert_eq!(
            status_of(
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            400
        );
    }

    #[test]
    fn host_rules() {
        assert_eq!(status_of("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(
            status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            400
        );
        assert_eq!(status_of("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
        assert_eq!(status_of("GET / HTTP/1.0\r\n\r\n"), 0);
        for ok in [
            "a.example",
            "a.example:8080",
            "[::1]",
            "[::1]:80",
            "127.0.0.1:1",
            "xn--d1a.example",
        ] {
            assert_eq!(
                status_of(&format!("GET / HTTP/1.1\r\nHost: {ok}\r\n\r\n")),
                0,
                "{ok}"
            );
        }
        for bad in [
            "a@b", "a:99999", "a:8x", "[::1", "[zz]", "[::1]x", ":80", "a/b",
        ] {
            assert_eq!(
                status_of(&format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n")),
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn versions() {
        assert_eq!(status_of("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(status_of("GET / HTTX/1.1\r\nHost: x\r\n\r\n"), 400);
        // A space in the target is a malformed request line, whatever follows it.
        assert_eq!(status_of("GET /sp ace HTTP/1.1\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status_of("GET /sp ace HTTP/2.0\r\nHost: x\r\n\r\n"), 400);
        assert_eq!(status_of("\r\nGET / HTTP/3.0\r\nHost: x\r\n\r\n"), 505);
    }

    #[test]
    fn absolute_form_replaces_host() {
        let p = req("GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(p.header.header_str("host"), Some("a.example"));
        assert_eq!(p.header.path_and_query(), "/x");
    }

    #[test]
    fn h2c_upgrade_is_dropped() {
        let p = req("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!p.upgrade);
        assert!(p.header.header("upgrade").is_none());
        let p =
            req("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(p.upgrade);
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
        assert_eq!(status_of(&long), 414);
        let partial_long = format!("GET /{}", "a".repeat(9000));
        assert_eq!(status_of(&partial_long), 414);
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
            "X-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                .repeat(1100)
        );
        assert_eq!(status_of(&big), 431);
        let many = format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
            "X-A: a\r\n".repeat(200)
        );
        assert_eq!(status_of(&many), 431);
    }

    #[test]
    fn response_framing() {
        let limits = HeadLimits::default();
        let mut b = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
        let r = parse_response(&mut b, &limits, &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing, BodyFraming::Length(3));
        let mut b = BytesMut::from("HTTP/1.1 200 OK\r\n\r\n");
        let r = parse_response(&mut b, &limits, &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing, BodyFraming::UntilClose);
        assert!(!r.keep_alive);
        let mut b = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
        let r = parse_response(&mut b, &limits, &Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing, BodyFraming::Empty);
        let mut b =
            BytesMut::from("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        assert_eq!(
            parse_response(&mut b, &limits, &Method::GET)
                .unwrap_err()
                .status,
            502
        );
        let mut b = BytesMut::from("HTTP/1.1 204 No Content\r\n\r\n");
        let r = parse_response(&mut b, &limits, &Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(r.framing, BodyFraming::Empty);
        assert!(r.keep_alive);
    }
}

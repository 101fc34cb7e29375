//! Request and response heads over the `http` crate's types.
//!
//! [`RequestHeader`] and [`ResponseHeader`] hold the method/URI/status and the header
//! fields in the order they arrived, each with the exact spelling of its name as it was
//! received or inserted (`X-Request-ID` stays `X-Request-ID` on the wire, even though
//! lookups are case-insensitive). They are protocol independent: the HTTP/1 codec parses
//! into them and serializes from them, and the HTTP/2 code converts them to and from the
//! `h2` crate's maps.
//!
//! Headers are read with [`RequestHeader::header`], [`RequestHeader::header_values`] and
//! [`RequestHeader::header_fields`] (a scan of the fields, which is what a proxy's
//! handful of lookups wants), or as an [`http::HeaderMap`] with
//! [`RequestHeader::headers`] (built on first use after a change). They are changed
//! through [`RequestHeader::insert_header`], [`RequestHeader::append_header`] and
//! [`RequestHeader::remove_header`]. [`ResponseHeader`] has the same methods.

pub(crate) mod date;
pub(crate) mod fields;
pub(crate) mod hop;
pub(crate) mod trailers;

use bytes::{BufMut, Bytes, BytesMut};
use fields::Fields;
pub use fields::{HeaderKey, IntoHeaderName, KeyRef};
pub use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};

use crate::error::{Error, ErrorKind, ErrorSource, Result};

/// The header accessors shared by [`RequestHeader`] and [`ResponseHeader`] (both keep
/// their headers in a `headers: Fields` field).
macro_rules! header_methods {
    () => {
        /// The headers as a map (case-insensitive lookups; values of a name grouped
        /// together). The map is built from the fields on first use after a change:
        /// for a few lookups, [`Self::header`] and [`Self::header_values`] cost less.
        pub fn headers(&self) -> &HeaderMap {
            self.headers.map()
        }

        /// The value of the first header called `name` (any case), if any.
        pub fn header(&self, name: impl HeaderKey) -> Option<&HeaderValue> {
            self.headers.get(name.key())
        }

        /// Every value of the headers called `name` (any case), in order.
        pub fn header_values<K: HeaderKey>(&self, name: K) -> impl Iterator<Item = &HeaderValue> {
            self.headers
                .iter()
                .filter(move |(n, _)| name.key().matches(n))
                .map(|(_, v)| v)
        }

        /// Whether a header called `name` (any case) is present.
        pub fn has_header(&self, name: impl HeaderKey) -> bool {
            self.headers.contains(name.key())
        }

        /// Every header field in the order received or added, as (lower-case name,
        /// value); a repeated name appears once per field.
        pub fn header_fields(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
            self.headers.iter()
        }

        /// How many header fields there are.
        pub fn header_count(&self) -> usize {
            self.headers.len()
        }

        /// The value of header `name` as `&str`, if present and visible ASCII.
        pub fn header_str(&self, name: impl HeaderKey) -> Option<&str> {
            self.header(name).and_then(|v| v.to_str().ok())
        }

        /// Set `name` to `value`, replacing every previous value.
        pub fn insert_header(
            &mut self,
            name: impl IntoHeaderName,
            value: impl TryInto<HeaderValue>,
        ) -> Result<()> {
            self.headers.insert(name, value)
        }

        /// Add a value for `name`, keeping existing ones.
        pub fn append_header(
            &mut self,
            name: impl IntoHeaderName,
            value: impl TryInto<HeaderValue>,
        ) -> Result<()> {
            self.headers.append(name, value)
        }

        /// Remove every value of `name`; returns the first one.
        pub fn remove_header(&mut self, name: impl HeaderKey) -> Option<HeaderValue> {
            self.headers.remove(name.key())
        }

        pub(crate) fn fields(&self) -> &Fields {
            &self.headers
        }

        pub(crate) fn fields_mut(&mut self) -> &mut Fields {
            &mut self.headers
        }
    };
}

/// The head of an HTTP request: method, target, version and headers.
#[derive(Debug, Clone)]
pub struct RequestHeader {
    /// The request method.
    pub method: Method,
    /// The request target as received (origin-form `/a?b`, absolute-form, `*`).
    pub uri: Uri,
    /// The protocol version.
    pub version: Version,
    headers: Fields,
}

impl RequestHeader {
    /// A new request head with no headers.
    pub fn build(method: Method, path: &str, version: Version) -> Result<Self> {
        let uri = path.parse::<Uri>().map_err(|e| {
            Error::because(
                ErrorKind::Internal,
                ErrorSource::Internal,
                format!("invalid request target {path:?}"),
                e,
            )
        })?;
        Ok(Self::from_parts(method, uri, version))
    }

    /// A new request head from its parts, with no headers.
    pub fn from_parts(method: Method, uri: Uri, version: Version) -> Self {
        RequestHeader {
            method,
            uri,
            version,
            headers: Fields::with_capacity(8),
        }
    }

    /// A request head from its parts and headers spelled in lower case (an HTTP/2
    /// head), taking the map over.
    pub(crate) fn from_lower_parts(
        method: Method,
        uri: Uri,
        version: Version,
        headers: HeaderMap,
    ) -> Self {
        RequestHeader {
            method,
            uri,
            version,
            headers: Fields::from_lower(headers),
        }
    }

    header_methods!();

    /// Replace the request target (path and query) with `path_and_query`.
    pub fn set_uri(&mut self, uri: Uri) {
        self.uri = uri;
    }

    /// Set the method.
    pub fn set_method(&mut self, method: Method) {
        self.method = method;
    }

    /// The authority the request is for: the URI's authority (absolute-form) or `Host`.
    pub fn authority(&self) -> Option<&str> {
        match self.uri.authority() {
            Some(a) => Some(a.as_str()),
            None => self.header_str(http::header::HOST),
        }
    }

    /// The host the request is for, without a port.
    pub fn host(&self) -> Option<&str> {
        self.authority().map(strip_port)
    }

    /// The path (without query).
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The path and query as sent on an origin-form request line.
    pub fn path_and_query(&self) -> &str {
        self.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    }

    /// Serialize as an HTTP/1.x request head into `out` (request-target in origin-form
    /// unless the URI is `*` or the method is CONNECT).
    pub fn write_h1(&self, out: &mut BytesMut) {
        out.reserve(256 + self.headers.len() * 32);
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        if self.method == Method::CONNECT {
            out.put_slice(self.authority().unwrap_or("").as_bytes());
        } else {
            out.put_slice(self.path_and_query().as_bytes());
        }
        out.put_slice(match self.version {
            Version::HTTP_10 => b" HTTP/1.0\r\n",
            _ => b" HTTP/1.1\r\n",
        });
        self.headers.write_h1(out);
        out.put_slice(b"\r\n");
    }
}

/// The head of an HTTP response: status, version, reason and headers.
#[derive(Debug, Clone)]
pub struct ResponseHeader {
    /// The status code.
    pub status: StatusCode,
    /// The protocol version.
    pub version: Version,
    reason: Option<Bytes>,
    headers: Fields,
}

impl ResponseHeader {
    /// A new response head with `status` and no headers (HTTP/1.1).
    pub fn build(status: impl TryInto<StatusCode>, size_hint: Option<usize>) -> Result<Self> {
        let status = status.try_into().map_err(|_| {
            Error::explain(
                ErrorKind::Internal,
                ErrorSource::Internal,
                "invalid status code",
            )
        })?;
        Ok(Self::new(status, size_hint.unwrap_or(8)))
    }

    /// A new response head with `status` (infallible form of [`ResponseHeader::build`]).
    pub fn new(status: StatusCode, header_capacity: usize) -> Self {
        ResponseHeader {
            status,
            version: Version::HTTP_11,
            reason: None,
            headers: Fields::with_capacity(header_capacity),
        }
    }

    /// Replace every header with `headers`, whose names are spelled in lower case (an
    /// HTTP/2 head): the map is taken over, not copied.
    pub(crate) fn replace_headers_lower(&mut self, headers: HeaderMap) {
        self.headers = Fields::from_lower(headers);
    }

    header_methods!();

    /// Set the status code (the reason phrase is reset to the standard one).
    pub fn set_status(&mut self, status: impl TryInto<StatusCode>) -> Result<()> {
        self.status = status.try_into().map_err(|_| {
            Error::explain(
                ErrorKind::Internal,
                ErrorSource::Internal,
                "invalid status code",
            )
        })?;
        self.reason = None;
        Ok(())
    }

    /// The reason phrase: the one received, else the standard one.
    pub fn reason(&self) -> &[u8] {
        match &self.reason {
            Some(r) => r,
            None => self
                .status
                .canonical_reason()
                .unwrap_or("Unknown")
                .as_bytes(),
        }
    }

    /// Keep a custom reason phrase (as received from an origin).
    pub fn set_reason(&mut self, reason: Bytes) {
        self.reason = Some(reason);
    }

    /// Serialize as an HTTP/1.x status line and headers into `out`.
    pub fn write_h1(&self, out: &mut BytesMut) {
        out.reserve(128 + self.headers.len() * 32);
        out.put_slice(match self.version {
            Version::HTTP_10 => b"HTTP/1.0 ",
            _ => b"HTTP/1.1 ",
        });
        out.put_slice(self.status.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.reason());
        out.put_slice(b"\r\n");
        self.headers.write_h1(out);
        out.put_slice(b"\r\n");
    }
}

/// `host:port` → `host`; `[::1]:80` → `[::1]`.
pub(crate) fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        }
    } else {
        match authority.rfind(':') {
            Some(i) => &authority[..i],
            None => authority,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_case_is_kept_on_the_wire() {
        let mut req = RequestHeader::build(Method::GET, "/a?b=1", Version::HTTP_11).unwrap();
        req.insert_header("Host", "example.com").unwrap();
        req.insert_header("X-Request-ID", "7").unwrap();
        req.append_header("x-multi", "1").unwrap();
        req.append_header("X-Multi", "2").unwrap();
        let mut out = BytesMut::new();
        req.write_h1(&mut out);
        assert_eq!(
            &out[..],
            b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Request-ID: 7\r\nx-multi: 1\r\nX-Multi: 2\r\n\r\n"
        );
        assert_eq!(req.header_str("x-request-id"), Some("7"));
    }

    #[test]
    fn insert_replaces_and_remove_keeps_maps_in_step() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("A", "1").unwrap();
        resp.append_header("B", "2").unwrap();
        resp.append_header("a", "3").unwrap();
        resp.insert_header("A", "4").unwrap();
        resp.remove_header("b");
        resp.insert_header("C", "5").unwrap();
        let mut out = BytesMut::new();
        resp.write_h1(&mut out);
        assert_eq!(&out[..], b"HTTP/1.1 200 OK\r\nA: 4\r\nC: 5\r\n\r\n");
    }

    #[test]
    fn invalid_header_values_are_errors_not_panics() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        assert!(resp.insert_header("x", "a\r\nb").is_err());
        assert!(resp.insert_header("bad name", "v").is_err());
    }

    #[test]
    fn host_strips_port() {
        assert_eq!(strip_port("a.com:80"), "a.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.com"), "a.com");
    }
}

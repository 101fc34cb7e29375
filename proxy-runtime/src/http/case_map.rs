//! Header storage that remembers how each header name was spelled.
//!
//! The values live in an [`HeaderMap`]; next to it, a short list keeps the spelling of
//! every name that is not already spelled in lower case (`X-Request-ID`, `Content-Type`),
//! in the order the names arrived. Serializing walks the map and finds each name's
//! spelling in the list — usually at the next position, so the walk stays linear.
//! One spelling is kept per name: a name received twice with different case is written
//! with the first spelling (names are case-insensitive).

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, ErrorKind, ErrorSource, Result};

/// Values plus the original spellings of names that are not lower case.
#[derive(Debug, Clone, Default)]
pub(crate) struct CaseMap {
    values: HeaderMap,
    spellings: Vec<(HeaderName, Bytes)>,
}

/// Something that names a header: `&str`, `String`, [`HeaderName`] or `&HeaderName`.
///
/// A string keeps its spelling on the wire; a `HeaderName` is written in lower case.
pub trait IntoHeaderName {
    /// The canonical name and the spelling to use on the wire.
    fn into_names(self) -> Result<(HeaderName, Bytes)>;
}

fn bad_name(name: &str) -> Box<Error> {
    Error::explain(
        ErrorKind::Internal,
        ErrorSource::Internal,
        format!("invalid header name {name:?}"),
    )
}

impl IntoHeaderName for &str {
    fn into_names(self) -> Result<(HeaderName, Bytes)> {
        let name = HeaderName::from_bytes(self.as_bytes()).map_err(|_| bad_name(self))?;
        Ok((name, Bytes::copy_from_slice(self.as_bytes())))
    }
}

impl IntoHeaderName for String {
    fn into_names(self) -> Result<(HeaderName, Bytes)> {
        let name = HeaderName::from_bytes(self.as_bytes()).map_err(|_| bad_name(&self))?;
        Ok((name, Bytes::from(self)))
    }
}

impl IntoHeaderName for HeaderName {
    fn into_names(self) -> Result<(HeaderName, Bytes)> {
        let spelling = Bytes::copy_from_slice(self.as_str().as_bytes());
        Ok((self, spelling))
    }
}

impl IntoHeaderName for &HeaderName {
    fn into_names(self) -> Result<(HeaderName, Bytes)> {
        self.clone().into_names()
    }
}

/// A header name to look up or remove: `&str`, `String`, [`HeaderName`], `&HeaderName`.
pub trait HeaderKey {
    /// Borrow the key.
    fn key(&self) -> KeyRef<'_>;
}

/// A borrowed header key (see [`HeaderKey`]).
#[derive(Debug, Clone, Copy)]
pub enum KeyRef<'a> {
    /// A name as text (matched case-insensitively).
    Str(&'a str),
    /// A parsed name.
    Name(&'a HeaderName),
}

impl HeaderKey for &str {
    fn key(&self) -> KeyRef<'_> {
        KeyRef::Str(self)
    }
}
impl HeaderKey for String {
    fn key(&self) -> KeyRef<'_> {
        KeyRef::Str(self)
    }
}
impl HeaderKey for HeaderName {
    fn key(&self) -> KeyRef<'_> {
        KeyRef::Name(self)
    }
}
impl HeaderKey for &HeaderName {
    fn key(&self) -> KeyRef<'_> {
        KeyRef::Name(self)
    }
}

fn value_of(value: impl TryInto<HeaderValue>) -> Result<HeaderValue> {
    value.try_into().map_err(|_| {
        Error::explain(
            ErrorKind::Internal,
            ErrorSource::Internal,
            "invalid header value",
        )
    })
}

impl CaseMap {
    pub(crate) fn with_capacity(n: usize) -> Self {
        CaseMap {
            values: HeaderMap::with_capacity(n),
            spellings: Vec::with_capacity(n),
        }
    }

    pub(crate) fn values(&self) -> &HeaderMap {
        &self.values
    }

    /// Remember `spelling` for `name` unless it is the lower-case name itself.
    fn spell(&mut self, name: &HeaderName, spelling: Bytes, replace: bool) {
        let lower = spelling.as_ref() == name.as_str().as_bytes();
        match self.spellings.iter().position(|(n, _)| n == name) {
            Some(i) if replace => {
                if lower {
                    self.spellings.remove(i);
                } else {
                    self.spellings[i].1 = spelling;
                }
            }
            Some(_) => {}
            None if !lower => self.spellings.push((name.clone(), spelling)),
            None => {}
        }
    }

    pub(crate) fn insert(
        &mut self,
        name: impl IntoHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<()> {
        let (name, spelling) = name.into_names()?;
        let value = value_of(value)?;
        self.spell(&name, spelling, true);
        self.values.insert(name, value);
        Ok(())
    }

    pub(crate) fn append(
        &mut self,
        name: impl IntoHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<()> {
        let (name, spelling) = name.into_names()?;
        let value = value_of(value)?;
        self.spell(&name, spelling, false);
        self.values.append(name, value);
        Ok(())
    }

    /// Append an already validated header (the parser's path: no re-validation, and
    /// no search: a repeated name may be listed twice, which serializing tolerates).
    pub(crate) fn append_parsed(&mut self, name: HeaderName, spelling: Bytes, value: HeaderValue) {
        if spelling.as_ref() != name.as_str().as_bytes() {
            self.spellings.push((name.clone(), spelling));
        }
        self.values.append(name, value);
    }

    /// Headers whose names are all spelled in lower case (an HTTP/2 head), taken as
    /// they are: nothing to re-insert, nothing to remember.
    pub(crate) fn from_lower(values: HeaderMap) -> Self {
        CaseMap {
            values,
            spellings: Vec::new(),
        }
    }

    /// Append an already validated header whose name is spelled in lower case (as
    /// HTTP/2 carries names, or a constant): nothing to remember, nothing to copy.
    pub(crate) fn append_lower(&mut self, name: HeaderName, value: HeaderValue) {
        self.values.append(name, value);
    }

    pub(crate) fn remove(&mut self, name: impl HeaderKey) -> Option<HeaderValue> {
        let key = name.key();
        let removed = match key {
            KeyRef::Str(s) => self.values.remove(s),
            KeyRef::Name(n) => self.values.remove(n),
        };
        if removed.is_some() && !self.spellings.is_empty() {
            // Names are stored in lower case; a text key matches case-insensitively.
            self.spellings.retain(|(n, _)| match key {
                KeyRef::Str(s) => !n.as_str().eq_ignore_ascii_case(s),
                KeyRef::Name(k) => n != k,
            });
        }
        removed
    }
}

/// Write `Name: value\r\n` for every header, with the original spelling.
pub(crate) fn write_h1_headers(map: &CaseMap, out: &mut BytesMut) {
    let spellings = &map.spellings;
    let mut next = 0;
    for (name, value) in map.values.iter() {
        // Names usually come in the order their spellings were recorded.
        let spelling = match spellings.get(next) {
            Some((n, s)) if n == name => {
                next += 1;
                Some(s)
            }
            _ => spellings.iter().position(|(n, _)| n == name).map(|i| {
                next = i + 1;
                &spellings[i].1
            }),
        };
        out.put_slice(spelling.map_or(name.as_str().as_bytes(), |s| s.as_ref()));
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_names_keep_their_spelling_and_lower_case_ones_record_nothing() {
        let mut map = CaseMap::with_capacity(3);
        let id = HeaderName::from_static("x-request-id");
        let value = HeaderValue::from_static("1");
        map.append_parsed(id, Bytes::from_static(b"X-Request-ID"), value);
        let host = http::header::HOST;
        map.append_parsed(
            host,
            Bytes::from_static(b"host"),
            HeaderValue::from_static("a"),
        );
        map.append_lower(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        assert_eq!(map.spellings.len(), 1);
        let mut out = BytesMut::new();
        write_h1_headers(&map, &mut out);
        assert_eq!(&out[..], b"X-Request-ID: 1\r\nhost: a\r\naccept: */*\r\n");
    }
}

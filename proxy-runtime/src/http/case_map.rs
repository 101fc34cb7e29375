//! Header storage that remembers how each header name was spelled.
//!
//! Two [`HeaderMap`]s receive exactly the same operations: one holds the values, the
//! other holds the name as spelled on the wire. `HeaderMap` iterates in an order that
//! only depends on the operations applied, so walking both maps together pairs every
//! value with its original spelling.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::error::{Error, ErrorKind, ErrorSource, Result};

/// Values plus original spellings, kept in step.
#[derive(Debug, Clone, Default)]
pub(crate) struct CaseMap {
    values: HeaderMap,
    spellings: HeaderMap<Bytes>,
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
            spellings: HeaderMap::with_capacity(n),
        }
    }

    pub(crate) fn values(&self) -> &HeaderMap {
        &self.values
    }

    pub(crate) fn insert(
        &mut self,
        name: impl IntoHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<()> {
        let (name, spelling) = name.into_names()?;
        let value = value_of(value)?;
        self.spellings.insert(name.clone(), spelling);
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
        self.append_parsed(name, spelling, value);
        Ok(())
    }

    /// Append an already validated header (the parser's path: no re-validation).
    pub(crate) fn append_parsed(&mut self, name: HeaderName, spelling: Bytes, value: HeaderValue) {
        self.spellings.append(name.clone(), spelling);
        self.values.append(name, value);
    }

    pub(crate) fn remove(&mut self, name: impl HeaderKey) -> Option<HeaderValue> {
        match name.key() {
            KeyRef::Str(s) => {
                self.spellings.remove(s);
                self.values.remove(s)
            }
            KeyRef::Name(n) => {
                self.spellings.remove(n);
                self.values.remove(n)
            }
        }
    }
}

/// Write `Name: value\r\n` for every header, with the original spelling.
pub(crate) fn write_h1_headers(map: &CaseMap, out: &mut BytesMut) {
    for ((_, value), (_, spelling)) in map.values.iter().zip(map.spellings.iter()) {
        out.put_slice(spelling);
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
}

//! Header fields kept as a list in arrival order, each with the spelling of its name.
//!
//! A proxy reads a head's headers a few times (framing, hop-by-hop removal, routing) and
//! writes them out once; it rarely looks a name up among hundreds. A list serves that
//! better than a hash map: a parsed field is appended with a push (no hashing, no
//! index to grow), a lookup scans a dozen fields comparing names (a standard name
//! compares as an enum tag), and writing walks the list, so fields leave in the order
//! they came in, each name spelled as it was received or inserted (`X-Request-ID` stays
//! `X-Request-ID`; lookups ignore case).
//!
//! Code that wants an [`http::HeaderMap`] gets one built from the list on first use
//! ([`Fields::map`]); it is kept until the next change.

use std::fmt;
use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::hop;
use crate::error::{Error, ErrorKind, ErrorSource, Result};

/// The header fields of one message head.
#[derive(Default)]
pub(crate) struct Fields {
    list: Vec<Field>,
    /// The head the parser read the fields from: parsed names are spelled by position
    /// in it (one shared count for the head, not one per name).
    head: Bytes,
    /// The [`hop`] bits of the hop-by-hop names that may be present: set when such a
    /// field is added, cleared when its name is removed (a `retain` leaves them set).
    hop: u8,
    /// The map view, built on demand and dropped at every change.
    map: OnceLock<Box<HeaderMap>>,
}

/// One field: its name, how the name is spelled on the wire, and its value.
#[derive(Clone)]
struct Field {
    name: HeaderName,
    spelling: Spelling,
    value: HeaderValue,
}

/// How a field's name is spelled on the wire.
#[derive(Clone)]
enum Spelling {
    /// As the lower-case name.
    Lower,
    /// As this text.
    Text(Bytes),
    /// As these bytes of [`Fields::head`] (a parsed name).
    InHead(u32, u32),
}

impl Spelling {
    fn from_text(text: Option<Bytes>) -> Self {
        text.map_or(Spelling::Lower, Spelling::Text)
    }
}

impl Field {
    /// The name as it goes on the wire; `head` is the fields' head.
    fn wire_name<'a>(&'a self, head: &'a [u8]) -> &'a [u8] {
        match &self.spelling {
            Spelling::Lower => self.name.as_str().as_bytes(),
            Spelling::Text(s) => s,
            Spelling::InHead(start, end) => head
                .get(*start as usize..*end as usize)
                .unwrap_or(self.name.as_str().as_bytes()),
        }
    }
}

/// Something that names a header: `&str`, `String`, [`HeaderName`] or `&HeaderName`.
///
/// A string keeps its spelling on the wire; a `HeaderName` is written in lower case.
pub trait IntoHeaderName {
    /// The canonical name, and the spelling to use on the wire when it is not the
    /// lower-case name.
    fn into_names(self) -> Result<(HeaderName, Option<Bytes>)>;
}

fn bad_name(name: &str) -> Box<Error> {
    Error::explain(
        ErrorKind::Internal,
        ErrorSource::Internal,
        format!("invalid header name {name:?}"),
    )
}

/// The spelling to remember for `written`, a valid name whose canonical form is `name`.
fn spelling_of(name: &HeaderName, written: &[u8]) -> Option<Bytes> {
    (name.as_str().as_bytes() != written).then(|| Bytes::copy_from_slice(written))
}

impl IntoHeaderName for &str {
    fn into_names(self) -> Result<(HeaderName, Option<Bytes>)> {
        let name = HeaderName::from_bytes(self.as_bytes()).map_err(|_| bad_name(self))?;
        let spelling = spelling_of(&name, self.as_bytes());
        Ok((name, spelling))
    }
}

impl IntoHeaderName for String {
    fn into_names(self) -> Result<(HeaderName, Option<Bytes>)> {
        let name = HeaderName::from_bytes(self.as_bytes()).map_err(|_| bad_name(&self))?;
        let spelling = (name.as_str() != self).then(|| Bytes::from(self));
        Ok((name, spelling))
    }
}

impl IntoHeaderName for HeaderName {
    fn into_names(self) -> Result<(HeaderName, Option<Bytes>)> {
        Ok((self, None))
    }
}

impl IntoHeaderName for &HeaderName {
    fn into_names(self) -> Result<(HeaderName, Option<Bytes>)> {
        Ok((self.clone(), None))
    }
}

/// A header name to look up or remove: `&str`, `String`, `&String`, [`HeaderName`],
/// `&HeaderName`. Text matches case-insensitively.
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

impl KeyRef<'_> {
    /// Whether this key names `name`.
    #[inline]
    pub fn matches(self, name: &HeaderName) -> bool {
        match self {
            KeyRef::Name(key) => key == name,
            KeyRef::Str(key) => {
                let name = name.as_str();
                name.len() == key.len() && name.eq_ignore_ascii_case(key)
            }
        }
    }
}

/// `HeaderKey` for the text types (matched case-insensitively) and the name types.
macro_rules! header_key {
    ($variant:ident: $($t:ty),+) => {
        $(impl HeaderKey for $t {
            fn key(&self) -> KeyRef<'_> {
                KeyRef::$variant(self)
            }
        })+
    };
}

header_key!(Str: &str, String, &String);
header_key!(Name: HeaderName, &HeaderName);

fn value_of(value: impl TryInto<HeaderValue>) -> Result<HeaderValue> {
    value.try_into().map_err(|_| {
        Error::explain(
            ErrorKind::Internal,
            ErrorSource::Internal,
            "invalid header value",
        )
    })
}

impl Fields {
    /// No fields, with room for `n`.
    pub(crate) fn with_capacity(n: usize) -> Self {
        Fields {
            list: Vec::with_capacity(n),
            head: Bytes::new(),
            hop: 0,
            map: OnceLock::new(),
        }
    }

    /// Make room for `n` more fields.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.list.reserve(n);
    }

    /// The fields of a map whose names are spelled in lower case (an HTTP/2 head),
    /// moved out of it.
    pub(crate) fn from_lower(map: HeaderMap) -> Self {
        // One more than the map holds: an HTTP/2 request gets `Host` added from its
        // `:authority`, which would otherwise reallocate the list.
        let mut list: Vec<Field> = Vec::with_capacity(map.len() + 1);
        let mut hop = 0;
        // The map yields a name with the first of its values and `None` with the
        // others, which directly follow it.
        for (name, value) in map {
            let name = match name {
                Some(name) => name,
                None => match list.last() {
                    Some(previous) => previous.name.clone(),
                    None => continue,
                },
            };
            hop |= hop::bit(&name);
            list.push(Field {
                name,
                spelling: Spelling::Lower,
                value,
            });
        }
        Fields {
            list,
            head: Bytes::new(),
            hop,
            map: OnceLock::new(),
        }
    }

    /// A map of the fields (names in lower case), built now.
    pub(crate) fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.list.len());
        for f in &self.list {
            // Heads are limited far below the map's capacity limit.
            let _ = map.try_append(f.name.clone(), f.value.clone());
        }
        map
    }

    /// The map view: built on first use after a change.
    pub(crate) fn map(&self) -> &HeaderMap {
        self.map.get_or_init(|| Box::new(self.to_map()))
    }

    /// Drop the map view after a change.
    fn changed(&mut self) {
        if self.map.get().is_some() {
            self.map = OnceLock::new();
        }
    }

    /// The [`hop`] bits of the hop-by-hop names that may be present (a name whose bit
    /// is clear is certainly absent).
    pub(crate) fn hop_by_hop(&self) -> u8 {
        self.hop
    }

    /// How many fields there are (a repeated name counts once per field).
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Every field in order, as (lower-case name, value).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.list.iter().map(|f| (&f.name, &f.value))
    }

    /// The names of every field in order (a repeated name appears once per field).
    pub(crate) fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.list.iter().map(|f| &f.name)
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: KeyRef<'_>) -> Option<&HeaderValue> {
        self.list
            .iter()
            .find(|f| key.matches(&f.name))
            .map(|f| &f.value)
    }

    /// Every value of `key`, in order.
    pub(crate) fn get_all<'a>(&'a self, key: KeyRef<'a>) -> impl Iterator<Item = &'a HeaderValue> {
        self.list
            .iter()
            .filter(move |f| key.matches(&f.name))
            .map(|f| &f.value)
    }

    /// Whether `key` has a value.
    pub(crate) fn contains(&self, key: KeyRef<'_>) -> bool {
        self.list.iter().any(|f| key.matches(&f.name))
    }

    /// Set `name` to `value`: the first field of that name takes the new spelling and
    /// value in place, the others go; a new name is appended.
    pub(crate) fn insert(
        &mut self,
        name: impl IntoHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<()> {
        let (name, spelling) = name.into_names()?;
        let value = value_of(value)?;
        self.changed();
        self.hop |= hop::bit(&name);
        match self.list.iter().position(|f| f.name == name) {
            Some(first) => {
                let field = &mut self.list[first];
                field.spelling = Spelling::from_text(spelling);
                field.value = value;
                let mut i = first + 1;
                while i < self.list.len() {
                    if self.list[i].name == name {
                        self.list.remove(i);
                    } else {
                        i += 1;
                    }
                }
            }
            None => self.list.push(Field {
                name,
                spelling: Spelling::from_text(spelling),
                value,
            }),
        }
        Ok(())
    }

    /// Add a field, keeping the ones already there.
    pub(crate) fn append(
        &mut self,
        name: impl IntoHeaderName,
        value: impl TryInto<HeaderValue>,
    ) -> Result<()> {
        let (name, spelling) = name.into_names()?;
        let value = value_of(value)?;
        self.changed();
        self.hop |= hop::bit(&name);
        self.list.push(Field {
            name,
            spelling: Spelling::from_text(spelling),
            value,
        });
        Ok(())
    }

    /// The head the parser is about to read fields from (see
    /// [`Fields::append_parsed`]).
    pub(crate) fn set_head(&mut self, head: Bytes) {
        self.head = head;
    }

    /// Add a validated field as the parser found it: the name is written at
    /// `spelled_at` (start, end) in the head given to [`Fields::set_head`], `name` is
    /// its canonical form, `hop_bit` its [`hop`] bit (the parser knows it from its
    /// name table).
    pub(crate) fn append_parsed(
        &mut self,
        name: HeaderName,
        spelled_at: (u32, u32),
        value: HeaderValue,
        hop_bit: u8,
    ) {
        self.changed();
        self.hop |= hop_bit;
        self.list.push(Field {
            name,
            spelling: Spelling::InHead(spelled_at.0, spelled_at.1),
            value,
        });
    }

    /// Add a validated field whose name is written in lower case (as HTTP/2 carries
    /// names, or a constant): nothing to remember, nothing to copy.
    pub(crate) fn append_lower(&mut self, name: HeaderName, value: HeaderValue) {
        self.changed();
        self.hop |= hop::bit(&name);
        self.list.push(Field {
            name,
            spelling: Spelling::Lower,
            value,
        });
    }

    /// Remove every field named `key`; returns the first value.
    pub(crate) fn remove(&mut self, key: KeyRef<'_>) -> Option<HeaderValue> {
        let first = self.list.iter().position(|f| key.matches(&f.name))?;
        self.changed();
        let bit = match key {
            KeyRef::Name(name) => hop::bit(name),
            KeyRef::Str(name) => hop::index(name.as_bytes(), true).map_or(0, |i| 1 << i),
        };
        self.hop &= !bit;
        let removed = self.list.remove(first).value;
        if self.list[first..].iter().any(|f| key.matches(&f.name)) {
            self.list.retain(|f| !key.matches(&f.name));
        }
        Some(removed)
    }

    /// Keep only the fields for which `keep(name, value)` says so.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&HeaderName, &HeaderValue) -> bool) {
        let before = self.list.len();
        self.list.retain(|f| keep(&f.name, &f.value));
        if self.list.len() != before {
            self.changed();
        }
    }

    /// Write `Name: value\r\n` for every field, in order, with its spelling.
    pub(crate) fn write_h1(&self, out: &mut BytesMut) {
        let head = &self.head[..];
        for f in &self.list {
            out.put_slice(f.wire_name(head));
            out.put_slice(b": ");
            out.put_slice(f.value.as_bytes());
            out.put_slice(b"\r\n");
        }
    }
}

impl Clone for Fields {
    fn clone(&self) -> Self {
        Fields {
            list: self.list.clone(),
            head: self.head.clone(),
            hop: self.hop,
            map: OnceLock::new(),
        }
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.list.iter().map(|field| {
                let name = field.wire_name(&self.head);
                (String::from_utf8_lossy(name), &field.value)
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_arrival_order_and_spelling() {
        let mut fields = Fields::with_capacity(3);
        fields.set_head(Bytes::from_static(b"GET / HTTP/1.1\r\nX-Request-ID: 1\r\n"));
        fields.append_parsed(
            HeaderName::from_static("x-request-id"),
            (16, 28),
            HeaderValue::from_static("1"),
            0,
        );
        fields.append_lower(http::header::ACCEPT, HeaderValue::from_static("*/*"));
        fields.append("X-Multi", "a").unwrap();
        fields.append("x-multi", "b").unwrap();
        let mut out = BytesMut::new();
        fields.write_h1(&mut out);
        assert_eq!(
            &out[..],
            b"X-Request-ID: 1\r\naccept: */*\r\nX-Multi: a\r\nx-multi: b\r\n"
        );
        let all: Vec<_> = fields.get_all(KeyRef::Str("X-MULTI")).collect();
        assert_eq!(all, ["a", "b"]);
    }

    #[test]
    fn insert_replaces_in_place_and_remove_takes_every_value() {
        let mut fields = Fields::with_capacity(4);
        for (n, v) in [("A", "1"), ("B", "2"), ("a", "3"), ("C", "4")] {
            fields.append(n, v).unwrap();
        }
        fields.insert("a", "5").unwrap();
        let names: Vec<_> = fields.names().map(|n| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(fields.get(KeyRef::Str("A")).unwrap(), "5");
        assert_eq!(fields.remove(KeyRef::Str("b")).unwrap(), "2");
        assert!(fields.remove(KeyRef::Str("b")).is_none());
        assert_eq!(fields.len(), 2);
    }

    #[test]
    fn the_hop_by_hop_mask_is_set_by_every_addition_and_cleared_by_removal() {
        let mut fields = Fields::with_capacity(4);
        fields.append("Host", "a").unwrap();
        assert_eq!(fields.hop_by_hop(), 0);
        fields.append("Connection", "close").unwrap();
        fields.insert(http::header::UPGRADE, "websocket").unwrap();
        fields.append_lower(
            http::header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert_eq!(
            fields.hop_by_hop(),
            hop::CONNECTION | hop::UPGRADE | hop::TRANSFER_ENCODING
        );
        fields.remove(KeyRef::Str("CONNECTION"));
        fields.remove(KeyRef::Name(&http::header::UPGRADE));
        assert_eq!(fields.hop_by_hop(), hop::TRANSFER_ENCODING);
        let mut map = HeaderMap::new();
        map.append("keep-alive", HeaderValue::from_static("timeout=5"));
        assert_eq!(Fields::from_lower(map).hop_by_hop(), 1 << 1);
    }

    #[test]
    fn the_map_view_follows_changes() {
        let mut fields = Fields::with_capacity(2);
        fields.append("Host", "a").unwrap();
        assert_eq!(fields.map()["host"], "a");
        fields.insert("Host", "b").unwrap();
        assert_eq!(fields.map()["host"], "b");
        fields.retain(|_, _| false);
        assert!(fields.map().is_empty());
        let copy = fields.clone();
        assert_eq!(copy.len(), 0);
    }

    #[test]
    fn lower_case_maps_convert_both_ways_with_repeated_names() {
        let mut map = HeaderMap::new();
        map.append("x-a", HeaderValue::from_static("1"));
        map.append("x-b", HeaderValue::from_static("2"));
        map.append("x-a", HeaderValue::from_static("3"));
        let fields = Fields::from_lower(map.clone());
        assert_eq!(fields.len(), 3);
        let a: Vec<_> = fields.get_all(KeyRef::Str("x-a")).collect();
        assert_eq!(a, ["1", "3"]);
        assert_eq!(fields.to_map(), map);
    }
}

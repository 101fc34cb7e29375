//! Byte ranges (RFC 9110 §14): answering `Range` requests from a whole response body.
//!
//! The cache stores whole representations; a client that asks for part of one gets it
//! cut out here, on a hit (the stored body is read back in chunks) and on a miss alike
//! (the origin's body streams into storage while the requested bytes stream to the
//! client). The work is split in three steps:
//!
//! 1. **Decide.** [`select_ranges`] applies every rule that decides whether a request
//!    is answered with ranges at all (method, status, `If-Range`, one `Range` field) and
//!    parses the `Range` field with [`parse_range`]. The result is a [`RangeRequest`]:
//!    the whole body, a list of ranges, or unsatisfiable.
//! 2. **Head.** [`range_head`] turns the `200` head into the head that answers the
//!    decision (`206` with `Content-Range`, `206 multipart/byteranges`, or `416`) and
//!    returns the [`RangeBody`] that produces exactly the announced `Content-Length`.
//! 3. **Body.** Every chunk of the whole body is handed to [`RangeBody::push`] in order;
//!    it emits the selected bytes as zero-copy slices of the chunk, with multipart part
//!    headers in between, and never holds on to a chunk. [`RangeBody::is_done`] says
//!    when no more input is needed; [`RangeBody::finish`] closes a multipart body.
//!
//! Choices this module makes, where the RFC leaves room:
//!
//! - **Invalid syntax is ignored, not rejected**: a `Range` field that does not parse
//!   (including a range whose last position is before its first, or a unit other than
//!   `bytes`) is answered with the whole body, as RFC 9110 §14.2 allows.
//! - **Suffix ranges longer than the body** select the whole body, answered as a `206`
//!   covering every byte (`bytes=-500` on 100 bytes gives `bytes 0-99/100`).
//! - **Empty representations**: no byte range can be expressed against zero bytes, so
//!   an int-range is unsatisfiable (`416`), while a non-zero suffix range, which RFC
//!   9110 §14.1.1 calls satisfiable on an empty body, is answered with the whole (empty)
//!   body and a `200`.
//! - **Several ranges are put in ascending order and coalesced.** A streamed body can
//!   only be cut front to back, so when the requested ranges are not already ascending
//!   and separated by gaps, they are sorted and every overlapping or adjacent pair is
//!   merged (RFC 9110 §15.3.7.2 allows coalescing regardless of the requested order).
//!   Ranges that are already ascending and disjoint keep the client's order.
//! - **Amplification defence** (the attack of CVE-2011-3192): a field with more than
//!   [`MAX_RANGES`] range specs is answered with the whole body. Because the ranges of
//!   a multipart answer are disjoint after coalescing, a response never carries more
//!   body bytes than the representation has, plus at most [`MAX_RANGES`] part headers.
//! - **Date validators** in `If-Range` are compared as instants (read by
//!   [`parse_http_date`], which accepts the three HTTP-date formats of RFC 9110
//!   §5.6.7), and the stored `Last-Modified` counts as strong only if the stored
//!   `Date` is at least one second later (RFC 9110 §8.8.2.2).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, DATE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE,
    TRANSFER_ENCODING,
};
use http::{Method, StatusCode};

use super::freshness::parse_http_date;
use crate::http::{RequestHeader, ResponseHeader};

/// The most range specs one `Range` field may hold before it is answered with the whole
/// body instead (a defence against range amplification).
pub const MAX_RANGES: usize = 100;

/// How a request is answered from a representation of known length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// Send the whole body with the original status: there was no `Range` field, or it
    /// used another unit, was syntactically invalid, asked for too many ranges, or a
    /// precondition (`If-Range`, method, status) made the server ignore it.
    Whole,
    /// Send these byte ranges with a `206`. Each range is non-empty and ends at or before
    /// the length. A single range is exactly what the client asked for, clamped to the
    /// length; several ranges are ascending and disjoint (see the module docs for when
    /// they are sorted and coalesced).
    Ranges(Vec<Range<u64>>),
    /// No requested range overlaps the representation: answer `416` with
    /// `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decides how `req` is answered from the stored or streaming response `resp`, whose
/// body is `len` bytes long.
///
/// Ranges apply only to a `GET` (RFC 9110 §14.2) answered with `200`, with exactly one
/// `Range` field line and, if the request has an `If-Range` field, a validator that
/// strongly matches `resp` ([`if_range_allows`]). Otherwise the answer is
/// [`RangeRequest::Whole`].
pub fn select_ranges(req: &RequestHeader, resp: &ResponseHeader, len: u64) -> RangeRequest {
    if req.method != Method::GET || resp.status != StatusCode::OK {
        return RangeRequest::Whole;
    }
    let mut ranges = req.header_values(RANGE);
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return RangeRequest::Whole;
    };
    let mut validators = req.header_values(IF_RANGE);
    match (validators.next(), validators.next()) {
        (None, _) => {}
        (Some(validator), None) if if_range_allows(validator.as_bytes(), resp) => {}
        _ => return RangeRequest::Whole,
    }
    parse_range(range.as_bytes(), len)
}

/// Parses the value of a `Range` field against a representation of `len` bytes.
///
/// Accepts `bytes=0-99`, `bytes=100-` (to the end), `bytes=-500` (the last 500 bytes),
/// and comma-separated lists of them with optional whitespace; the unit is matched
/// case-insensitively and empty list elements are skipped. Never panics, whatever the
/// input. See [`RangeRequest`] and the module docs for what each outcome means.
pub fn parse_range(value: &[u8], len: u64) -> RangeRequest {
    let value = trim_ows(value);
    let Some(equals) = value.iter().position(|&b| b == b'=') else {
        return RangeRequest::Whole;
    };
    if !value[..equals].eq_ignore_ascii_case(b"bytes") {
        return RangeRequest::Whole;
    }
    let mut ranges = Vec::new();
    let mut specs = 0usize;
    let mut suffix_of_empty = false;
    for element in value[equals + 1..].split(|&b| b == b',') {
        let element = trim_ows(element);
        if element.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return RangeRequest::Whole;
        }
        match RangeSpec::parse(element) {
            None => return RangeRequest::Whole,
            Some(RangeSpec::From { first, last }) => {
                let end = last.map_or(u64::MAX, |last| last.saturating_add(1));
                ranges.push(first..end);
            }
            // A zero-length suffix selects nothing: unsatisfiable on its own.
            Some(RangeSpec::Suffix(0)) => {}
            Some(RangeSpec::Suffix(_)) if len == 0 => suffix_of_empty = true,
            Some(RangeSpec::Suffix(n)) => ranges.push(len.saturating_sub(n)..len),
        }
    }
    if specs == 0 || suffix_of_empty {
        return RangeRequest::Whole;
    }
    normalize(ranges, len)
}

/// One range spec of a `bytes` range set.
enum RangeSpec {
    /// `first-last` or `first-` (`last` inclusive).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

impl RangeSpec {
    /// Parses one trimmed, non-empty element; `None` if it is not valid syntax.
    fn parse(spec: &[u8]) -> Option<Self> {
        let dash = spec.iter().position(|&b| b == b'-')?;
        let (first, last) = (&spec[..dash], &spec[dash + 1..]);
        if first.is_empty() {
            return Some(RangeSpec::Suffix(decimal(last)?));
        }
        let first_value = decimal(first)?;
        if last.is_empty() {
            return Some(RangeSpec::From {
                first: first_value,
                last: None,
            });
        }
        let last_value = decimal(last)?;
        // Compared as digit strings: numbers too large for u64 saturate, and two
        // saturated numbers must still be ordered correctly.
        if digits_less(last, first) {
            return None;
        }
        Some(RangeSpec::From {
            first: first_value,
            last: Some(last_value),
        })
    }
}

/// `1*DIGIT` as a number, saturating at `u64::MAX`; `None` if empty or not all digits.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Whether the decimal number spelled `a` is less than the one spelled `b`.
fn digits_less(a: &[u8], b: &[u8]) -> bool {
    let significant = |s: &[u8]| {
        let zeros = s.iter().take_while(|&&d| d == b'0').count();
        s[zeros..].to_vec()
    };
    let (a, b) = (significant(a), significant(b));
    (a.len(), &a) < (b.len(), &b)
}

/// Clamps every range to `len`, drops the empty ones, and (for several ranges that are
/// not already ascending and separated by gaps) sorts and coalesces them.
fn normalize(mut ranges: Vec<Range<u64>>, len: u64) -> RangeRequest {
    ranges.retain_mut(|range| {
        range.end = range.end.min(len);
        range.start < range.end
    });
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    let ascending = ranges.windows(2).all(|pair| pair[0].end < pair[1].start);
    if !ascending {
        ranges.sort_unstable_by_key(|range| range.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
        for range in ranges {
            match merged.last_mut() {
                Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
                _ => merged.push(range),
            }
        }
        ranges = merged;
    }
    RangeRequest::Ranges(ranges)
}

/// Whether the validator of an `If-Range` field lets the range apply to `resp` (RFC 9110
/// §13.1.5).
///
/// An entity-tag must be strong and equal, byte for byte, to `resp`'s `ETag`, which must
/// be strong too. A date must be an HTTP-date naming the same instant as `resp`'s
/// `Last-Modified`, and that `Last-Modified` must be strong: `resp`'s `Date` at least one
/// second later. Anything else (weak tags, a missing or malformed field, another date)
/// is `false`: the whole body is sent.
pub fn if_range_allows(if_range: &[u8], resp: &ResponseHeader) -> bool {
    let validator = trim_ows(if_range);
    if validator.starts_with(b"W/") {
        return false;
    }
    if validator.first() == Some(&b'"') {
        return is_strong_tag(validator)
            && resp.header(ETAG).is_some_and(|etag| {
                let etag = trim_ows(etag.as_bytes());
                is_strong_tag(etag) && etag == validator
            });
    }
    let date_of = |value: &[u8]| std::str::from_utf8(value).ok().and_then(parse_http_date);
    let header_date = |name| resp.header(name).and_then(|v| date_of(v.as_bytes()));
    let (Some(wanted), Some(modified), Some(date)) = (
        date_of(validator),
        header_date(LAST_MODIFIED),
        header_date(DATE),
    ) else {
        return false;
    };
    wanted == modified
        && modified
            .checked_add(Duration::from_secs(1))
            .is_some_and(|strong_from| date >= strong_from)
}

/// Whether `tag` is exactly one strong `opaque-tag`: `"` *etagc `"`.
fn is_strong_tag(tag: &[u8]) -> bool {
    match tag {
        [b'"', inner @ .., b'"'] => inner
            .iter()
            .all(|&c| c == 0x21 || (0x23..=0x7e).contains(&c) || c >= 0x80),
        _ => false,
    }
}

/// Strips optional whitespace (spaces and tabs) from both ends.
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// The head that answers `ranges` from `resp` (a `200` head for a body of `len` bytes),
/// and the [`RangeBody`] that cuts the body to match it.
///
/// - [`RangeRequest::Whole`]: the head unchanged (its framing stays the caller's); the
///   body passes the first `len` bytes through.
/// - One range: `206` with `Content-Range: bytes a-b/len` and its `Content-Length`.
/// - Several ranges: `206` with `Content-Type: multipart/byteranges; boundary=...` and
///   the exact `Content-Length` of the multipart body; each part carries the original
///   `Content-Type` (if any) and its `Content-Range` (RFC 9110 §14.6).
/// - [`RangeRequest::Unsatisfiable`]: `416` with `Content-Range: bytes */len`,
///   `Content-Length: 0`, and no `Content-Type` or `Content-Encoding` (the empty body is
///   not the representation).
///
/// A `206` or `416` head loses `Transfer-Encoding` and keeps every other field (`ETag`,
/// `Last-Modified`, `Cache-Control`, ...). Ranges built by hand are checked here the way
/// [`parse_range`] checks its own: clamped to `len`, sorted and coalesced if needed, and
/// more than [`MAX_RANGES`] of them mean the whole body.
pub fn range_head(
    resp: &ResponseHeader,
    len: u64,
    ranges: &RangeRequest,
) -> (ResponseHeader, RangeBody) {
    let decision = match ranges {
        RangeRequest::Ranges(list) => match normalize(list.clone(), len) {
            RangeRequest::Ranges(list) if list.len() > MAX_RANGES => RangeRequest::Whole,
            decision => decision,
        },
        other => other.clone(),
    };
    let mut head = resp.clone();
    let parts = match decision {
        RangeRequest::Whole => return (head, RangeBody::new(whole_part(len), None)),
        RangeRequest::Unsatisfiable => {
            restatus(&mut head, StatusCode::RANGE_NOT_SATISFIABLE);
            for name in [TRANSFER_ENCODING, CONTENT_TYPE, CONTENT_ENCODING] {
                head.remove_header(name);
            }
            set_field(&mut head, "Content-Range", format!("bytes */{len}"));
            set_field(&mut head, "Content-Length", 0u64);
            return (head, RangeBody::new(Vec::new(), None));
        }
        RangeRequest::Ranges(list) => list,
    };
    restatus(&mut head, StatusCode::PARTIAL_CONTENT);
    head.remove_header(TRANSFER_ENCODING);
    head.remove_header(CONTENT_LENGTH);
    if let [range] = parts.as_slice() {
        let range = range.clone();
        set_field(&mut head, "Content-Range", content_range(&range, len));
        set_field(&mut head, "Content-Length", range.end - range.start);
        let part = Part {
            range,
            header: Bytes::new(),
        };
        return (head, RangeBody::new(vec![part], None));
    }

    let boundary = new_boundary();
    let part_type = head.header(CONTENT_TYPE).map(|v| v.as_bytes().to_vec());
    let parts: Vec<Part> = parts
        .into_iter()
        .map(|range| Part {
            header: part_header(&boundary, part_type.as_deref(), &range, len),
            range,
        })
        .collect();
    let closing = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let total = parts
        .iter()
        .map(|p| p.header.len() as u64 + (p.range.end - p.range.start))
        .sum::<u64>()
        + closing.len() as u64;
    set_field(
        &mut head,
        "Content-Type",
        format!("multipart/byteranges; boundary={boundary}"),
    );
    set_field(&mut head, "Content-Length", total);
    (head, RangeBody::new(parts, Some(closing)))
}

/// The single part that passes `len` bytes through unchanged (none if `len` is 0).
fn whole_part(len: u64) -> Vec<Part> {
    let part = Part {
        range: 0..len,
        header: Bytes::new(),
    };
    if len == 0 { Vec::new() } else { vec![part] }
}

/// `bytes first-last/len` for a non-empty `range`.
fn content_range(range: &Range<u64>, len: u64) -> String {
    format!("bytes {}-{}/{len}", range.start, range.end - 1)
}

/// The delimiter and header block that open one part of a multipart body.
fn part_header(boundary: &str, content_type: Option<&[u8]>, range: &Range<u64>, len: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(128);
    out.put_slice(b"\r\n--");
    out.put_slice(boundary.as_bytes());
    out.put_slice(b"\r\n");
    if let Some(content_type) = content_type {
        out.put_slice(b"Content-Type: ");
        out.put_slice(content_type);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Content-Range: ");
    out.put_slice(content_range(range, len).as_bytes());
    out.put_slice(b"\r\n\r\n");
    out.freeze()
}

/// A fresh multipart boundary: 32 hex digits that differ between responses.
///
/// Not secret, only unlikely to occur in a body: a per-process counter, the clock and
/// the process id, scrambled so that consecutive boundaries share no visible pattern.
fn new_boundary() -> String {
    static ISSUED: AtomicU64 = AtomicU64::new(0);
    let count = ISSUED.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let high = scramble(nanos ^ (u64::from(std::process::id()) << 32) ^ scramble(count));
    let low = scramble(high ^ count.wrapping_add(0x9e37_79b9_7f4a_7c15));
    format!("{high:016x}{low:016x}")
}

/// A bijective 64-bit mix (the splitmix64 finalizer): every input bit affects every
/// output bit.
fn scramble(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Sets the status; the reason phrase goes back to the standard one.
fn restatus(head: &mut ResponseHeader, status: StatusCode) {
    // A `StatusCode` always converts; the `Result` exists for numeric inputs.
    let _ = head.set_status(status);
}

/// Sets a field whose name is a valid constant and whose value is built from digits and
/// tokens, so that insertion cannot fail.
fn set_field(
    head: &mut ResponseHeader,
    name: &'static str,
    value: impl TryInto<http::HeaderValue>,
) {
    let _ = head.insert_header(name, value);
}

/// One range of the output, with the bytes that announce it (empty unless multipart).
#[derive(Debug)]
struct Part {
    range: Range<u64>,
    /// Not yet emitted; emptied once it is.
    header: Bytes,
}

/// Cuts the selected bytes out of a whole body that arrives in chunks, in order.
///
/// Made by [`range_head`]; everything it emits, in order, is the body of the head
/// returned with it, and adds up to that head's `Content-Length` (for a `206` or `416`).
/// It keeps no chunk: each output is a slice of the chunk just pushed, a part header, or
/// the closing delimiter.
#[derive(Debug)]
pub struct RangeBody {
    /// In body order; `next` indexes the first one not yet complete.
    parts: Vec<Part>,
    next: usize,
    /// Offset in the whole body of the next byte to be pushed.
    offset: u64,
    /// The multipart closing delimiter, until [`RangeBody::finish`] emits it.
    closing: Option<Bytes>,
    /// Everything this body emits in all.
    content_length: u64,
}

impl RangeBody {
    fn new(parts: Vec<Part>, closing: Option<Bytes>) -> Self {
        let content_length = parts
            .iter()
            .map(|p| p.header.len() as u64 + (p.range.end - p.range.start))
            .sum::<u64>()
            + closing.as_ref().map_or(0, |c| c.len() as u64);
        RangeBody {
            parts,
            next: 0,
            offset: 0,
            closing,
            content_length,
        }
    }

    /// Takes the next `chunk` of the whole body and appends to `out` what it contributes
    /// to the response body: part headers and zero-copy slices of `chunk`. Bytes outside
    /// every range (and past the announced length) are dropped.
    pub fn push(&mut self, chunk: Bytes, out: &mut Vec<Bytes>) {
        let start = self.offset;
        let end = start.saturating_add(chunk.len() as u64);
        self.offset = end;
        while let Some(part) = self.parts.get_mut(self.next) {
            if part.range.start >= end {
                break; // the part begins in a later chunk
            }
            let from = part.range.start.max(start);
            let to = part.range.end.min(end);
            if from < to {
                if !part.header.is_empty() {
                    out.push(std::mem::take(&mut part.header));
                }
                // Both offsets lie within `chunk`, so they fit in usize.
                out.push(chunk.slice((from - start) as usize..(to - start) as usize));
            }
            if part.range.end > end {
                break; // the part continues in the next chunk
            }
            self.next += 1;
        }
    }

    /// Whether every selected byte has been emitted: the caller may stop reading the body
    /// (and must then call [`RangeBody::finish`]).
    pub fn is_done(&self) -> bool {
        self.next == self.parts.len()
    }

    /// Ends the body: appends the multipart closing delimiter to `out` and returns `true`
    /// if every selected byte was emitted; returns `false` and appends nothing if the
    /// whole body ended early. Then the response cannot reach its announced length, and
    /// the caller must abort it (close the connection, reset the stream) rather than end
    /// it cleanly.
    #[must_use = "a short body means the response must be aborted"]
    pub fn finish(&mut self, out: &mut Vec<Bytes>) -> bool {
        if !self.is_done() {
            return false;
        }
        out.extend(self.closing.take());
        true
    }

    /// How many bytes this body emits in all (the `Content-Length` of a `206` or `416`).
    pub fn content_length(&self) -> u64 {
        self.content_length
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Version;

    fn ranges(list: &[Range<u64>]) -> RangeRequest {
        RangeRequest::Ranges(list.to_vec())
    }

    fn one(range: Range<u64>) -> RangeRequest {
        RangeRequest::Ranges(vec![range])
    }

    fn parse(value: &str, len: u64) -> RangeRequest {
        parse_range(value.as_bytes(), len)
    }

    fn ok_head(fields: &[(&str, &str)]) -> ResponseHeader {
        let mut head = ResponseHeader::new(StatusCode::OK, 8);
        for (name, value) in fields {
            head.insert_header(name.to_string(), value.to_string())
                .expect("valid test field");
        }
        head
    }

    fn field<'a>(head: &'a ResponseHeader, name: &str) -> Option<&'a str> {
        head.header_str(name)
    }

    /// Pushes `body` in chunks of `chunk` bytes and returns everything emitted.
    fn run(
        body: &[u8],
        head_for: &ResponseHeader,
        request: &RangeRequest,
        chunk: usize,
    ) -> (ResponseHeader, Vec<u8>) {
        let (head, mut cutter) = range_head(head_for, body.len() as u64, request);
        let mut out = Vec::new();
        for piece in body.chunks(chunk) {
            cutter.push(Bytes::copy_from_slice(piece), &mut out);
        }
        assert!(cutter.finish(&mut out));
        (head, out.concat())
    }

    #[test]
    fn single_range_is_inclusive_on_both_ends() {
        assert_eq!(parse("bytes=0-99", 1000), one(0..100));
        assert_eq!(parse("bytes=5-5", 10), one(5..6));
    }

    #[test]
    fn last_position_past_the_end_is_clamped() {
        assert_eq!(parse("bytes=900-5000", 1000), one(900..1000));
        assert_eq!(parse("bytes=0-99999999999999999999999999", 10), one(0..10));
    }

    #[test]
    fn open_ended_range_runs_to_the_end() {
        assert_eq!(parse("bytes=100-", 1000), one(100..1000));
    }

    #[test]
    fn suffix_range_selects_the_last_bytes() {
        assert_eq!(parse("bytes=-500", 1000), one(500..1000));
    }

    #[test]
    fn suffix_longer_than_the_body_selects_every_byte() {
        assert_eq!(parse("bytes=-500", 100), one(0..100));
    }

    #[test]
    fn zero_suffix_is_unsatisfiable() {
        assert_eq!(parse("bytes=-0", 100), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn unit_is_case_insensitive_and_whitespace_is_optional() {
        assert_eq!(
            parse(" BYTES=0-1 ,\t4-5,, 8-", 10),
            ranges(&[0..2, 4..6, 8..10])
        );
    }

    #[test]
    fn ascending_disjoint_ranges_keep_their_order() {
        assert_eq!(parse("bytes=0-1,3-4", 10), ranges(&[0..2, 3..5]));
    }

    #[test]
    fn overlapping_and_adjacent_ranges_are_coalesced() {
        assert_eq!(parse("bytes=0-4,3-8", 100), one(0..9));
        assert_eq!(parse("bytes=0-4,5-8", 100), one(0..9));
        assert_eq!(parse("bytes=0-9,2-3,50-", 100), ranges(&[0..10, 50..100]));
        assert_eq!(parse("bytes=0-0,-1,0-0", 10), ranges(&[0..1, 9..10]));
    }

    #[test]
    fn descending_ranges_are_sorted() {
        assert_eq!(parse("bytes=50-59,0-9", 100), ranges(&[0..10, 50..60]));
    }

    #[test]
    fn ranges_starting_past_the_end_are_dropped() {
        assert_eq!(parse("bytes=0-1,200-300", 100), one(0..2));
    }

    #[test]
    fn every_range_past_the_end_is_unsatisfiable() {
        assert_eq!(parse("bytes=100-", 100), RangeRequest::Unsatisfiable);
        assert_eq!(
            parse("bytes=200-300,150-", 100),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse("bytes=99999999999999999999999-", 100),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn invalid_syntax_means_the_whole_body() {
        for value in [
            "",
            "bytes",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=5",
            "bytes=a-b",
            "bytes=1-2-3",
            "bytes=--5",
            "bytes=+1-2",
            "bytes=0-1,x",
            "bytes =0-1",
            "bytes=0 - 1",
            "bytes=0-1;",
        ] {
            assert_eq!(parse(value, 100), RangeRequest::Whole, "{value:?}");
        }
    }

    #[test]
    fn last_before_first_is_invalid_and_ignored() {
        assert_eq!(parse("bytes=10-5", 100), RangeRequest::Whole);
        assert_eq!(parse("bytes=0-1,10-5", 100), RangeRequest::Whole);
        assert_eq!(
            parse("bytes=200000000000000000000-100000000000000000000", 100),
            RangeRequest::Whole
        );
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(parse("items=0-1", 100), RangeRequest::Whole);
    }

    #[test]
    fn empty_representation_cannot_satisfy_int_ranges() {
        assert_eq!(parse("bytes=0-", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=0-10", 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 0), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn suffix_range_on_empty_representation_sends_the_empty_body() {
        assert_eq!(parse("bytes=-5", 0), RangeRequest::Whole);
    }

    #[test]
    fn more_than_max_ranges_means_the_whole_body() {
        let spec = |n: usize| {
            (0..n)
                .map(|i| format!("{}-{}", i * 2, i * 2))
                .collect::<Vec<_>>()
                .join(",")
        };
        let at_limit = parse(&format!("bytes={}", spec(MAX_RANGES)), 1000);
        assert!(matches!(at_limit, RangeRequest::Ranges(r) if r.len() == MAX_RANGES));
        let over = parse(&format!("bytes={}", spec(MAX_RANGES + 1)), 1000);
        assert_eq!(over, RangeRequest::Whole);
        let overlapping = format!("bytes={}", vec!["0-"; MAX_RANGES + 1].join(","));
        assert_eq!(parse(&overlapping, 1000), RangeRequest::Whole);
    }

    #[test]
    fn overlapping_ranges_never_amplify_the_body() {
        let value = format!("bytes={}", vec!["0-"; MAX_RANGES].join(","));
        assert_eq!(parse(&value, 1000), one(0..1000));
    }

    fn etag_head(etag: &str) -> ResponseHeader {
        ok_head(&[("ETag", etag)])
    }

    #[test]
    fn if_range_strong_etag_must_match_exactly() {
        let head = etag_head("\"v1\"");
        assert!(if_range_allows(b"\"v1\"", &head));
        assert!(if_range_allows(b" \"v1\" ", &head));
        assert!(!if_range_allows(b"\"v2\"", &head));
        assert!(!if_range_allows(b"\"v1", &head));
        assert!(!if_range_allows(b"\"v\"1\"", &head));
    }

    #[test]
    fn if_range_weak_etags_never_match() {
        assert!(!if_range_allows(b"W/\"v1\"", &etag_head("W/\"v1\"")));
        assert!(!if_range_allows(b"\"v1\"", &etag_head("W/\"v1\"")));
        assert!(!if_range_allows(b"W/\"v1\"", &etag_head("\"v1\"")));
    }

    #[test]
    fn if_range_etag_without_stored_etag_fails() {
        assert!(!if_range_allows(b"\"v1\"", &ok_head(&[])));
    }

    const MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    #[test]
    fn if_range_date_matches_a_strong_last_modified() {
        let head = ok_head(&[
            ("Last-Modified", MODIFIED),
            ("Date", "Sun, 06 Nov 1994 08:49:38 GMT"),
        ]);
        assert!(if_range_allows(MODIFIED.as_bytes(), &head));
        assert!(if_range_allows(b"Sunday, 06-Nov-94 08:49:37 GMT", &head));
        assert!(if_range_allows(b"Sun Nov  6 08:49:37 1994", &head));
        assert!(!if_range_allows(b"Sun, 06 Nov 1994 08:49:36 GMT", &head));
        assert!(!if_range_allows(b"Sun, 06 Nov 1994 08:49:38 GMT", &head));
        assert!(!if_range_allows(b"yesterday", &head));
    }

    #[test]
    fn if_range_date_fails_when_last_modified_is_weak() {
        let same_second = ok_head(&[("Last-Modified", MODIFIED), ("Date", MODIFIED)]);
        assert!(!if_range_allows(MODIFIED.as_bytes(), &same_second));
        let no_date = ok_head(&[("Last-Modified", MODIFIED)]);
        assert!(!if_range_allows(MODIFIED.as_bytes(), &no_date));
        let no_modified = ok_head(&[("Date", MODIFIED)]);
        assert!(!if_range_allows(MODIFIED.as_bytes(), &no_modified));
    }

    #[test]
    fn select_ranges_applies_only_to_get_of_a_200() {
        let resp = etag_head("\"v1\"");
        let mut req = RequestHeader::build(Method::GET, "/", Version::HTTP_11).expect("request");
        assert_eq!(select_ranges(&req, &resp, 10), RangeRequest::Whole);
        req.insert_header("Range", "bytes=0-1").expect("field");
        assert_eq!(select_ranges(&req, &resp, 10), one(0..2));

        let mut head = req.clone();
        head.set_method(Method::HEAD);
        assert_eq!(select_ranges(&head, &resp, 10), RangeRequest::Whole);

        let mut not_found = resp.clone();
        not_found.set_status(404).expect("status");
        assert_eq!(select_ranges(&req, &not_found, 10), RangeRequest::Whole);

        let mut twice = req.clone();
        twice.append_header("Range", "bytes=3-4").expect("field");
        assert_eq!(select_ranges(&twice, &resp, 10), RangeRequest::Whole);
    }

    #[test]
    fn select_ranges_honours_if_range() {
        let resp = etag_head("\"v1\"");
        let mut req = RequestHeader::build(Method::GET, "/", Version::HTTP_11).expect("request");
        req.insert_header("Range", "bytes=0-1").expect("field");
        req.insert_header("If-Range", "\"v1\"").expect("field");
        assert_eq!(select_ranges(&req, &resp, 10), one(0..2));
        req.insert_header("If-Range", "\"v0\"").expect("field");
        assert_eq!(select_ranges(&req, &resp, 10), RangeRequest::Whole);
    }

    #[test]
    fn single_range_head_is_206_with_content_range() {
        let resp = ok_head(&[
            ("Content-Type", "text/plain"),
            ("ETag", "\"v1\""),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "10"),
        ]);
        let (head, body) = run(b"0123456789", &resp, &one(2..5), 3);
        assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(head.reason(), b"Partial Content");
        assert_eq!(field(&head, "content-range"), Some("bytes 2-4/10"));
        assert_eq!(field(&head, "content-length"), Some("3"));
        assert_eq!(field(&head, "content-type"), Some("text/plain"));
        assert_eq!(field(&head, "etag"), Some("\"v1\""));
        assert_eq!(field(&head, "transfer-encoding"), None);
        assert_eq!(body, b"234");
    }

    #[test]
    fn unsatisfiable_head_is_416_with_star_content_range() {
        let resp = ok_head(&[
            ("Content-Type", "text/plain"),
            ("Content-Encoding", "gzip"),
            ("ETag", "\"v1\""),
            ("Transfer-Encoding", "chunked"),
        ]);
        let (head, body) = run(b"0123456789", &resp, &RangeRequest::Unsatisfiable, 4);
        assert_eq!(head.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(field(&head, "content-range"), Some("bytes */10"));
        assert_eq!(field(&head, "content-length"), Some("0"));
        assert_eq!(field(&head, "content-type"), None);
        assert_eq!(field(&head, "content-encoding"), None);
        assert_eq!(field(&head, "transfer-encoding"), None);
        assert_eq!(field(&head, "etag"), Some("\"v1\""));
        assert!(body.is_empty());
    }

    #[test]
    fn whole_head_is_unchanged_and_body_passes_through() {
        let resp = ok_head(&[("Transfer-Encoding", "chunked")]);
        let (head, body) = run(b"0123456789", &resp, &RangeRequest::Whole, 3);
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(field(&head, "transfer-encoding"), Some("chunked"));
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn multipart_body_has_parts_and_closing_delimiter() {
        let resp = ok_head(&[("Content-Type", "text/plain")]);
        let (head, body) = run(b"0123456789", &resp, &ranges(&[0..2, 7..10]), 4);
        let content_type = field(&head, "content-type").expect("content type");
        let boundary = content_type
            .strip_prefix("multipart/byteranges; boundary=")
            .expect("multipart");
        assert_eq!(boundary.len(), 32);
        let expected = format!(
            "\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
             \r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 7-9/10\r\n\r\n789\
             \r\n--{boundary}--\r\n"
        );
        assert_eq!(String::from_utf8(body).expect("utf-8"), expected);
    }

    #[test]
    fn multipart_content_length_is_exact() {
        let body: Vec<u8> = (0..=255).collect();
        for resp in [
            ok_head(&[]),
            ok_head(&[("Content-Type", "application/octet-stream")]),
        ] {
            let (head, out) = run(&body, &resp, &ranges(&[0..1, 10..100, 200..256]), 7);
            let announced: usize = field(&head, "content-length")
                .expect("length")
                .parse()
                .expect("number");
            assert_eq!(out.len(), announced);
        }
    }

    #[test]
    fn multipart_boundaries_differ_between_responses() {
        let resp = ok_head(&[]);
        let two = ranges(&[0..1, 5..6]);
        let (a, _) = range_head(&resp, 10, &two);
        let (b, _) = range_head(&resp, 10, &two);
        assert_ne!(field(&a, "content-type"), field(&b, "content-type"));
    }

    #[test]
    fn hand_built_ranges_are_normalized() {
        let resp = ok_head(&[]);
        let (head, out) = run(b"0123456789", &resp, &ranges(&[5..8, 4..6, 20..30]), 2);
        assert_eq!(field(&head, "content-range"), Some("bytes 4-7/10"));
        assert_eq!(out, b"4567");
        let (head, _) = range_head(&resp, 10, &ranges(&[]));
        assert_eq!(head.status, StatusCode::RANGE_NOT_SATISFIABLE);
    }

    #[test]
    fn body_is_done_once_the_last_range_is_emitted() {
        let resp = ok_head(&[]);
        let (_, mut cutter) = range_head(&resp, 100, &one(10..20));
        let mut out = Vec::new();
        cutter.push(Bytes::from_static(&[0; 15]), &mut out);
        assert!(!cutter.is_done());
        cutter.push(Bytes::from_static(&[1; 5]), &mut out);
        assert!(cutter.is_done());
        assert!(cutter.finish(&mut out));
        assert_eq!(out.concat().len(), 10);
    }

    #[test]
    fn short_body_cannot_finish() {
        let resp = ok_head(&[]);
        let (_, mut cutter) = range_head(&resp, 100, &ranges(&[10..20, 50..60]));
        let mut out = Vec::new();
        cutter.push(Bytes::from_static(&[0; 55]), &mut out);
        assert!(!cutter.finish(&mut out));
    }

    #[test]
    fn output_slices_share_the_pushed_chunk() {
        let resp = ok_head(&[]);
        let (_, mut cutter) = range_head(&resp, 10, &one(2..6));
        let chunk = Bytes::from_static(b"0123456789");
        let mut out = Vec::new();
        cutter.push(chunk.clone(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].as_ptr(), chunk[2..].as_ptr());
    }
}

//! Property tests for the cache's byte ranges (`proxy_runtime::cache::range`).
//!
//! Parsing must survive any input; and for random bodies, random range sets and random
//! ways of cutting the body into chunks, what [`RangeBody`] emits must be exactly the
//! bytes a model computes straight from the body, in the framing the head announces
//! (one slice for a single range, a `multipart/byteranges` body for several), and as
//! long as the announced `Content-Length`.

use std::ops::Range;

use bytes::Bytes;
use proptest::prelude::*;
use proxy_runtime::cache::range::{
    MAX_RANGES, RangeBody, RangeRequest, if_range_allows, parse_range, range_head,
};
use proxy_runtime::http::{ResponseHeader, StatusCode};

/// One range spec as a client might write it, before it meets the body's length.
#[derive(Debug, Clone)]
enum Spec {
    /// `first-last`, with `first <= last`.
    Closed(u64, u64),
    /// `first-`.
    Open(u64),
    /// `-n`.
    Suffix(u64),
}

impl Spec {
    fn text(&self) -> String {
        match self {
            Spec::Closed(first, last) => format!("{first}-{last}"),
            Spec::Open(first) => format!("{first}-"),
            Spec::Suffix(n) => format!("-{n}"),
        }
    }

    /// The bytes it asks for in a body of `len` bytes (empty if none).
    fn wanted(&self, len: u64) -> Range<u64> {
        let range = match *self {
            Spec::Closed(first, last) => first..last + 1,
            Spec::Open(first) => first..u64::MAX,
            Spec::Suffix(n) => len.saturating_sub(n)..len,
        };
        range.start.min(len)..range.end.min(len)
    }
}

/// A spec whose positions fall before, inside and just past a body of `len` bytes.
fn spec(len: u64) -> impl Strategy<Value = Spec> {
    let position = 0..len + 20;
    prop_oneof![
        (position.clone(), position.clone()).prop_map(|(a, b)| Spec::Closed(a.min(b), a.max(b))),
        position.clone().prop_map(Spec::Open),
        position.prop_map(Spec::Suffix),
    ]
}

/// A body, a set of one to eight specs for it, chunk sizes to feed it with, and whether
/// to push an empty chunk between real ones.
fn case() -> impl Strategy<Value = (Vec<u8>, Vec<Spec>, Vec<usize>, bool)> {
    prop::collection::vec(any::<u8>(), 0..5000).prop_flat_map(|body| {
        let len = body.len() as u64;
        (
            Just(body),
            prop::collection::vec(spec(len), 1..8),
            prop::collection::vec(1usize..700, 1..20),
            any::<bool>(),
        )
    })
}

/// A `Range` field value listing `specs`, separated by `separator`.
fn range_field(specs: &[Spec], separator: &str) -> String {
    let specs: Vec<String> = specs.iter().map(Spec::text).collect();
    format!("bytes={}", specs.join(separator))
}

/// Pushes `body` through `cutter` in chunks of the given sizes (used in a cycle) and
/// returns everything emitted, after checking that the body could be finished.
fn feed(cutter: &mut RangeBody, body: &[u8], sizes: &[usize], empty_chunks: bool) -> Vec<u8> {
    let body = Bytes::copy_from_slice(body);
    let mut out = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= body.len() {
            break;
        }
        let end = (at + size).min(body.len());
        cutter.push(body.slice(at..end), &mut out);
        if empty_chunks {
            cutter.push(Bytes::new(), &mut out);
        }
        at = end;
    }
    assert!(cutter.is_done(), "every selected byte was emitted");
    assert!(cutter.finish(&mut out), "a whole body finishes cleanly");
    out.concat()
}

/// The head's `Content-Length` as a number.
fn content_length(head: &ResponseHeader) -> usize {
    let value = head.header_str("content-length").expect("Content-Length");
    value.parse().expect("numeric Content-Length")
}

/// Parses `bytes a-b/len` into `a..b + 1` and `len`.
fn content_range(value: &str) -> (Range<u64>, u64) {
    let rest = value.strip_prefix("bytes ").expect("bytes unit");
    let (span, len) = rest.split_once('/').expect("slash");
    let (first, last) = span.split_once('-').expect("dash");
    let number = |s: &str| s.parse::<u64>().expect("number");
    (number(first)..number(last) + 1, number(len))
}

/// Reads a `multipart/byteranges` body strictly: every delimiter, header line and the
/// closing delimiter must be where RFC 9110 §14.6 puts them. Returns each part's
/// `Content-Type` (if any), range, and bytes.
fn parse_multipart(
    mut body: &[u8],
    boundary: &str,
    len: u64,
) -> Vec<(Option<String>, Range<u64>, Vec<u8>)> {
    let delimiter = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    loop {
        body = body
            .strip_prefix(delimiter.as_bytes())
            .expect("a delimiter opens every part and the end");
        if let Some(after) = body.strip_prefix(b"--\r\n") {
            assert!(after.is_empty(), "nothing follows the closing delimiter");
            return parts;
        }
        body = body
            .strip_prefix(b"\r\n")
            .expect("CRLF after the delimiter");
        let (mut part_type, mut part_range) = (None, None);
        loop {
            let eol = body
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("header line ends with CRLF");
            let line = std::str::from_utf8(&body[..eol]).expect("ASCII header line");
            body = &body[eol + 2..];
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(": ").expect("name: value");
            match name {
                "Content-Type" => part_type = Some(value.to_string()),
                "Content-Range" => part_range = Some(content_range(value)),
                other => panic!("unexpected part header {other}"),
            }
        }
        let (range, total) = part_range.expect("every part has a Content-Range");
        assert_eq!(total, len);
        let size = usize::try_from(range.end - range.start).expect("size");
        parts.push((part_type, range, body[..size].to_vec()));
        body = &body[size..];
    }
}

/// The bytes of `range` within `body`.
fn slice(body: &[u8], range: &Range<u64>) -> Vec<u8> {
    let index = |n: u64| usize::try_from(n).expect("in memory");
    body[index(range.start)..index(range.end)].to_vec()
}

/// Marks the bytes that `ranges` cover.
fn coverage(ranges: impl IntoIterator<Item = Range<u64>>, len: u64) -> Vec<bool> {
    let mut covered = vec![false; usize::try_from(len).expect("in memory")];
    for range in ranges {
        for at in range {
            covered[usize::try_from(at).expect("in memory")] = true;
        }
    }
    covered
}

fn ok_head(content_type: Option<&str>) -> ResponseHeader {
    let mut head = ResponseHeader::new(StatusCode::OK, 4);
    if let Some(value) = content_type {
        head.insert_header("Content-Type", value)
            .expect("valid field");
    }
    head.insert_header("ETag", "\"v1\"").expect("valid field");
    head
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(value in any::<Vec<u8>>(), len in any::<u64>()) {
        let _ = parse_range(&value, len);
    }

    #[test]
    fn parse_never_panics_on_range_like_text(
        value in "(?i)bytes=[-0-9, \t]{0,60}",
        len in prop_oneof![Just(0u64), 0u64..100, any::<u64>()],
    ) {
        if let RangeRequest::Ranges(ranges) = parse_range(value.as_bytes(), len) {
            prop_assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES);
            for range in &ranges {
                prop_assert!(range.start < range.end && range.end <= len);
            }
        }
    }

    #[test]
    fn if_range_never_panics_on_arbitrary_bytes(value in any::<Vec<u8>>()) {
        let mut head = ok_head(None);
        head.insert_header("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT").expect("field");
        head.insert_header("Date", "Sun, 06 Nov 1994 08:49:38 GMT").expect("field");
        let _ = if_range_allows(&value, &head);
    }

    #[test]
    fn parsed_ranges_cover_exactly_the_requested_bytes((body, specs, _, _) in case()) {
        let len = body.len() as u64;
        let header = range_field(&specs, ", ");
        let wanted: Vec<Range<u64>> =
            specs.iter().map(|s| s.wanted(len)).filter(|r| !r.is_empty()).collect();
        let suffix_of_empty =
            len == 0 && specs.iter().any(|s| matches!(s, Spec::Suffix(n) if *n > 0));
        match parse_range(header.as_bytes(), len) {
            RangeRequest::Whole => prop_assert!(suffix_of_empty, "valid specs are not ignored"),
            RangeRequest::Unsatisfiable => prop_assert!(wanted.is_empty() && !suffix_of_empty),
            RangeRequest::Ranges(ranges) => {
                prop_assert!(!wanted.is_empty());
                prop_assert!(ranges.iter().all(|r| r.start < r.end && r.end <= len));
                prop_assert!(
                    ranges.windows(2).all(|w| w[0].end < w[1].start),
                    "ascending, disjoint, not adjacent"
                );
                prop_assert_eq!(coverage(ranges.clone(), len), coverage(wanted.clone(), len));
                if wanted.len() == 1 {
                    prop_assert_eq!(ranges, wanted);
                }
            }
        }
    }

    #[test]
    fn range_body_emits_the_selected_bytes_in_any_chunking(
        (body, specs, sizes, empty_chunks) in case(),
        content_type in prop::option::of(Just("text/plain; charset=utf-8")),
    ) {
        let len = body.len() as u64;
        let header = range_field(&specs, ",");
        let request = parse_range(header.as_bytes(), len);
        let (head, mut cutter) = range_head(&ok_head(content_type), len, &request);
        let out = feed(&mut cutter, &body, &sizes, empty_chunks);
        prop_assert_eq!(out.len() as u64, cutter.content_length());
        prop_assert_eq!(head.header_str("etag"), Some("\"v1\""));
        match request {
            RangeRequest::Whole => {
                prop_assert_eq!(head.status, StatusCode::OK);
                prop_assert_eq!(out, body);
            }
            RangeRequest::Unsatisfiable => {
                prop_assert_eq!(head.status, StatusCode::RANGE_NOT_SATISFIABLE);
                let star = format!("bytes */{len}");
                prop_assert_eq!(head.header_str("content-range"), Some(star.as_str()));
                prop_assert_eq!(content_length(&head), 0);
                prop_assert!(out.is_empty());
            }
            RangeRequest::Ranges(ranges) if ranges.len() == 1 => {
                prop_assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
                prop_assert_eq!(content_length(&head), out.len());
                let field = head.header_str("content-range").expect("Content-Range");
                let (announced, total) = content_range(field);
                prop_assert_eq!(total, len);
                prop_assert_eq!(&announced, &ranges[0]);
                prop_assert_eq!(out, slice(&body, &ranges[0]));
            }
            RangeRequest::Ranges(ranges) => {
                prop_assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
                prop_assert_eq!(content_length(&head), out.len());
                let multipart = head.header_str("content-type").expect("Content-Type");
                let boundary = multipart
                    .strip_prefix("multipart/byteranges; boundary=")
                    .expect("multipart");
                let parts = parse_multipart(&out, boundary, len);
                prop_assert_eq!(parts.len(), ranges.len());
                for ((part_type, part_range, bytes), range) in parts.into_iter().zip(&ranges) {
                    prop_assert_eq!(part_type.as_deref(), content_type);
                    prop_assert_eq!(&part_range, range);
                    prop_assert_eq!(bytes, slice(&body, range));
                }
            }
        }
    }

    #[test]
    fn hand_built_ranges_emit_what_they_announce(
        body in prop::collection::vec(any::<u8>(), 0..600),
        raw in prop::collection::vec((0u64..700, 0u64..700), 0..12),
        sizes in prop::collection::vec(1usize..100, 1..8),
    ) {
        let len = body.len() as u64;
        let request = RangeRequest::Ranges(raw.iter().map(|&(a, b)| a..b).collect());
        let (head, mut cutter) = range_head(&ok_head(None), len, &request);
        let out = feed(&mut cutter, &body, &sizes, false);
        prop_assert_eq!(content_length(&head), out.len());
        let wanted = coverage(raw.iter().map(|&(a, b)| a.min(len)..b.min(len)), len);
        if wanted.iter().any(|&b| b) {
            prop_assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
        } else {
            prop_assert_eq!(head.status, StatusCode::RANGE_NOT_SATISFIABLE);
        }
    }
}

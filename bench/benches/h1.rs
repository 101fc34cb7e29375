//! HTTP/1 request heads: parsing (`parse_request`) and serialization
//! (`RequestHeader::write_h1`) of a browser-like head of 13 header fields.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p proxy-bench --bench h1
//! ```
//!
//! * `h1/parse`: the head is in a fresh `BytesMut` (made outside the timed region, as a
//!   connection's read buffer would be); `parse_request` turns it into a
//!   `ParsedRequest` (the header map, the URI, framing and keep-alive decided).
//! * `h1/write`: `write_h1` of the parsed head into a reused buffer.
//! * `h1/parse+write`: what a proxy does to every request head it forwards, in steady
//!   state: the head is copied into a reused read buffer (as a socket read would),
//!   parsed, written into a reused output buffer, and the parsed head dropped, all timed.

#![allow(missing_docs)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use proxy_bench::BROWSER_REQUEST;
use proxy_runtime::protocols::h1::head::{HeadLimits, ParsedRequest, parse_request};

fn parse(buf: &mut BytesMut, limits: &HeadLimits) -> ParsedRequest {
    match parse_request(buf, limits) {
        Ok(Some(p)) => p,
        other => panic!("the sample head does not parse: {other:?}"),
    }
}

fn h1(c: &mut Criterion) {
    let limits = HeadLimits::default();
    let parsed = parse(&mut BytesMut::from(BROWSER_REQUEST), &limits);
    assert_eq!(parsed.header.headers().len(), 13);
    let mut out = BytesMut::with_capacity(2048);
    parsed.header.write_h1(&mut out);
    assert!(
        out.starts_with(
            b"GET /repos/octocat/hello-world/issues?state=open&per_page=50 HTTP/1.1\r\n"
        )
    );
    assert!(out.ends_with(b"\r\n\r\n"));

    let mut g = c.benchmark_group("h1");
    g.throughput(Throughput::Bytes(BROWSER_REQUEST.len() as u64));
    g.bench_function("parse", |b| {
        b.iter_batched_ref(
            || BytesMut::from(BROWSER_REQUEST),
            |buf| parse(black_box(buf), &limits),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("write", |b| {
        b.iter(|| {
            out.clear();
            black_box(&parsed.header).write_h1(&mut out);
            black_box(out.len())
        })
    });
    let mut read_buf = BytesMut::with_capacity(4096);
    g.bench_function("parse+write", |b| {
        b.iter(|| {
            read_buf.extend_from_slice(BROWSER_REQUEST);
            let p = parse(black_box(&mut read_buf), &limits);
            out.clear();
            p.header.write_h1(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, h1);
criterion_main!(benches);

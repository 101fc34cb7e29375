//! HTTP/1.x body framing: decoding what arrives and encoding what we send.
//!
//! [`BodyDecoder`] turns bytes from the read buffer into body events without copying
//! (data chunks are split off the buffer as `Bytes`). The chunked decoder is strict: hex
//! sizes without overflow, chunk extensions only after a `;`, CRLF line endings only,
//! and bounded size lines and trailer sections. [`BodyEncoder`] frames outgoing data
//! (by length, chunked with trailers, or delimited by closing the connection).

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::head::BodyFraming;

/// The longest chunk-size line (size + extensions) we accept.
const MAX_CHUNK_LINE: usize = 4096;
/// The largest trailer section we accept.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// One step of a body being read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyEvent {
    /// Some body bytes.
    Data(Bytes),
    /// Trailer fields (chunked only); always followed by [`BodyEvent::End`].
    Trailers(HeaderMap),
    /// The body is complete.
    End,
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The chunked framing is malformed.
    BadChunk(&'static str),
    /// The connection closed before the body was complete.
    Truncated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailer section (or the final CRLF).
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodeState {
    Length(u64),
    Chunked(ChunkState),
    UntilClose,
    Done,
}

/// Reads one body out of a connection's read buffer.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    state: DecodeState,
    /// Bytes of body payload delivered so far.
    received: u64,
}

impl BodyDecoder {
    /// A decoder for a body with this framing.
    pub fn new(framing: BodyFraming) -> Self {
        let state = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => DecodeState::Done,
            BodyFraming::Length(n) => DecodeState::Length(n),
            BodyFraming::Chunked => DecodeState::Chunked(ChunkState::Size),
            BodyFraming::UntilClose => DecodeState::UntilClose,
        };
        BodyDecoder { state, received: 0 }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.state == DecodeState::Done
    }

    /// Payload bytes delivered so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Payload bytes still expected of a `Content-Length` body (`None` for other
    /// framings and once done).
    pub fn remaining_length(&self) -> Option<u64> {
        match self.state {
            DecodeState::Length(n) => Some(n),
            _ => None,
        }
    }

    /// Count `n` bytes of a `Content-Length` body as received without passing through
    /// the decoder (they went socket to socket in the kernel). Other framings, and more
    /// bytes than remain, are ignored: callers splice only what
    /// [`BodyDecoder::remaining_length`] allows.
    pub fn spliced(&mut self, n: u64) {
        if let DecodeState::Length(left) = self.state
            && n <= left
        {
            self.received += n;
            self.state = if n == left {
                DecodeState::Done
            } else {
                DecodeState::Length(left - n)
            };
        }
    }

    /// How many payload bytes are still expected, when that is known (Content-Length) —
    /// used to size reads.
    pub fn remaining_hint(&self) -> Option<u64> {
        match self.state {
            DecodeState::Length(n) => Some(n),
            DecodeState::Chunked(ChunkState::Data(n)) => Some(n),
            _ => None,
        }
    }

    /// Take the next event out of `buf`. `Ok(None)` means more input is needed;
    /// `eof` says the connection has closed, so no more input will come.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
    ) -> Result<Option<BodyEvent>, BodyError> {
        loop {
            match self.state {
                DecodeState::Done => return Ok(Some(BodyEvent::End)),
                DecodeState::Length(remaining) => {
                    if buf.is_empty() {
                        return if eof {
                            Err(BodyError::Truncated)
                        } else {
                            Ok(None)
                        };
                    }
                    let n = (buf.len() as u64).min(remaining) as usize;
                    let data = buf.split_to(n).freeze();
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        DecodeState::Done
                    } else {
                        DecodeState::Length(left)
                    };
                    self.received += n as u64;
                    return Ok(Some(BodyEvent::Data(data)));
                }
                DecodeState::UntilClose => {
                    if !buf.is_empty() {
                        let data = buf.split().freeze();
                        self.received += data.len() as u64;
                        return Ok(Some(BodyEvent::Data(data)));
                    }
                    if eof {
                        self.state = DecodeState::Done;
                        return Ok(Some(BodyEvent::End));
                    }
                    return Ok(None);
                }
                DecodeState::Chunked(chunk) => match self.decode_chunked(chunk, buf)? {
                    Step::Event(ev) => return Ok(Some(ev)),
                    Step::Continue => continue,
                    Step::NeedMore => {
                        return if eof {
                            Err(BodyError::Truncated)
                        } else {
                            Ok(None)
                        };
                    }
                },
            }
        }
    }

    fn decode_chunked(&mut self, chunk: ChunkState, buf: &mut BytesMut) -> Result<Step, BodyError> {
        match chunk {
            ChunkState::Size => {
                let Some(line_end) = find_crlf(buf, MAX_CHUNK_LINE)? else {
                    return Ok(Step::NeedMore);
                };
                let size = parse_chunk_size(&buf[..line_end])?;
                let _ = buf.split_to(line_end + 2);
                self.state = DecodeState::Chunked(if size == 0 {
                    ChunkState::Trailers
                } else {
                    ChunkState::Data(size)
                });
                Ok(Step::Continue)
            }
            ChunkState::Data(remaining) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = (buf.len() as u64).min(remaining) as usize;
                let data = buf.split_to(n).freeze();
                let left = remaining - n as u64;
                self.state = DecodeState::Chunked(if left == 0 {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(left)
                });
                self.received += n as u64;
                Ok(Step::Event(BodyEvent::Data(data)))
            }
            ChunkState::DataEnd => {
                if buf.len() < 2 {
                    if buf.first().is_some_and(|&b| b != b'\r') {
                        return Err(BodyError::BadChunk("chunk data not followed by CRLF"));
                    }
                    return Ok(Step::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(BodyError::BadChunk("chunk data not followed by CRLF"));
                }
                let _ = buf.split_to(2);
                self.state = DecodeState::Chunked(ChunkState::Size);
                Ok(Step::Continue)
            }
            ChunkState::Trailers => {
                // Only CRLF ends a line here: httparse would also take a bare LF, and a
                // peer that reads the next bytes differently would see another message.
                if buf.first() == Some(&b'\n') {
                    return Err(BodyError::BadChunk("bare LF in trailers"));
                }
                if buf.len() >= 2 && &buf[..2] == b"\r\n" {
                    let _ = buf.split_to(2);
                    self.state = DecodeState::Done;
                    return Ok(Step::Event(BodyEvent::End));
                }
                if buf.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                let mut slots = [httparse::EMPTY_HEADER; 32];
                match httparse::parse_headers(&buf[..], &mut slots) {
                    Ok(httparse::Status::Complete((len, fields))) => {
                        let section = &buf[..len];
                        let bare_lf = section
                            .iter()
                            .enumerate()
                            .any(|(i, &b)| b == b'\n' && (i == 0 || section[i - 1] != b'\r'));
                        if bare_lf {
                            return Err(BodyError::BadChunk("bare LF in trailers"));
                        }
                        let mut trailers = HeaderMap::with_capacity(fields.len());
                        for f in fields {
                            let (Ok(name), Ok(value)) = (
                                HeaderName::from_bytes(f.name.as_bytes()),
                                HeaderValue::from_bytes(f.value),
                            ) else {
                                return Err(BodyError::BadChunk("invalid trailer field"));
                            };
                            trailers.append(name, value);
                        }
                        let _ = buf.split_to(len);
                        self.state = DecodeState::Done;
                        crate::http::trailers::drop_disallowed(&mut trailers);
                        Ok(Step::Event(BodyEvent::Trailers(trailers)))
                    }
                    Ok(httparse::Status::Partial) => {
                        if buf.len() > MAX_TRAILER_BYTES {
                            Err(BodyError::BadChunk("trailer section too large"))
                        } else {
                            Ok(Step::NeedMore)
                        }
                    }
                    Err(_) => Err(BodyError::BadChunk("invalid trailer section")),
                }
            }
        }
    }
}

enum Step {
    Event(BodyEvent),
    Continue,
    NeedMore,
}

/// Position of the CRLF that ends the first line of `buf`, within `max` bytes.
fn find_crlf(buf: &[u8], max: usize) -> Result<Option<usize>, BodyError> {
    match buf.iter().take(max + 2).position(|&b| b == b'\n') {
        Some(0) => Err(BodyError::BadChunk("bare LF in chunk size line")),
        Some(i) if buf[i - 1] == b'\r' => Ok(Some(i - 1)),
        Some(_) => Err(BodyError::BadChunk("bare LF in chunk size line")),
        None if buf.len() > max => Err(BodyError::BadChunk("chunk size line too long")),
        None => Ok(None),
    }
}

/// `chunk-size [ chunk-ext ]` (RFC 9112 §7.1): hex digits, then optional `;ext` parts.
fn parse_chunk_size(line: &[u8]) -> Result<u64, BodyError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(BodyError::BadChunk("missing chunk size"));
    }
    if digits > 16 {
        return Err(BodyError::BadChunk("chunk size overflows"));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0);
        size = (size << 4) | u64::from(d);
    }
    let rest = &line[digits..];
    // Only whitespace before ';' (BWS) and a well-formed-enough extension after it.
    let ws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest_trimmed = &rest[ws..];
    match rest_trimmed.first() {
        None if rest.is_empty() => Ok(size),
        None => Err(BodyError::BadChunk("whitespace after chunk size")),
        Some(b';') => {
            if rest_trimmed
                .iter()
                .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
            {
                Ok(size)
            } else {
                Err(BodyError::BadChunk("invalid chunk extension"))
            }
        }
        Some(_) => Err(BodyError::BadChunk("invalid chunk size")),
    }
}

/// How outgoing body bytes are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoder {
    /// No body may be sent.
    Empty,
    /// Exactly this many more bytes.
    Length(u64),
    /// Chunked; `true` once the last chunk has been written.
    Chunked(bool),
    /// Raw bytes; the end is marked by closing the connection.
    UntilClose,
}

impl BodyEncoder {
    /// The encoder for `framing` (`UntilClose` stays raw).
    pub fn new(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::Empty => BodyEncoder::Empty,
            BodyFraming::Length(n) => BodyEncoder::Length(n),
            BodyFraming::Chunked => BodyEncoder::Chunked(false),
            BodyFraming::UntilClose => BodyEncoder::UntilClose,
        }
    }

    /// Frame `data` into `out`: chunk header/trailer go into `small`, the payload is
    /// either copied there (short) or returned to be written as its own slice.
    /// Returns `Err` when more bytes are given than `Content-Length` allows.
    pub fn encode(
        &mut self,
        data: Bytes,
        small: &mut BytesMut,
    ) -> Result<Option<Bytes>, &'static str> {
        if data.is_empty() {
            return Ok(None);
        }
        match self {
            BodyEncoder::Empty => Err("body sent on a message that has none"),
            BodyEncoder::Length(left) => {
                if data.len() as u64 > *left {
                    return Err("body longer than Content-Length");
                }
                *left -= data.len() as u64;
                Ok(copy_if_small(data, small))
            }
            BodyEncoder::Chunked(true) => Err("body after the last chunk"),
            BodyEncoder::Chunked(false) => {
                write_hex(small, data.len());
                small.put_slice(b"\r\n");
                let rest = copy_if_small(data, small);
                if rest.is_none() {
                    small.put_slice(b"\r\n");
                }
                Ok(rest)
            }
            BodyEncoder::UntilClose => Ok(copy_if_small(data, small)),
        }
    }

    /// After a payload slice returned by [`BodyEncoder::encode`] was queued: what goes
    /// after it (the chunk's CRLF).
    pub fn after_large(&self, small: &mut BytesMut) {
        if matches!(self, BodyEncoder::Chunked(_)) {
            small.put_slice(b"\r\n");
        }
    }

    /// End the body: the last chunk and trailers for chunked; checks the length for
    /// Content-Length. Returns `Err` if the body is shorter than announced.
    pub fn finish(
        &mut self,
        trailers: Option<&HeaderMap>,
        small: &mut BytesMut,
    ) -> Result<(), &'static str> {
        match self {
            BodyEncoder::Chunked(false) => {
                small.put_slice(b"0\r\n");
                if let Some(t) = trailers {
                    for (name, value) in t {
                        small.put_slice(name.as_str().as_bytes());
                        small.put_slice(b": ");
                        small.put_slice(value.as_bytes());
                        small.put_slice(b"\r\n");
                    }
                }
                small.put_slice(b"\r\n");
                *self = BodyEncoder::Chunked(true);
                Ok(())
            }
            BodyEncoder::Length(left) if *left > 0 => Err("body shorter than Content-Length"),
            _ => Ok(()),
        }
    }

    /// Bytes still owed of a `Content-Length` body (`None` for other framings).
    pub fn remaining_length(&self) -> Option<u64> {
        match self {
            BodyEncoder::Length(n) => Some(*n),
            _ => None,
        }
    }

    /// Count `n` bytes of a `Content-Length` body as sent by other means (socket to
    /// socket in the kernel); at most what remains.
    pub fn spliced(&mut self, n: u64) {
        if let BodyEncoder::Length(left) = self {
            *left -= n.min(*left);
        }
    }

    /// Whether everything announced has been written.
    pub fn is_complete(&self) -> bool {
        match self {
            BodyEncoder::Empty | BodyEncoder::UntilClose => true,
            BodyEncoder::Length(n) => *n == 0,
            BodyEncoder::Chunked(done) => *done,
        }
    }
}

/// Payloads up to this size are copied next to their framing: one buffer, one write.
const COPY_THRESHOLD: usize = 4096;

fn copy_if_small(data: Bytes, small: &mut BytesMut) -> Option<Bytes> {
    if data.len() <= COPY_THRESHOLD {
        small.put_slice(&data);
        None
    } else {
        Some(data)
    }
}

fn write_hex(out: &mut BytesMut, mut n: usize) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        framing: BodyFraming,
        input: &[u8],
    ) -> Result<(Vec<u8>, Option<HeaderMap>), BodyError> {
        let mut d = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut trailers = None;
        // Feed one byte at a time: the decoder must cope with any split.
        let mut input = input.iter();
        loop {
            match d.decode(&mut buf, input.len() == 0)? {
                Some(BodyEvent::Data(b)) => body.extend_from_slice(&b),
                Some(BodyEvent::Trailers(t)) => trailers = Some(t),
                Some(BodyEvent::End) => return Ok((body, trailers)),
                None => buf.put_u8(*input.next().expect("decoder wants more than the input")),
            }
        }
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let (body, trailers) = decode_all(
            BodyFraming::Chunked,
            b"5;name=val\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n",
        )
        .unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(trailers.unwrap()["x-sum"], "42");
    }

    /// Decode `input` handed over in one piece (as one read would deliver it).
    fn decode_at_once(
        framing: BodyFraming,
        input: &[u8],
    ) -> Result<(Vec<u8>, Option<HeaderMap>), BodyError> {
        let mut d = BodyDecoder::new(framing);
        let mut buf = BytesMut::from(input);
        let mut body = Vec::new();
        let mut trailers = None;
        loop {
            match d.decode(&mut buf, true)? {
                Some(BodyEvent::Data(b)) => body.extend_from_slice(&b),
                Some(BodyEvent::Trailers(t)) => trailers = Some(t),
                Some(BodyEvent::End) => return Ok((body, trailers)),
                None => panic!("decoder wants more than the input"),
            }
        }
    }

    #[test]
    fn bare_lf_in_the_trailer_section_is_rejected_however_the_bytes_arrive() {
        for bad in [
            &b"5\r\nhello\r\n0\r\n\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"5\r\nhello\r\n0\r\nX-T: 1\n\n",
            b"5\r\nhello\r\n0\r\nX-T: 1\r\n\n",
            b"5\r\nhello\r\n0\r\nX-T: 1\nX-U: 2\r\n\r\n",
        ] {
            let text = String::from_utf8_lossy(bad);
            for (how, got) in [
                ("at once", decode_at_once(BodyFraming::Chunked, bad)),
                ("byte by byte", decode_all(BodyFraming::Chunked, bad)),
            ] {
                assert!(
                    matches!(got, Err(BodyError::BadChunk(_))),
                    "accepted {text:?} {how}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn trailers_lose_the_fields_no_trailer_may_carry() {
        let input = b"1\r\na\r\n0\r\nContent-Length: 50\r\nHost: evil\r\nX-Sum: 7\r\n\r\n";
        let (body, trailers) = decode_at_once(BodyFraming::Chunked, input).unwrap();
        assert_eq!(body, b"a");
        let trailers = trailers.unwrap();
        assert_eq!(trailers.len(), 1, "{trailers:?}");
        assert_eq!(trailers["x-sum"], "7");
    }

    #[test]
    fn chunked_rejects_malformed_sizes() {
        for bad in [
            &b"x\r\n"[..],
            b"-1\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"11111111111111111\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(
                matches!(
                    decode_all(BodyFraming::Chunked, bad),
                    Err(BodyError::BadChunk(_))
                ),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn truncated_bodies_are_errors() {
        assert_eq!(
            decode_all(BodyFraming::Length(10), b"abc").unwrap_err(),
            BodyError::Truncated
        );
        assert_eq!(
            decode_all(BodyFraming::Chunked, b"5\r\nab").unwrap_err(),
            BodyError::Truncated
        );
    }

    #[test]
    fn until_close_ends_at_eof() {
        let (body, _) = decode_all(BodyFraming::UntilClose, b"all of it").unwrap();
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn length_leaves_the_next_message_alone() {
        let mut d = BodyDecoder::new(BodyFraming::Length(3));
        let mut buf = BytesMut::from(&b"abcGET"[..]);
        assert_eq!(
            d.decode(&mut buf, false).unwrap(),
            Some(BodyEvent::Data(Bytes::from_static(b"abc")))
        );
        assert_eq!(d.decode(&mut buf, false).unwrap(), Some(BodyEvent::End));
        assert_eq!(&buf[..], b"GET");
    }

    #[test]
    fn chunked_encoding_round_trips() {
        let mut e = BodyEncoder::new(BodyFraming::Chunked);
        let mut out = BytesMut::new();
        assert!(
            e.encode(Bytes::from_static(b"hello"), &mut out)
                .unwrap()
                .is_none()
        );
        let big = Bytes::from(vec![b'x'; 5000]);
        let rest = e.encode(big.clone(), &mut out).unwrap().unwrap();
        out.put_slice(&rest);
        e.after_large(&mut out);
        let mut t = HeaderMap::new();
        t.insert("x-t", HeaderValue::from_static("1"));
        e.finish(Some(&t), &mut out).unwrap();
        let (body, trailers) = decode_all(BodyFraming::Chunked, &out).unwrap();
        assert_eq!(body.len(), 5005);
        assert_eq!(trailers.unwrap()["x-t"], "1");
    }

    #[test]
    fn length_encoder_enforces_the_length() {
        let mut e = BodyEncoder::new(BodyFraming::Length(3));
        let mut out = BytesMut::new();
        assert!(e.encode(Bytes::from_static(b"abcd"), &mut out).is_err());
        e.encode(Bytes::from_static(b"ab"), &mut out).unwrap();
        assert!(e.finish(None, &mut out).is_err());
    }
}

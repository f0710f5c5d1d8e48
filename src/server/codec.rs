//! Inbound framing: tokio-util's `LinesCodec` with a maximum length, wrapped so that a too-long
//! or non-UTF-8 line becomes an item the session answers with `ERR` instead of an error that ends
//! the stream.
//!
//! Before framing, bytes pass a small telnet filter: IAC sequences (option negotiation, and the
//! commands telnet sends for Ctrl-C and friends) are removed. Byte 0xFF never
//! occurs in UTF-8, so this cannot alter a UTF-8 client's text.

use crate::rooms::outbox::SocketOf;
use bytes::BytesMut;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;

/// One inbound line, or the reason it was discarded.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, its LF or CRLF removed.
    Text(String),
    /// The line was longer than the limit; its bytes were discarded up to the next LF.
    TooLong,
    /// The line was not valid UTF-8 and was discarded.
    BadUtf8,
    /// The stream opened with a TLS handshake record (a ClientHello on the plain port); its
    /// bytes were discarded.
    TlsHello,
}

/// Telnet interpret-as-command byte.
const IAC: u8 = 0xFF;
/// Subnegotiation begin / end.
const SB: u8 = 0xFA;
const SE: u8 = 0xF0;
/// WILL, WONT, DO, DONT: followed by one option byte.
const WILL: u8 = 0xFB;
const DONT: u8 = 0xFE;

/// Where the telnet filter is inside an IAC sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Telnet {
    #[default]
    Data,
    Iac,
    Option,
    Sub,
    SubIac,
}

impl Telnet {
    /// Feeds one byte; returns whether it is data to keep.
    fn keep(&mut self, b: u8) -> bool {
        let (next, keep) = match (*self, b) {
            // A line feed always ends whatever sequence was open: a broken or hostile client
            // cannot make the server swallow its following lines.
            (_, b'\n') => (Telnet::Data, true),
            (Telnet::Data, IAC) => (Telnet::Iac, false),
            (Telnet::Data, _) => (Telnet::Data, true),
            (Telnet::Iac, WILL..=DONT) => (Telnet::Option, false),
            (Telnet::Iac, SB) => (Telnet::Sub, false),
            (Telnet::Iac, _) => (Telnet::Data, false), // IAC IAC, IAC IP, IAC NOP, ...
            (Telnet::Option, _) => (Telnet::Data, false),
            (Telnet::Sub, IAC) => (Telnet::SubIac, false),
            (Telnet::Sub, _) => (Telnet::Sub, false),
            (Telnet::SubIac, SE) => (Telnet::Data, false),
            (Telnet::SubIac, _) => (Telnet::Sub, false),
        };
        *self = next;
        keep
    }
}

/// Decoder for client lines. Never buffers more than the limit (plus one byte for a CR) of a
/// single line.
#[derive(Debug)]
pub struct LineCodec {
    /// Its maximum length is the line limit plus one (for a CR before the LF).
    inner: LinesCodec,
    telnet: Telnet,
    /// Filtered bytes not yet framed into a line.
    filtered: BytesMut,
    /// Whether the stream's first bytes have been looked at (for [`Line::TlsHello`]).
    started: bool,
    /// `LinesCodec` may be discarding the rest of an overlong line (it does not say; this is
    /// set when it reports one and cleared once a later line comes out).
    discarding: bool,
}

impl LineCodec {
    /// A codec accepting lines of at most `max_line` bytes, not counting the line ending.
    pub fn new(max_line: usize) -> Self {
        LineCodec {
            // One extra byte so a CR before the LF does not count against the limit.
            inner: LinesCodec::new_with_max_length(max_line.saturating_add(1)),
            telnet: Telnet::default(),
            filtered: BytesMut::new(),
            started: false,
            discarding: false,
        }
    }

    /// Moves `buf` through the telnet filter into `self.filtered`.
    fn filter(&mut self, buf: &mut BytesMut) {
        if self.telnet == Telnet::Data && !buf.contains(&IAC) {
            // The common case: nothing to strip.
            if self.filtered.is_empty() {
                std::mem::swap(&mut self.filtered, buf);
            } else {
                self.filtered.extend_from_slice(buf);
                buf.clear();
            }
            return;
        }
        for &b in buf.iter() {
            if self.telnet.keep(b) {
                self.filtered.extend_from_slice(&[b]);
            }
        }
        buf.clear();
    }

    fn map(
        &mut self,
        r: Result<Option<String>, LinesCodecError>,
    ) -> Result<Option<Line>, io::Error> {
        if let Ok(Some(_)) = r {
            self.discarding = false;
        }
        match r {
            Ok(Some(s)) if s.len() >= self.inner.max_length() => Ok(Some(Line::TooLong)),
            Ok(Some(s)) => Ok(Some(Line::Text(s))),
            Ok(None) => Ok(None),
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                self.discarding = true;
                Ok(Some(Line::TooLong))
            }
            // LinesCodec does no I/O itself: its only I/O error is the UTF-8 check, raised after
            // the offending line was already taken out of the buffer.
            Err(LinesCodecError::Io(e)) if e.kind() == io::ErrorKind::InvalidData => {
                Ok(Some(Line::BadUtf8))
            }
            Err(LinesCodecError::Io(e)) => Err(e),
        }
    }
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, io::Error> {
        if !self.started {
            match buf.as_ref() {
                [] => return Ok(None),
                // The record type alone: wait for the version byte, filtering nothing yet.
                [0x16] => return Ok(None),
                first => {
                    self.started = true;
                    if crate::server::tls::looks_like_tls(first) {
                        buf.clear();
                        return Ok(Some(Line::TlsHello));
                    }
                }
            }
        }
        self.filter(buf);
        let r = self.inner.decode(&mut self.filtered);
        self.map(r)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, io::Error> {
        self.filter(buf);
        let r = self.inner.decode_eof(&mut self.filtered);
        self.map(r)
    }
}

impl LineCodec {
    /// A codec for a stream whose first bytes were already looked at.
    fn resumed(max_line: usize) -> Self {
        LineCodec {
            started: true,
            ..LineCodec::new(max_line)
        }
    }

    /// Whether the codec holds nothing a new one would not (given whether it has `started`):
    /// no bytes, no telnet sequence open, no overlong line being discarded.
    fn is_at_rest(&self) -> bool {
        self.filtered.is_empty() && self.telnet == Telnet::Data && !self.discarding
    }
}

/// Where a [`LineReader`] gets its bytes: a plain socket (read on readiness, so an idle one
/// holds no buffer) or any async byte stream (a TLS session).
pub trait ReadSource {
    /// Reads what is available into `buf`; `Ok(0)` at end of stream.
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>>;
}

impl ReadSource for &TcpStream {
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        loop {
            // Readiness first, then a read into the stack: the buffer grows by what came, not
            // by a whole chunk, so a connection between lines holds (and churns) no big block.
            std::task::ready!(self.poll_read_ready(cx))?;
            let mut chunk = [0u8; READ_CHUNK];
            match self.try_read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return Poll::Ready(Ok(n));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl ReadSource for SocketOf {
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        let mut socket = self.socket()?;
        socket.poll_read_into(cx, buf)
    }
}

/// An async byte stream as a [`ReadSource`]: bytes go through a stack buffer, so nothing is
/// held between reads beyond what the stream itself keeps.
#[derive(Debug)]
pub struct Stream<T>(pub T);

impl<T: AsyncRead + Unpin> ReadSource for Stream<T> {
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        let mut chunk = [0u8; READ_CHUNK];
        let mut read = ReadBuf::new(&mut chunk);
        std::task::ready!(Pin::new(&mut self.0).poll_read(cx, &mut read))?;
        buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    }
}

/// Reads lines with [`LineCodec`] from a [`ReadSource`], holding no buffer and no framing
/// state while the connection is idle: those are allocated when bytes arrive, and given back
/// once every complete line has been taken (an idle connection's task keeps one pointer for
/// them). Cancel-safe: dropping [`LineReader::next_line`] mid-way loses nothing.
#[derive(Debug)]
pub struct LineReader<R> {
    read: R,
    /// What is between lines: bytes read and not yet framed, and the codec's state.
    pending: Option<Box<Pending>>,
    max_line: u32,
    /// No byte has come yet (the codec looks at the first ones for a TLS hello).
    fresh: bool,
    eof: bool,
}

#[derive(Debug)]
struct Pending {
    buf: BytesMut,
    codec: LineCodec,
}

impl<R: ReadSource> LineReader<R> {
    /// A reader of lines of at most `max_line` bytes (at most `u32::MAX`).
    pub fn new(read: R, max_line: usize) -> Self {
        LineReader {
            read,
            pending: None,
            max_line: u32::try_from(max_line).unwrap_or(u32::MAX),
            fresh: true,
            eof: false,
        }
    }

    /// The next line; `None` at end of stream. Cancel-safe: what was read stays in the
    /// reader. A plain poll, not an `async fn`: the future is one pointer, and every idle
    /// session holds one.
    pub fn next_line(&mut self) -> impl Future<Output = Option<io::Result<Line>>> + Send + '_
    where
        R: Send,
    {
        std::future::poll_fn(move |cx| self.poll_next(cx))
    }

    /// Polls for the next line.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Line>>> {
        let max_line = self.max_line as usize;
        let fresh = self.fresh;
        let p = self.pending.get_or_insert_with(|| {
            Box::new(Pending {
                buf: BytesMut::new(),
                codec: if fresh {
                    LineCodec::new(max_line)
                } else {
                    LineCodec::resumed(max_line)
                },
            })
        });
        loop {
            if self.eof {
                return Poll::Ready(p.codec.decode_eof(&mut p.buf).transpose());
            }
            match p.codec.decode(&mut p.buf) {
                Ok(Some(line)) => return Poll::Ready(Some(Ok(line))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            let read = match self.read.poll_read_into(cx, &mut p.buf) {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    // Between lines: give the buffers and the codec back.
                    self.fresh = !p.codec.started;
                    if p.buf.is_empty() && p.codec.is_at_rest() {
                        self.pending = None;
                    }
                    return Poll::Pending;
                }
            };
            match read {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(max: usize, input: &[u8]) -> Vec<Line> {
        let mut c = LineCodec::new(max);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(l) = c.decode(&mut buf).unwrap() {
            out.push(l);
        }
        while let Some(l) = c.decode_eof(&mut buf).unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn lf_and_crlf() {
        assert_eq!(
            decode_all(10, b"a\r\nbb\nccc"),
            vec![
                Line::Text("a".into()),
                Line::Text("bb".into()),
                Line::Text("ccc".into())
            ]
        );
    }

    #[test]
    fn too_long_then_next_line_works() {
        assert_eq!(
            decode_all(5, b"12345678901234\n#ping\r\n12345\r\n123456\n"),
            vec![
                Line::TooLong,
                Line::Text("#ping".into()),
                Line::Text("12345".into()),
                Line::TooLong
            ]
        );
    }

    #[test]
    fn telnet_sequences_are_stripped_and_nul_kept_for_sanitize() {
        // IAC DO ECHO, IAC WILL SGA, a subnegotiation, IAC IP (Ctrl-C), IAC IAC. A NUL is
        // data here: `protocol::sanitize` removes it, and the password check sees it.
        let input =
            b"\xff\xfd\x01he\xff\xfb\x03llo\xff\xfa\x18\x01\xff\xf0 wo\x00rld\xff\xf4\xff\xff\n";
        assert_eq!(
            decode_all(100, input),
            vec![Line::Text("hello wo\0rld".into())]
        );
    }

    #[test]
    fn an_unfinished_subnegotiation_ends_at_the_line_feed() {
        assert_eq!(
            decode_all(100, b"a\xff\xfa\x18junk\n#quit\n"),
            vec![Line::Text("a".into()), Line::Text("#quit".into())]
        );
    }

    #[test]
    fn telnet_sequence_split_across_reads() {
        let mut c = LineCodec::new(100);
        let mut buf = BytesMut::from(&b"ab\xff"[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"\xfd");
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"\x01cd\n");
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Line::Text("abcd".into())));
    }

    #[test]
    fn a_client_hello_first_is_told_apart_and_only_first() {
        let mut c = LineCodec::new(100);
        let mut buf = BytesMut::from(&[0x16u8][..]);
        assert_eq!(c.decode(&mut buf).unwrap(), None); // one byte: not decided yet
        buf.extend_from_slice(&[0x03, 0x01, 0x02, 0x00]);
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Line::TlsHello));
        assert!(buf.is_empty());
        // Later bytes of the same shape are text like any other.
        assert_eq!(
            decode_all(100, b"hi\n\x16\x03x\n"),
            vec![Line::Text("hi".into()), Line::Text("\u{16}\u{3}x".into())]
        );
    }

    #[test]
    fn bad_utf8_then_next_line_works() {
        assert_eq!(
            decode_all(10, b"caf\xe9\n#ping\n"),
            vec![Line::BadUtf8, Line::Text("#ping".into())]
        );
    }

    /// A source that yields its chunks one per poll, `Pending` after each (as a socket
    /// between packets), then end of stream.
    struct Chunks(std::collections::VecDeque<Option<&'static [u8]>>);

    impl ReadSource for Chunks {
        fn poll_read_into(
            &mut self,
            _cx: &mut Context<'_>,
            buf: &mut BytesMut,
        ) -> Poll<io::Result<usize>> {
            match self.0.pop_front() {
                Some(Some(bytes)) => {
                    buf.extend_from_slice(bytes);
                    Poll::Ready(Ok(bytes.len()))
                }
                Some(None) => Poll::Pending,
                None => Poll::Ready(Ok(0)),
            }
        }
    }

    /// Polls `r` until it is pending or done: the lines, and whether it ended.
    fn drain(r: &mut LineReader<Chunks>) -> (Vec<Line>, bool) {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        loop {
            match r.poll_next(&mut cx) {
                Poll::Ready(Some(l)) => out.push(l.unwrap()),
                Poll::Ready(None) => return (out, true),
                Poll::Pending => return (out, false),
            }
        }
    }

    fn reader(max: usize, chunks: &[Option<&'static [u8]>]) -> LineReader<Chunks> {
        LineReader::new(Chunks(chunks.iter().copied().collect()), max)
    }

    #[test]
    fn an_idle_reader_holds_nothing_between_lines_and_keeps_what_is_unfinished() {
        let mut r = reader(
            100,
            &[
                Some(b"#ping\n"),
                None,
                Some(b"hel"),
                None,
                Some(b"lo\n"),
                None,
            ],
        );
        assert_eq!(drain(&mut r), (vec![Line::Text("#ping".into())], false));
        assert!(r.pending.is_none(), "nothing held between lines");
        assert_eq!(drain(&mut r), (vec![], false));
        assert!(r.pending.is_some(), "half a line is kept");
        assert_eq!(drain(&mut r), (vec![Line::Text("hello".into())], false));
        assert!(r.pending.is_none());
        assert_eq!(drain(&mut r), (vec![], true));
    }

    #[test]
    fn state_that_spans_reads_survives_the_idle_release() {
        // An overlong line still being discarded, an open telnet sequence, and a first byte
        // that may begin a TLS hello: each is kept across the wait for more bytes.
        let mut r = reader(5, &[Some(b"1234567890"), None, Some(b"123\n#a\n"), None]);
        assert_eq!(drain(&mut r), (vec![Line::TooLong], false));
        assert!(r.pending.is_some());
        assert_eq!(drain(&mut r), (vec![Line::Text("#a".into())], false));
        assert!(r.pending.is_none());
        let mut r = reader(100, &[Some(b"x\n\xff"), None, Some(b"\xfd\x01y\n"), None]);
        assert_eq!(drain(&mut r), (vec![Line::Text("x".into())], false));
        assert!(r.pending.is_some());
        assert_eq!(drain(&mut r), (vec![Line::Text("y".into())], false));
        let mut r = reader(100, &[Some(&[0x16]), None, Some(&[0x03, 0x01]), None]);
        assert_eq!(drain(&mut r), (vec![], false));
        assert_eq!(drain(&mut r), (vec![Line::TlsHello], false));
        // Past the first bytes, a released reader does not look for a hello again.
        let mut r = reader(100, &[Some(b"a\n"), None, Some(b"\x16\x03b\n"), None]);
        assert_eq!(drain(&mut r), (vec![Line::Text("a".into())], false));
        assert!(r.pending.is_none());
        assert_eq!(
            drain(&mut r),
            (vec![Line::Text("\u{16}\u{3}b".into())], false)
        );
    }
}

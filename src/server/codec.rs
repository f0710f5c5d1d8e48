//! Inbound framing: tokio-util's `LinesCodec` with a maximum length, wrapped so that a too-long
//! or non-UTF-8 line becomes an item the session answers with `ERR` instead of an error that ends
//! the stream.
//!
//! Before framing, bytes pass a small telnet filter: IAC sequences (option negotiation, and the
//! commands telnet sends for Ctrl-C and friends) and NUL bytes are removed. Byte 0xFF never
//! occurs in UTF-8, so this cannot alter a UTF-8 client's text.

use bytes::BytesMut;
use std::io;
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
            (Telnet::Data, 0) => (Telnet::Data, false),
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
    inner: LinesCodec,
    max_line: usize,
    telnet: Telnet,
    /// Filtered bytes not yet framed into a line.
    filtered: BytesMut,
}

impl LineCodec {
    /// A codec accepting lines of at most `max_line` bytes, not counting the line ending.
    pub fn new(max_line: usize) -> Self {
        LineCodec {
            // One extra byte so a CR before the LF does not count against the limit.
            inner: LinesCodec::new_with_max_length(max_line.saturating_add(1)),
            max_line,
            telnet: Telnet::default(),
            filtered: BytesMut::new(),
        }
    }

    /// Moves `buf` through the telnet filter into `self.filtered`.
    fn filter(&mut self, buf: &mut BytesMut) {
        if self.telnet == Telnet::Data && !buf.iter().any(|&b| b == IAC || b == 0) {
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

    fn map(&self, r: Result<Option<String>, LinesCodecError>) -> Result<Option<Line>, io::Error> {
        match r {
            Ok(Some(s)) if s.len() > self.max_line => Ok(Some(Line::TooLong)),
            Ok(Some(s)) => Ok(Some(Line::Text(s))),
            Ok(None) => Ok(None),
            Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Line::TooLong)),
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
    /// Frees the filter's buffer if it holds nothing (an idle connection keeps no buffers).
    fn release(&mut self) {
        if self.filtered.is_empty() {
            self.filtered = BytesMut::new();
        }
    }
}

/// Reads lines from a socket with [`LineCodec`], holding no read buffer while the connection
/// is idle: it waits for readability first and allocates only when there are bytes to read, and
/// gives the memory back once every complete line has been taken. Cancel-safe: dropping
/// [`LineReader::next`] mid-way loses nothing.
#[derive(Debug)]
pub struct LineReader<'a> {
    read: &'a TcpStream,
    codec: LineCodec,
    buf: BytesMut,
    eof: bool,
}

impl<'a> LineReader<'a> {
    /// A reader of lines of at most `max_line` bytes.
    pub fn new(read: &'a TcpStream, max_line: usize) -> Self {
        LineReader {
            read,
            codec: LineCodec::new(max_line),
            buf: BytesMut::new(),
            eof: false,
        }
    }

    /// The next line; `None` at end of stream.
    pub async fn next(&mut self) -> Option<io::Result<Line>> {
        loop {
            if self.eof {
                return self.codec.decode_eof(&mut self.buf).transpose();
            }
            match self.codec.decode(&mut self.buf) {
                Ok(Some(line)) => return Some(Ok(line)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            if self.buf.is_empty() {
                self.buf = BytesMut::new();
                self.codec.release();
            }
            // Polled, not `readable()`: that future would sit in every idle session.
            let stream = self.read;
            if let Err(e) = std::future::poll_fn(|cx| stream.poll_read_ready(cx)).await {
                return Some(Err(e));
            }
            self.buf.reserve(READ_CHUNK);
            match self.read.try_read_buf(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Some(Err(e)),
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
    fn telnet_sequences_and_nul_are_stripped() {
        // IAC DO ECHO, IAC WILL SGA, a subnegotiation, IAC IP (Ctrl-C), NUL, IAC IAC.
        let input =
            b"\xff\xfd\x01he\xff\xfb\x03llo\xff\xfa\x18\x01\xff\xf0 wo\x00rld\xff\xf4\xff\xff\n";
        assert_eq!(
            decode_all(100, input),
            vec![Line::Text("hello world".into())]
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
    fn bad_utf8_then_next_line_works() {
        assert_eq!(
            decode_all(10, b"caf\xe9\n#ping\n"),
            vec![Line::BadUtf8, Line::Text("#ping".into())]
        );
    }
}

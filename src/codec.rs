//! Inbound framing: tokio-util's `LinesCodec` with a maximum length, wrapped so that a too-long
//! or non-UTF-8 line becomes an item the session answers with `ERR` instead of an error that ends
//! the stream.

use bytes::BytesMut;
use std::io;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

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

/// Decoder for client lines. Never buffers more than the limit (plus one byte for a CR) of a
/// single line.
#[derive(Debug)]
pub struct LineCodec {
    inner: LinesCodec,
    max_line: usize,
}

impl LineCodec {
    /// A codec accepting lines of at most `max_line` bytes, not counting the line ending.
    pub fn new(max_line: usize) -> Self {
        LineCodec {
            // One extra byte so a CR before the LF does not count against the limit.
            inner: LinesCodec::new_with_max_length(max_line.saturating_add(1)),
            max_line,
        }
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
        let r = self.inner.decode(buf);
        self.map(r)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, io::Error> {
        let r = self.inner.decode_eof(buf);
        self.map(r)
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
    fn bad_utf8_then_next_line_works() {
        assert_eq!(
            decode_all(10, b"a\xff\xfeb\n#ping\n"),
            vec![Line::BadUtf8, Line::Text("#ping".into())]
        );
    }
}

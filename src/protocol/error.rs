//! Error codes and protocol errors: the `ERR CODE TEXT` lines, with every error text a client
//! can see defined here (see also `protocol.md` section 6).

use std::fmt;

/// Error codes: the second word of an `ERR` line. The table in protocol.md lists the same set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrCode {
    /// Not logged in, or login failed.
    Auth,
    /// The name is already registered.
    Exists,
    /// A user or room name does not match `[A-Za-z0-9_-]{1,32}`.
    BadName,
    /// The password is shorter than 8 or longer than 72 bytes.
    BadPass,
    /// A chat line or room verb was sent outside a room.
    NoRoom,
    /// The verb is not known.
    Unknown,
    /// Missing, extra or malformed arguments, or a verb that makes no sense in this state.
    Usage,
    /// The database failed; the request had no effect.
    Storage,
    /// The line was longer than the line limit and was discarded.
    TooLong,
    /// The line was not valid UTF-8 and was discarded.
    Utf8,
    /// The server is at its connection limit, or this address at its own.
    Busy,
    /// Over the rate limit: the request was refused; `retry-after=MS` says when to retry.
    RateLimit,
    /// Kept flooding after many rate-limit refusals: the connection is closed.
    Flood,
    /// Did not log in in time, or stayed idle too long: the connection is closed.
    Timeout,
    /// The client spoke HTTP: the connection is closed.
    Http,
}

impl ErrCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrCode::Auth => "auth",
            ErrCode::Exists => "exists",
            ErrCode::BadName => "badname",
            ErrCode::BadPass => "badpass",
            ErrCode::NoRoom => "noroom",
            ErrCode::Unknown => "unknown",
            ErrCode::Usage => "usage",
            ErrCode::Storage => "storage",
            ErrCode::TooLong => "toolong",
            ErrCode::Utf8 => "utf8",
            ErrCode::Busy => "busy",
            ErrCode::RateLimit => "ratelimit",
            ErrCode::Flood => "flood",
            ErrCode::Timeout => "timeout",
            ErrCode::Http => "http",
        }
    }

    /// Every code, in the order protocol.md lists them.
    pub const ALL: [ErrCode; 15] = [
        ErrCode::Auth,
        ErrCode::Exists,
        ErrCode::BadName,
        ErrCode::BadPass,
        ErrCode::NoRoom,
        ErrCode::Unknown,
        ErrCode::Usage,
        ErrCode::Storage,
        ErrCode::TooLong,
        ErrCode::Utf8,
        ErrCode::Busy,
        ErrCode::RateLimit,
        ErrCode::Flood,
        ErrCode::Timeout,
        ErrCode::Http,
    ];
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol-level failure: the code and the human text of the `ERR` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError {
    /// Machine-readable code.
    pub code: ErrCode,
    /// Human-readable explanation (one line).
    pub text: String,
}

impl ProtoError {
    /// A new error with the given code and text.
    pub fn new(code: ErrCode, text: impl Into<String>) -> Self {
        ProtoError {
            code,
            text: text.into(),
        }
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

impl std::error::Error for ProtoError {}

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
    /// The server is at its connection limit, or this address at its own; or a search ran
    /// too long and was stopped.
    Busy,
    /// Over the rate limit: the request was refused; `retry-after=MS` says when to retry.
    RateLimit,
    /// Kept flooding after many rate-limit refusals: the connection is closed.
    Flood,
    /// Did not log in in time, or stayed idle too long: the connection is closed.
    Timeout,
    /// The client spoke HTTP: the connection is closed.
    Http,
    /// TLS on the plain port, or plain text on the TLS port: the connection is closed.
    Tls,
    /// Not allowed (registration closed, a moderation verb from a non-admin, a search in a
    /// room never joined).
    Denied,
    /// An admin closed the session: the connection is closed.
    Kicked,
    /// The account or the address is banned: refused, or closed if it was connected.
    Banned,
    /// The account is muted: its chat line was refused.
    Muted,
    /// `#msg`, `#privates`, `#search`: no account has that name.
    NoUser,
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
            ErrCode::Tls => "tls",
            ErrCode::Denied => "denied",
            ErrCode::Kicked => "kicked",
            ErrCode::Banned => "banned",
            ErrCode::Muted => "muted",
            ErrCode::NoUser => "nouser",
        }
    }

    /// Every code, in the order protocol.md lists them.
    pub const ALL: [ErrCode; 21] = [
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
        ErrCode::Tls,
        ErrCode::Denied,
        ErrCode::Kicked,
        ErrCode::Banned,
        ErrCode::Muted,
        ErrCode::NoUser,
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

/// Why a connection is refused with `ERR busy`: the connection limit.
pub const BUSY_SERVER: &str = "the server is full";
/// ... the per-address limit.
pub const BUSY_ADDRESS: &str = "too many connections from your address";
/// ... the guest limit.
pub const BUSY_GUESTS: &str = "too many connections waiting to log in";
/// ... the per-address guest limit.
pub const BUSY_ADDRESS_GUESTS: &str = "too many connections from your address waiting to log in";

impl ProtoError {
    /// A new error with the given code and text.
    pub fn new(code: ErrCode, text: impl Into<String>) -> Self {
        ProtoError {
            code,
            text: text.into(),
        }
    }

    /// The line: `ERR CODE TEXT` (CRLF-terminated).
    pub fn to_bytes(&self) -> bytes::Bytes {
        super::Reply::Err(self.code, &self.text).to_bytes()
    }

    // Every error text the server sends, one constructor each.

    /// A write the database refused: the request had no effect.
    pub fn storage() -> Self {
        Self::new(
            ErrCode::Storage,
            "the server could not store that; nothing was changed, try again",
        )
    }
    /// A cluster node's sessions, after the cluster lost sight of the node for too long and
    /// freed their seats on every other node: the client reconnects (to any node).
    pub fn storage_evicted() -> Self {
        Self::new(
            ErrCode::Storage,
            "this node lost the cluster and its sessions were ended; reconnect",
        )
    }
    /// `#health` on a cluster node cut off from NATS (or whose stream has no leader).
    pub fn cluster_unreachable() -> Self {
        Self::new(
            ErrCode::Storage,
            "the cluster does not answer (NATS JetStream unreachable)",
        )
    }
    /// A chat line whose commit is unknown: the cluster did not answer in time (each retry
    /// with the same id, so it is stored at most once).
    pub fn storage_unknown() -> Self {
        Self::new(
            ErrCode::Storage,
            "the cluster did not confirm that in time; it is stored once or not at all",
        )
    }
    /// `#ignore` of oneself.
    pub fn ignore_self() -> Self {
        Self::new(ErrCode::Usage, "you cannot ignore yourself")
    }
    /// `#msg` or `#privates` naming no account.
    pub fn no_such_user(name: &str) -> Self {
        Self::new(ErrCode::NoUser, format!("no account named {name}"))
    }
    /// `#register` of a taken name.
    pub fn name_taken() -> Self {
        Self::new(ErrCode::Exists, "that name is taken")
    }
    /// bcrypt failed.
    pub fn hash_failed() -> Self {
        Self::new(ErrCode::Storage, "could not hash the password")
    }
    /// `#health`: the writer's transaction failed.
    pub fn db_failing() -> Self {
        Self::new(ErrCode::Storage, "the database is failing")
    }
    /// `#health`: the file at `--db` is not the one the daemon writes.
    pub fn db_replaced() -> Self {
        Self::new(
            ErrCode::Storage,
            "the database file was deleted or replaced; restart the daemon",
        )
    }
    /// `#health`: no answer in time.
    pub fn db_timeout() -> Self {
        Self::new(ErrCode::Storage, "the database did not answer in time")
    }
    /// A guest used a verb that needs a login.
    pub fn log_in_first() -> Self {
        Self::new(
            ErrCode::Auth,
            "log in first: #login NAME PASSWORD or #register NAME PASSWORD",
        )
    }
    /// `#login` or `#register` while logged in.
    pub fn already_logged_in(name: &str) -> Self {
        Self::new(ErrCode::Usage, format!("already logged in as {name}"))
    }
    /// A wrong name or password (the same for both).
    pub fn wrong_login() -> Self {
        Self::new(ErrCode::Auth, "wrong name or password")
    }
    /// `#password` with a wrong current password.
    pub fn wrong_password() -> Self {
        Self::new(ErrCode::Auth, "wrong password")
    }
    /// The last failed login a connection may have.
    pub fn too_many_failures(max: u32) -> Self {
        Self::new(ErrCode::Auth, format!("{max} failed logins, closing"))
    }
    /// Logins throttled for this name or address.
    pub fn login_throttled(retry_ms: u64) -> Self {
        Self::new(
            ErrCode::RateLimit,
            format!("retry-after={retry_ms} too many failed logins for this name or address"),
        )
    }
    /// Over the message rate limit.
    pub fn rate_limited(
        retry_ms: u64,
        per_sec: impl fmt::Display,
        burst: impl fmt::Display,
    ) -> Self {
        Self::new(
            ErrCode::RateLimit,
            format!(
                "retry-after={retry_ms} over the limit of {per_sec} messages per second (burst {burst}); not sent"
            ),
        )
    }
    /// Too many refusals in a row: the connection closes.
    pub fn flood(strikes: u32) -> Self {
        Self::new(
            ErrCode::Flood,
            format!("{strikes} messages over the rate limit in a row, closing"),
        )
    }
    /// A chat line, `#users` or `#leave` outside a room.
    pub fn not_in_room() -> Self {
        Self::new(ErrCode::NoRoom, "you are not in a room: #join ROOM first")
    }
    /// No login within the login timeout.
    pub fn login_timeout(secs: u64) -> Self {
        Self::new(
            ErrCode::Timeout,
            format!("no login within {secs} s, closing"),
        )
    }
    /// A logged-in session silent for the idle timeout.
    pub fn idle_timeout(secs: u64) -> Self {
        Self::new(ErrCode::Timeout, format!("idle for {secs} s, closing"))
    }
    /// A line over the line limit.
    pub fn too_long(max: usize) -> Self {
        Self::new(
            ErrCode::TooLong,
            format!("line longer than {max} bytes discarded"),
        )
    }
    /// A line that is not UTF-8.
    pub fn bad_utf8() -> Self {
        Self::new(ErrCode::Utf8, "line is not valid UTF-8, discarded")
    }
    /// The first line was an HTTP request.
    pub fn http() -> Self {
        Self::new(
            ErrCode::Http,
            "this is linechat, a line-based chat server, not a web server: connect with nc or telnet",
        )
    }
    /// `#register` with a control character in the password.
    pub fn password_control() -> Self {
        Self::new(
            ErrCode::BadPass,
            "a password may not contain control characters",
        )
    }
    /// A moderation verb from someone who is not an admin.
    pub fn admins_only() -> Self {
        Self::new(ErrCode::Denied, "only admins may do that")
    }
    /// A moderation verb aimed at an admin.
    pub fn target_is_admin(name: &str) -> Self {
        Self::new(
            ErrCode::Denied,
            format!(
                "{name} is an admin; an operator revokes that first: linechatd user admin {name} --revoke"
            ),
        )
    }
    /// A moderation verb naming no account.
    pub fn no_such_account(name: &str) -> Self {
        Self::new(ErrCode::Usage, format!("no account named {name}"))
    }
    /// The last line of a kicked session.
    pub fn kicked(reason: &str) -> Self {
        let reason = if reason.is_empty() {
            "by an admin"
        } else {
            reason
        };
        Self::new(ErrCode::Kicked, reason)
    }
    /// A banned account or address: `ERR banned until TIME: REASON`.
    pub fn banned(ban: &super::sanction::Ban) -> Self {
        Self::new(ErrCode::Banned, ban.text())
    }
    /// A chat line from a muted account.
    pub fn muted(until: super::sanction::Until) -> Self {
        Self::new(ErrCode::Muted, format!("until {}", until.text()))
    }
    /// `#unban` or `#unmute` of what is not banned or muted.
    pub fn not_sanctioned(target: &str, what: &str) -> Self {
        Self::new(ErrCode::Usage, format!("{target} is not {what}"))
    }
    /// A ban's target with `.` or `:` that is not an address or a network.
    pub fn not_a_network(word: &str) -> Self {
        Self::new(
            ErrCode::Usage,
            format!(
                "{word} is not an address or a network (203.0.113.7, 203.0.113.0/24, 2001:db8::/32)"
            ),
        )
    }
    /// `#delete` of an id that is not a message, or one already deleted.
    pub fn no_such_message(id: i64) -> Self {
        Self::new(ErrCode::Usage, format!("no message {id}"))
    }
    /// An address ban that would cover the admin's own connection.
    pub fn own_address(net: &str) -> Self {
        Self::new(
            ErrCode::Denied,
            format!(
                "{net} holds your own address; ban it from elsewhere or with linechatd user ban"
            ),
        )
    }
    /// `#register` while registration is closed.
    pub fn registration_closed() -> Self {
        Self::new(
            ErrCode::Denied,
            "registration is closed here; ask an operator for an account",
        )
    }
    /// Too many new accounts from this address, or in total, this hour.
    pub fn register_throttled(retry_ms: u64) -> Self {
        Self::new(
            ErrCode::RateLimit,
            format!(
                "retry-after={retry_ms} too many new accounts from this address or in total; try later"
            ),
        )
    }
    /// A password on the plain port where `--plain-logins` does not allow it.
    pub fn tls_for_passwords() -> Self {
        Self::new(ErrCode::Tls, "use the TLS port for passwords")
    }
    /// A TLS ClientHello on the plain port.
    pub fn tls_on_plain_port() -> Self {
        Self::new(
            ErrCode::Tls,
            "this port speaks plain text; use the TLS port for TLS",
        )
    }
    /// Plain text on the TLS port (sent in plain text, before any handshake).
    pub fn tls_expected() -> Self {
        Self::new(
            ErrCode::Tls,
            "this port speaks TLS: use openssl s_client, ncat --ssl, socat OPENSSL: or linechat --tls, or the plain port",
        )
    }
    /// `#search in=ROOM` of a room the user has never joined (or that does not exist: the
    /// answer is the same, so it tells nothing of other rooms).
    pub fn not_joined(room: &str) -> Self {
        Self::new(
            ErrCode::Denied,
            format!("you have never joined {room}: #search reads the rooms you have joined"),
        )
    }
    /// A search that ran past its deadline and was abandoned.
    pub fn search_too_slow(secs: u64) -> Self {
        Self::new(
            ErrCode::Busy,
            format!(
                "the search ran over {secs} s and was stopped: narrow it with in=, from= or more words"
            ),
        )
    }
    /// The server, or the client's address, is at its connection limit.
    pub fn busy(why: &str) -> Self {
        Self::new(ErrCode::Busy, format!("{why}, try again later"))
    }
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

impl std::error::Error for ProtoError {}

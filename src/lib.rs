//! linechat: a line-oriented chat daemon you can reach with `nc`, with every message stored in
//! SQLite and history you can query.
//!
//! # Layout
//! - [`config`]: flags -> validated [`config::Config`], defaults as named constants.
//! - [`server`]: the accept loop, connection limit and graceful shutdown.
//! - [`codec`]: inbound line framing (`LinesCodec` with a maximum length, errors as items).
//! - [`protocol`]: pure parsing of client lines and formatting of every server line.
//! - [`session`]: the per-connection state machine and its single cleanup path.
//! - [`outbox`]: a session's bounded outbound queue and the batching writer that drains it.
//! - [`rooms`]: the room actor: membership, presence, counts and fan-out.
//! - [`store`]: SQLite: schema, the group-commit writer thread, the read pool.
//! - [`auth`]: bcrypt off the async threads.
//! - [`health`]: the `linechatd health` check (a client of `#health`).
//! - [`logging`]: text or JSON log lines with connection fields as keys.
//! - [`ratelimit`]: token buckets for the message rate limit and failed-login throttles.
//!
//! - [`client`], [`render`]: the `linechat` line client's connection logic and screen.
//!
//! One chat line: socket -> codec -> `Request::parse` -> session -> store writer (commit) ->
//! room actor (encode once, `try_push` to every member) -> each member's session task, which
//! writes its queue with one vectored write.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod logging;
pub mod protocol;
pub mod rooms;
pub mod server;
pub mod store;

use std::sync::Arc;

/// Identifies one connection for its whole life; also its trace id in logs.
pub type SessionId = u64;
/// A user's row id.
pub type UserId = i64;

/// A logged-in user: id and name as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id in `users`.
    pub id: UserId,
    /// Name with the case it was registered with.
    pub name: Arc<str>,
}

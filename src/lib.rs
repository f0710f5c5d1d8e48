//! linechat: a line-oriented chat daemon you can reach with `nc`, with every message stored in
//! SQLite and history you can query.
//!
//! # Layout
//! The parts are folders, and each depends only on those before it in this list
//! (`protocol` <- `store`/`log` <- `rooms` <- `server` <- the binaries; `client` uses `protocol`).
//! - [`protocol`]: the wire, pure: client lines -> [`protocol::Request`] (one table of verbs),
//!   every server line encoded by [`protocol::Reply`] and read back by
//!   [`protocol::ServerLine`], every error text in [`protocol::error`].
//! - [`store`]: SQLite: opening (the daemon's lock, schema migrations), history and login
//!   reads on a pool, the background checkpointer.
//! - [`log`]: the ordered log of room events: requests in, ordered committed events out;
//!   [`log::local`] is the SQLite writer with group commit, [`log::cluster`] publishes every
//!   request to a NATS JetStream stream and applies the stream, in order, through the local
//!   writer (several nodes, one order).
//! - [`rooms`]: the room actor (the log's sink): membership, presence, counts and fan-out into
//!   each member's bounded [`rooms::outbox::Outbox`].
//! - [`server`]: the accept loop, connection limits and shutdown; each connection's session
//!   state machine, line framing, rate limits and bcrypt off the async threads.
//! - [`client`]: the `linechat` line client and the `linechatd health` check.
//! - [`config`], [`logging`]: flags -> validated settings; text or JSON log lines.
//! - [`meters`]: every metric's name and help, and the calls the parts record with (no-ops
//!   unless `--metrics-listen` installed Prometheus's recorder); below every other part.
//!
//! One chat line: socket -> `server::codec` -> `Request::parse` -> session -> `log` (sequenced
//! and committed in a group commit) -> `Event::Said` to the room actor (encoded once,
//! `try_push`ed to every member, written at once to idle connections) -> each member's
//! socket. Quitting and disconnecting travel the same log, so a session's last lines are
//! delivered before its `LEAVE`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod log;
pub mod logging;
pub mod meters;
pub mod protocol;
pub mod rooms;
pub mod server;
pub mod store;

use std::sync::Arc;

/// Identifies one connection for its whole life; also its trace id in logs.
pub type SessionId = u64;

/// The node incarnation a session belongs to: the high 32 bits of its id (0 on a single
/// node; a cluster node draws a new one at every start).
pub fn epoch_of(session: SessionId) -> u32 {
    (session >> 32) as u32
}

/// This node's incarnation, shared by what stamps it (session ids, the cluster's message ids
/// and heartbeats) and what compares it (the room actor). 0 on a single node; a cluster node
/// draws a random one at start and a new one when the cluster declared the old one gone.
#[derive(Debug, Clone, Default)]
pub struct Incarnation(Arc<std::sync::atomic::AtomicU32>);

impl Incarnation {
    /// A single node's (0), or a new random one for a cluster node.
    pub fn new(clustered: bool) -> Incarnation {
        let me = Incarnation::default();
        if clustered {
            me.renew();
        }
        me
    }

    /// The current one.
    pub fn get(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Draws a new one (nonzero, not the current one) and returns it.
    pub fn renew(&self) -> u32 {
        let old = self.get();
        let mut new = fastrand::u32(1..);
        while new == old {
            new = fastrand::u32(1..);
        }
        self.0.store(new, std::sync::atomic::Ordering::Relaxed);
        new
    }
}
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

//! The ordered log of room events: requests go in, ordered committed [`Event`]s come out.
//!
//! Every change to a room — a chat line, a join, a leave, a session's end — is a request to
//! the log ([`Log`]); the log puts all of them in one order, commits them, and hands the
//! results, in that order, to a [`Sink`] (the room actor), which turns them into lines. Live
//! order = commit order = history order follows from there being one order.
//!
//! # The contract every implementation keeps
//! - **One order.** Requests are sequenced in the order the log receives them; one session's
//!   requests in the order it sent them (each session awaits its bounded send). Events reach
//!   the sink in that order, and a message's id increases with it.
//! - **Committed means durable.** An event reaches the sink only once what it records is
//!   durable (the local log: the SQLite transaction committed, as durable as `--sync` makes
//!   it; a cluster log: acknowledged by the stream). Nothing uncommitted is ever delivered; a
//!   request that could not be committed comes out as [`Event::Failed`] to its sender only.
//! - **Joins read in order.** A join's replay holds exactly the room's messages committed
//!   before the join, so each message reaches a joiner once, as replay or as a live event.
//! - **Endings are ordered.** A [`Departure`] comes out after every message its session sent
//!   before it, so those are acknowledged before the session's last line and before `LEAVE`.
//! - **Idempotent by id.** Every committed message carries its id, unique and increasing. An
//!   implementation that may see a request twice (a cluster retrying a publish) deduplicates it
//!   before it commits, and applying a committed event twice (replaying a stream into SQLite)
//!   keys on that id, so the sink sees each event once.
//!
//! # Implementations
//! - [`local`]: the SQLite writer thread with group commit (one node).
//! - [`cluster`]: every request published to a NATS JetStream stream, whose order is the one
//!   order; every node applies the stream, in order, through its own local log.
//!
//! The log knows neither the room actor nor the protocol's wording: it commits and reports;
//! the actor and the session decide what a client sees.

pub mod cluster;
pub mod local;

/// The key of [`Op::Applied`]'s position in `log_position`: the cluster's stream.
pub const STREAM: &str = "LINECHAT";

use crate::protocol::HistRow;
pub use crate::protocol::Topic;
use crate::protocol::sanction::{Ban, Until};
use crate::store::StoreError;
use crate::{SessionId, User};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A message the log has committed.
#[derive(Debug)]
pub struct Committed {
    /// Message id: its place in the log.
    pub id: i64,
    /// Room it was said in.
    pub room: Arc<str>,
    /// Sender's name.
    pub name: Arc<str>,
    /// Text, verbatim.
    pub text: String,
    /// An action (`#me`): shown as `ACTION`, not `MSG`.
    pub action: bool,
    /// Sender's session: it gets its copy as the acknowledgement even if it left the room since.
    pub sender: SessionId,
    /// Sender's account.
    pub from: crate::UserId,
    /// For a private message, its recipient (`room` is then their conversation's, see
    /// [`crate::store::history::conversation`]): it goes to both parties' sessions, not to a
    /// room.
    pub to: Option<User>,
    /// The recipient ignores the sender: it goes to the sender's sessions only.
    pub ignored: bool,
    /// When its session read it, if metrics are on and it was read on this node.
    pub read: Option<std::time::Instant>,
}

/// A join the log has recorded, with the room's recent messages read in the same order.
#[derive(Debug)]
pub struct Joined {
    /// Joining session.
    pub session: SessionId,
    /// Its user.
    pub user: User,
    /// Room joined.
    pub room: Arc<str>,
    /// Recent messages, oldest first: exactly those committed before the join.
    pub history: Vec<HistRow>,
    /// For a returning user with messages since their last visit: how many, and where in
    /// `history` they start.
    pub missed: Option<Missed>,
    /// The room's topic, if one is set.
    pub topic: Option<Topic>,
    /// Told once the session is seated.
    pub reply: oneshot::Sender<Seated>,
}

/// A join's answer to its session, once seated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seated {
    /// Distinct users in the room now.
    pub count: usize,
    /// The room's name as the room table holds it: the session keeps this one, so a room's
    /// members share one copy of its name instead of one each.
    pub room: Arc<str>,
}

/// The messages a returning user missed in a room, as a join replays them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// How many arrived since the user's last visit (`at_least`: the count stopped there).
    pub count: u64,
    /// The count reached its cap ([`local::MISSED_COUNT_MAX`]).
    pub at_least: bool,
    /// Index in [`Joined::history`] of the first missed one: before it, context already seen.
    pub new_from: usize,
}

/// A session ending, sequenced after every message it sent: those are delivered (and so
/// acknowledged to it) before `line`, its last line, and before its room hears `LEAVE`.
#[derive(Debug)]
pub struct Departure {
    /// The session ending.
    pub session: SessionId,
    /// Its account, if it was logged in: every message committed before the departure was
    /// delivered to it, so the account's `seen_id` moves up to there.
    pub user: Option<crate::UserId>,
    /// Its last line (`OK quit`, the shutdown notice), if any: opaque bytes to the log.
    pub line: Option<Bytes>,
    /// Whether its room hears `LEAVE` (not during server shutdown).
    pub announce: bool,
}

/// One moderation action, for the moderation log.
#[derive(Debug, Clone)]
pub struct Moderation {
    /// The admin's name.
    pub actor: String,
    /// `kick`, `ban`, `unban`, `mute`, `unmute`, `delete`.
    pub action: &'static str,
    /// The account, network or message id acted on.
    pub target: String,
    /// Why (may be empty); a ban's or mute's end comes first (`until TIME: REASON`).
    pub reason: String,
    /// What it changes, in the same transaction as its record.
    pub effect: Effect,
}

/// What a moderation action changes in the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Nothing stored but the record: `#kick` of the account (its sessions are closed by the
    /// room actor: on the admin's node by the admin's session, on every other node by
    /// [`Event::Kicked`]).
    Kick {
        /// The account.
        user: crate::UserId,
    },
    /// The account's logins are refused until the ban ends.
    Ban {
        /// The account.
        user: crate::UserId,
        /// Until when, and why.
        ban: Ban,
    },
    /// The account's ban is lifted.
    Unban {
        /// The account.
        user: crate::UserId,
    },
    /// Connections from the network are refused until the ban ends.
    BanNetwork {
        /// The network, CIDR form.
        network: String,
        /// Until when, and why.
        ban: Ban,
    },
    /// The network's ban is lifted.
    UnbanNetwork {
        /// The network, CIDR form.
        network: String,
    },
    /// The account's chat lines are refused until then.
    Mute {
        /// The account.
        user: crate::UserId,
        /// Until when.
        until: Until,
    },
    /// The account's mute is lifted.
    Unmute {
        /// The account.
        user: crate::UserId,
    },
    /// The message leaves history and replay (its row stays, emptied); its room is told
    /// with [`Event::Deleted`], in log order.
    Delete {
        /// The message.
        id: i64,
    },
}

/// Whether a moderation action found what it acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Done and recorded.
    Done,
    /// Nothing to do (not banned, not muted, no such message): nothing recorded.
    Missing,
}

/// Why a request was not committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The database (or stream) refused the transaction; nothing of it took effect.
    Storage,
    /// The cluster did not confirm the request in time: it is stored once or not at all.
    Unknown,
}

/// What comes out of the log, in order, to the [`Sink`].
#[derive(Debug)]
pub enum Event {
    /// Messages committed together, in id order.
    Said(Vec<Committed>),
    /// A session joined a room.
    Joined(Joined),
    /// A session left its room (`#leave`); told the room it left.
    Left {
        /// The session.
        session: SessionId,
        /// Told the room it left, if it was in one.
        reply: oneshot::Sender<Option<Arc<str>>>,
    },
    /// A session ended.
    Departed {
        /// Who, and what it is told last.
        departure: Departure,
        /// Told once the departure is applied.
        reply: oneshot::Sender<()>,
    },
    /// An admin deleted a message: its room is told, then the admin.
    Deleted {
        /// The room it was in.
        room: Arc<str>,
        /// The message.
        id: i64,
        /// Who had said it.
        name: Arc<str>,
        /// Told once the room has been told.
        reply: oneshot::Sender<Result<Applied, StoreError>>,
    },
    /// A room's topic was set: the room is told.
    Topic {
        /// The room.
        room: Arc<str>,
        /// The topic, who set it and when.
        topic: Topic,
        /// Told once the room has been told (nobody waits on another node's).
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// An admin on another node kicked `user`: this node's sessions of the user are closed.
    Kicked {
        /// The account.
        user: crate::UserId,
        /// The kick's reason (may be empty).
        reason: String,
    },
    /// Every session of node incarnation `epoch` (the high 32 bits of its id) is gone: its
    /// seats are freed and its rooms hear `LEAVE`.
    Evicted {
        /// The node incarnation.
        epoch: u32,
    },
    /// A session's request was not committed: only that session hears of it.
    Failed {
        /// The session whose request failed.
        session: SessionId,
        /// Why.
        reason: Failure,
    },
}

/// Where committed events go: the room actor. Called from the log's own thread, in order; it
/// may wait for room in a bounded queue (the log waits rather than drop an event).
pub trait Sink: Send + 'static {
    /// Takes one event.
    fn apply(&self, event: Event);
}

/// What `#health` learns from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// A transaction committed, on the file at `--db`.
    Ok,
    /// The transaction failed, or the log is gone.
    Failing,
    /// A cluster node that is not connected to NATS, or whose stream does not answer: it can
    /// store nothing.
    Unreachable,
    /// The file at `--db` was deleted or replaced since the daemon opened it: what the daemon
    /// commits goes to a file nobody will open again.
    FileReplaced,
}

/// A request to the log.
#[derive(Debug)]
pub(crate) enum Op {
    CreateUser {
        name: String,
        hash: String,
        reply: oneshot::Sender<Result<User, StoreError>>,
    },
    Moderate {
        record: Moderation,
        reply: oneshot::Sender<Result<Applied, StoreError>>,
    },
    SetPassword {
        user: crate::UserId,
        hash: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Say {
        session: SessionId,
        user: User,
        room: Arc<str>,
        text: String,
        /// A private message's recipient (`room` is their conversation).
        to: Option<User>,
        /// An action (`#me`) rather than a plain message.
        action: bool,
        /// When the session read it, if metrics are on: the start of its delivery latency.
        read: Option<std::time::Instant>,
    },
    Join {
        session: SessionId,
        user: User,
        room: Arc<str>,
        history: u32,
        reply: oneshot::Sender<Seated>,
    },
    Leave {
        session: SessionId,
        reply: oneshot::Sender<Option<Arc<str>>>,
    },
    Depart {
        departure: Departure,
        reply: oneshot::Sender<()>,
    },
    Health {
        reply: oneshot::Sender<Health>,
    },
    /// A record of the cluster's stream, applied in stream order: `op` takes effect with the
    /// record's sequence as its id (a message's, an account's) and its time, and the node's
    /// position in the stream advances to `seq` in the same transaction.
    Applied {
        seq: i64,
        at: String,
        op: Box<Op>,
        /// Published by another node: what its session does after the commit (closing a
        /// kicked user's sessions), this node's actor does from the event instead.
        remote: bool,
    },
    /// `user` refuses (`on`) or takes again private messages from `ignored`.
    Ignore {
        user: crate::UserId,
        ignored: crate::UserId,
        on: bool,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Topic {
        user: User,
        room: Arc<str>,
        text: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Answered once every record the cluster's stream held when it was asked is applied.
    Sync {
        reply: oneshot::Sender<()>,
    },
    /// Every seat of the sessions of node incarnation `epoch` is freed (the node died or
    /// restarted); in log order like a departure.
    Evict {
        epoch: u32,
    },
    /// A request the cluster did not take (`reason`): answered as a transaction that did not
    /// commit, in log order, without touching the database.
    Refused {
        op: Box<Op>,
        reason: Failure,
    },
    Stop {
        done: oneshot::Sender<()>,
    },
}

/// Handle to the log: queue requests. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Log {
    ops: mpsc::Sender<Op>,
    /// The local log's thread, unparked after every queued request (it may be lingering for
    /// more to share a commit); `None` for a log run by a task.
    runner: Option<std::thread::Thread>,
    /// Messages stored in the database, kept by the local writer (see [`Log::stored`]).
    stored: Arc<std::sync::atomic::AtomicI64>,
}

impl Log {
    async fn queue(&self, op: Op) -> Result<(), StoreError> {
        self.ops.send(op).await.map_err(|_| StoreError::Closed)?;
        if let Some(runner) = &self.runner {
            runner.unpark();
        }
        Ok(())
    }

    /// Creates an account; `Exists` if the name (in any case) is taken.
    pub async fn create_user(&self, name: &str, hash: String) -> Result<User, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::CreateUser {
            name: name.to_string(),
            hash,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Applies a moderation action's [`Effect`] and records it, in one transaction, before
    /// the action takes effect anywhere else; [`Applied::Missing`] (nothing recorded) if there
    /// was nothing to act on.
    pub async fn moderate(&self, record: Moderation) -> Result<Applied, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::Moderate { record, reply }).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// `user` refuses (`on`) or takes again private messages from `ignored`, on every node.
    pub async fn ignore(
        &self,
        user: crate::UserId,
        ignored: crate::UserId,
        on: bool,
    ) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::Ignore {
            user,
            ignored,
            on,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Sets `room`'s topic; answered once the room has been told (`TOPIC`), on every node.
    pub async fn topic(
        &self,
        user: &User,
        room: &Arc<str>,
        text: String,
    ) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::Topic {
            user: user.clone(),
            room: room.clone(),
            text,
            reply,
        })
        .await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Replaces a user's password hash; the user's sessions stay logged in.
    pub async fn set_password(&self, user: crate::UserId, hash: String) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::SetPassword { user, hash, reply }).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues a chat line. Its delivery (the sender's copy included) or [`Event::Failed`]
    /// reaches the session through the sink once it is committed or refused.
    pub async fn say(
        &self,
        session: SessionId,
        user: &User,
        room: &Arc<str>,
        text: String,
        action: bool,
    ) -> Result<(), StoreError> {
        self.queue(Op::Say {
            session,
            user: user.clone(),
            room: room.clone(),
            text,
            to: None,
            action,
            read: crate::meters::start(),
        })
        .await
    }

    /// Queues a private message from `user` to `to`, stored in their conversation like a
    /// chat line in a room: delivered to both parties' sessions once committed (the sender's
    /// copies are its acknowledgement), or [`Event::Failed`] to the sending session.
    pub async fn say_private(
        &self,
        session: SessionId,
        user: &User,
        to: &User,
        text: String,
    ) -> Result<(), StoreError> {
        self.queue(Op::Say {
            session,
            user: user.clone(),
            room: Arc::from(crate::store::history::conversation(user.id, to.id)),
            text,
            to: Some(to.clone()),
            action: false,
            read: crate::meters::start(),
        })
        .await
    }

    /// Records a join and has the sink seat the session; returns the room's user count and
    /// its shared name. The actor queues `OK join`, the welcome and the replay to the session
    /// itself.
    pub async fn join(
        &self,
        session: SessionId,
        user: &User,
        room: &Arc<str>,
        history: u32,
    ) -> Result<Seated, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::Join {
            session,
            user: user.clone(),
            room: room.clone(),
            history,
            reply,
        })
        .await?;
        // A dropped reply means the transaction failed or the session vanished.
        rx.await
            .map_err(|_| StoreError::Sqlite("join not recorded".into()))
    }

    /// Takes the session out of its room, in order with its queued messages. Returns the room.
    pub async fn leave(&self, session: SessionId) -> Result<Option<Arc<str>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::Leave { session, reply }).await?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// A session ends (`#quit`, the client closed, server shutdown), in order with its queued
    /// messages (see [`Departure`]).
    pub async fn depart(&self, departure: Departure) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::Depart { departure, reply }).await?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// A round trip through the log: [`Health::Ok`] if it committed a transaction on the file
    /// at `--db`.
    pub async fn health(&self) -> Health {
        let (reply, rx) = oneshot::channel();
        if self.queue(Op::Health { reply }).await.is_err() {
            return Health::Failing;
        }
        rx.await.unwrap_or(Health::Failing)
    }

    /// Returns once this node has applied every write the cluster had taken when it was
    /// called (an account made, a password changed or a ban set on another node), or after a
    /// bounded wait if the cluster does not answer; at once on a single node, where every
    /// commit is already visible to the reads that follow it.
    pub async fn sync(&self) {
        if self.runner.is_some() {
            return;
        }
        let (reply, rx) = oneshot::channel();
        if self.queue(Op::Sync { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Messages stored in this node's database, private ones included (a deleted message
    /// keeps its row): counted when it was opened, then by the writer at every commit.
    pub fn stored(&self) -> i64 {
        self.stored.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests waiting for the log.
    pub fn queued(&self) -> usize {
        self.ops.max_capacity() - self.ops.capacity()
    }

    /// Commits everything queued so far, stops the log and returns once its files are settled
    /// (the local log: the final checkpoint has folded the WAL into the database).
    pub async fn stop(&self) {
        let (done, rx) = oneshot::channel();
        if self.queue(Op::Stop { done }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

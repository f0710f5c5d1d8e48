//! The room actor: the one owner of room membership, presence, user counts and fan-out.
//!
//! [`Rooms`] is the cheap cloneable handle; the task behind it owns a pure [`RoomTable`]
//! (room -> user -> sessions) and every logged-in session's [`Outbox`]. Sessions send it
//! commands and get answers on oneshot channels. It is the ordered log's [`Sink`]: the log
//! hands it committed events (messages, joins, leaves, departures, failures) in log order, and
//! the actor turns them into lines, so live order = commit order = history order. The actor
//! never awaits a session: it only `try_push`es (a non-blocking send when the session has
//! nothing queued, see `outbox`), and drops a session whose queue is full.

mod meter;
pub mod outbox;
mod table;

pub use meter::Meter;
pub use table::{Entered, Left, RoomTable};

use crate::log::{Applied, Committed, Event, Failure, Joined, Sink};
use crate::meters;
use crate::protocol::{ProtoError, Reply};
use crate::{Incarnation, SessionId, UserId, epoch_of};
use bytes::{Bytes, BytesMut};
use ipnet::IpNet;
use log::{debug, info};
use outbox::Outbox;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Capacity of the actor's inbox.
const INBOX: usize = 4096;

/// A room and the sorted names of the users in it.
pub type RoomUsers = (Arc<str>, Vec<Arc<str>>);

#[derive(Debug)]
enum Command {
    Attach {
        session: SessionId,
        user: UserId,
        ip: IpAddr,
        outbox: Outbox,
    },
    Detach {
        session: SessionId,
    },
    Users {
        session: SessionId,
        reply: oneshot::Sender<Option<RoomUsers>>,
    },
    List {
        reply: oneshot::Sender<Vec<(Arc<str>, usize, String)>>,
    },
    /// Whether `user` has a session (here, or seated in a room on any node), and the rooms
    /// its sessions are in.
    Presence {
        user: UserId,
        reply: oneshot::Sender<(bool, Vec<Arc<str>>)>,
    },
    /// A committed event from the log, in log order.
    Event(Event),
    /// Close every session of `user` after sending it `line`.
    Kick {
        user: UserId,
        line: Bytes,
        reply: oneshot::Sender<usize>,
    },
    /// Close every session a ban covers.
    Sweep {
        sweep: Sweep,
        reply: oneshot::Sender<usize>,
    },
    Stats {
        reply: oneshot::Sender<RoomStats>,
    },
}

/// The sessions the bans in force cover, each with its last line: closed in one pass.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Banned users, each with the line their sessions get.
    pub users: HashMap<UserId, Bytes>,
    /// Banned networks, with theirs.
    pub networks: Vec<(IpNet, Bytes)>,
    /// Users a network ban does not close (admins).
    pub spared: Vec<UserId>,
}

impl Sweep {
    /// The line for a session of `user` connected from `ip`, if a ban covers it.
    fn covers(&self, user: UserId, ip: IpAddr) -> Option<&Bytes> {
        if let Some(line) = self.users.get(&user) {
            return Some(line);
        }
        if self.spared.contains(&user) {
            return None;
        }
        self.networks
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, line)| line)
    }

    /// Whether it covers nobody at all.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.networks.is_empty()
    }
}

/// What the actor knows for `#stats`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RoomStats {
    /// Logged-in sessions.
    pub sessions: usize,
    /// Distinct users logged in.
    pub users: usize,
    /// Rooms with users in them.
    pub rooms: usize,
    /// Lines delivered to sessions per second, averaged over the last minute.
    pub delivered_per_sec: f64,
    /// Lines delivered to sessions, ever.
    pub delivered: u64,
    /// The longest outbound queue, in items.
    pub sendq_max: usize,
    /// Commands waiting in the actor's inbox.
    pub inbox: usize,
}

/// Handle to the room actor. Cloning is cheap; the actor stops when the last handle drops.
#[derive(Clone, Debug)]
pub struct Rooms {
    tx: mpsc::Sender<Command>,
}

impl Rooms {
    /// Spawns the actor on the current runtime. `epoch` is this node's incarnation in a
    /// cluster (the high 32 bits of its sessions' ids; 0 on a single node): sessions of other
    /// epochs are remote, seated and counted but sent nothing here.
    pub fn spawn(epoch: Incarnation) -> Rooms {
        let (tx, rx) = mpsc::channel(INBOX);
        let actor = Actor {
            table: RoomTable::default(),
            outboxes: HashMap::new(),
            session_users: HashMap::new(),
            online: HashMap::new(),
            dropped: Vec::new(),
            delivered: Meter::default(),
            started: std::time::Instant::now(),
            inbox: tx.downgrade(),
            epoch,
            topics: HashMap::new(),
        };
        tokio::spawn(actor.run(rx));
        Rooms { tx }
    }

    /// Registers a logged-in session's outbox, so it can be seated and sent to; `ip` is the
    /// address it connected from (for bans of networks).
    pub async fn attach(&self, session: SessionId, user: UserId, ip: IpAddr, outbox: Outbox) {
        let _ = self
            .tx
            .send(Command::Attach {
                session,
                user,
                ip,
                outbox,
            })
            .await;
    }

    /// Counts for `#stats`.
    pub async fn stats(&self) -> Option<RoomStats> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Stats { reply }).await.ok()?;
        rx.await.ok()
    }

    /// Removes a session everywhere (disconnect): its room hears `LEAVE` if it was the user's last.
    pub async fn detach(&self, session: SessionId) {
        let _ = self.tx.send(Command::Detach { session }).await;
    }

    /// The session's room and the sorted names of the users in it.
    pub async fn users(&self, session: SessionId) -> Option<RoomUsers> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Users { session, reply }).await.ok()?;
        rx.await.ok().flatten()
    }

    /// Sends `line` to every session of `user` and closes them once it is written (their
    /// rooms hear `LEAVE` as the sessions end). Returns how many sessions there were; one
    /// already closing is neither told again nor counted.
    pub async fn kick(&self, user: UserId, line: Bytes) -> usize {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::Kick { user, line, reply })
            .await
            .is_err()
        {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Closes every session `sweep` covers, each told its line, in one pass over the
    /// sessions. Returns how many it closed (those already closing are left alone).
    pub async fn sweep(&self, sweep: Sweep) -> usize {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Sweep { sweep, reply }).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Rooms with users online, sorted by name, with their counts and topics ("" for none).
    pub async fn list(&self) -> Vec<(Arc<str>, usize, String)> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::List { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Whether `user` is online (a session on this node, or seated in a room on any node),
    /// and the rooms its sessions are in.
    pub async fn presence(&self, user: UserId) -> (bool, Vec<Arc<str>>) {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::Presence { user, reply })
            .await
            .is_err()
        {
            return (false, Vec::new());
        }
        rx.await.unwrap_or_default()
    }
}

/// The room actor is the log's sink: events arrive from the log's thread, in log order, and
/// wait for room in the actor's bounded inbox (the log never drops one).
impl Sink for Rooms {
    fn apply(&self, event: Event) {
        let _ = self.tx.blocking_send(Command::Event(event));
    }
}

struct Actor {
    table: RoomTable,
    outboxes: HashMap<SessionId, Outbox>,
    /// Which user each logged-in session is, and the address it connected from.
    session_users: HashMap<SessionId, (UserId, IpAddr)>,
    /// Logged-in sessions per user.
    /// Logged-in sessions per user (a private message goes to each). Inline for the usual one
    /// session: no allocation per user.
    online: HashMap<UserId, SmallVec<[SessionId; 1]>>,
    /// Sessions whose queue overflowed during the current command; dropped after it.
    dropped: Vec<SessionId>,
    /// Lines handed to sessions, for `#stats`.
    delivered: Meter,
    started: std::time::Instant,
    /// For measuring the inbox's depth; weak, so the actor still stops with its last handle.
    inbox: mpsc::WeakSender<Command>,
    /// This node's incarnation (see [`Rooms::spawn`]).
    epoch: Incarnation,
    /// Rooms' topics, as the last join or topic change there said (for `#rooms`).
    topics: HashMap<Arc<str>, String>,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            self.handle(cmd);
            while let Some(session) = self.dropped.pop() {
                if let Some(outbox) = self.forget(session) {
                    info!(conn = session; "dropped: outbound queue full (client not reading)");
                    meters::slow_reader();
                    outbox.kill();
                    self.leave(session);
                }
            }
        }
        debug!("room actor stopped");
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Attach {
                session,
                user,
                ip,
                outbox,
            } => {
                self.outboxes.insert(session, outbox);
                self.session_users.insert(session, (user, ip));
                self.online.entry(user).or_default().push(session);
            }
            Command::Detach { session } => {
                self.forget(session);
                self.leave(session);
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            Command::Users { session, reply } => {
                let r = self
                    .table
                    .room_of(session)
                    .map(|room| (room.clone(), self.table.names_in(room)));
                let _ = reply.send(r);
            }
            Command::List { reply } => {
                let rooms = self.table.rooms();
                let listed = rooms
                    .into_iter()
                    .map(|(room, n)| {
                        let topic = self.topics.get(&room).cloned().unwrap_or_default();
                        (room, n, topic)
                    })
                    .collect();
                let _ = reply.send(listed);
            }
            Command::Presence { user, reply } => {
                let rooms = self.table.rooms_of(user);
                let online = self.online.contains_key(&user) || !rooms.is_empty();
                let _ = reply.send((online, rooms));
            }
            Command::Event(event) => self.apply(event),
            Command::Kick { user, line, reply } => {
                let sweep = Sweep {
                    users: HashMap::from([(user, line)]),
                    ..Sweep::default()
                };
                let _ = reply.send(self.close_covered(&sweep));
            }
            Command::Sweep { sweep, reply } => {
                let _ = reply.send(self.close_covered(&sweep));
            }
        }
    }

    /// Tells every session `sweep` covers its line and closes it once written; returns how
    /// many. Sessions already closing (kicked or banned a moment ago) are skipped.
    fn close_covered(&mut self, sweep: &Sweep) -> usize {
        let mut closed = 0;
        for (session, &(user, ip)) in &self.session_users {
            let Some(line) = sweep.covers(user, ip) else {
                continue;
            };
            if let Some(o) = self.outboxes.get(session)
                && !o.is_closing()
            {
                o.push(line.clone());
                o.close_after_flush();
                closed += 1;
            }
        }
        closed
    }

    /// Turns a committed event into lines: the actor decides what each client sees.
    fn apply(&mut self, event: Event) {
        match event {
            Event::Said(batch) => self.deliver(batch),
            Event::Joined(j) => self.joined(j),
            Event::Failed { session, reason } => {
                let e = match reason {
                    Failure::Storage => ProtoError::storage(),
                    Failure::Unknown => ProtoError::storage_unknown(),
                };
                self.send(session, e.to_bytes());
            }
            Event::Deleted {
                room,
                id,
                name,
                reply,
            } => {
                let line = Reply::Deleted {
                    room: &room,
                    id,
                    name: &name,
                }
                .to_bytes();
                self.broadcast(&room, &line, 1, None);
                let _ = reply.send(Ok(Applied::Done));
            }
            Event::Topic { room, topic, reply } => {
                let line = Reply::Topic {
                    room: &room,
                    by: &topic.by,
                    at: &topic.at,
                    text: &topic.text,
                }
                .to_bytes();
                self.broadcast(&room, &line, 1, None);
                self.topics.insert(room, topic.text);
                let _ = reply.send(Ok(()));
            }
            Event::Evicted { epoch } => self.evict(epoch),
            Event::Kicked { user, reason } => {
                let sweep = Sweep {
                    users: HashMap::from([(user, ProtoError::kicked(&reason).to_bytes())]),
                    ..Sweep::default()
                };
                let n = self.close_covered(&sweep);
                info!("kicked on another node: {n} sessions of user {user} closed here");
            }
            Event::Left { session, reply } => {
                let room = self.leave(session);
                let _ = reply.send(room);
            }
            Event::Departed { departure, reply } => {
                let session = departure.session;
                if let Some(line) = departure.line {
                    self.send(session, line);
                }
                self.forget(session);
                // A node shutting down does not announce its own sessions to its own members
                // (they are all going), but the rooms on other nodes go on and hear `LEAVE`.
                if departure.announce || epoch_of(session) != self.epoch.get() {
                    self.leave(session);
                } else {
                    self.table.leave(session);
                }
                let _ = reply.send(());
            }
        }
    }

    /// Removes a session's outbox and its count as an online user.
    fn forget(&mut self, session: SessionId) -> Option<Outbox> {
        if let Some((user, _)) = self.session_users.remove(&session)
            && let Some(sessions) = self.online.get_mut(&user)
        {
            sessions.retain(|s| *s != session);
            if sessions.is_empty() {
                self.online.remove(&user);
            }
        }
        self.outboxes.remove(&session)
    }

    fn now_sec(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn stats(&self) -> RoomStats {
        RoomStats {
            sessions: self.outboxes.len(),
            users: self.online.len(),
            rooms: self.table.room_count(),
            delivered_per_sec: self.delivered.rate(self.now_sec()),
            delivered: self.delivered.total(),
            sendq_max: self.outboxes.values().map(Outbox::len).max().unwrap_or(0),
            inbox: self
                .inbox
                .upgrade()
                .map_or(0, |tx| tx.max_capacity() - tx.capacity()),
        }
    }

    fn send(&mut self, session: SessionId, line: Bytes) {
        if let Some(o) = self.outboxes.get(&session) {
            if o.try_push(line) {
                let now = self.now_sec();
                self.delivered.add(now, 1);
            } else {
                self.dropped.push(session);
            }
        }
    }

    /// Sends `line` (holding `lines` protocol lines) to every session in `room` but `except`.
    fn broadcast(&mut self, room: &str, line: &Bytes, lines: u64, except: Option<SessionId>) {
        let mut n = 0;
        for s in self.table.sessions_in(room) {
            if Some(s) == except {
                continue;
            }
            if let Some(o) = self.outboxes.get(&s) {
                if o.try_push(line.clone()) {
                    n += 1;
                } else {
                    self.dropped.push(s);
                }
            }
        }
        let now = self.now_sec();
        self.delivered.add(now, n * lines);
    }

    fn leave(&mut self, session: SessionId) -> Option<Arc<str>> {
        let left = self.table.leave(session)?;
        self.announce(&left);
        Some(left.room)
    }

    /// Tells the room a user has gone, if that was their last session there.
    fn announce(&mut self, left: &Left) {
        if left.last {
            let line = Reply::Leave {
                room: &left.room,
                name: &left.name,
                count: left.count,
            }
            .to_bytes();
            self.broadcast(&left.room, &line, 1, None);
        }
    }

    /// Delivers a batch of committed messages: each room's messages are encoded once, into one
    /// shared buffer, and queued to each member as one item (in commit order).
    /// With metrics on, each room's buffer records its lines' delivery latency when its last
    /// copy is written ([`meters::timed`]).
    fn deliver(&mut self, batch: Vec<Committed>) {
        let mut rooms: Vec<(Arc<str>, BytesMut, u64, Vec<std::time::Instant>)> = Vec::new();
        for c in &batch {
            if let Some(to) = &c.to {
                self.private(c, to);
                continue;
            }
            let i = match rooms.iter().position(|(r, ..)| *r == c.room) {
                Some(i) => i,
                None => {
                    rooms.push((c.room.clone(), BytesMut::new(), 0, Vec::new()));
                    rooms.len() - 1
                }
            };
            said(c).encode(&mut rooms[i].1);
            rooms[i].2 += 1;
            rooms[i].3.extend(c.read);
        }
        for (room, buf, lines, read) in rooms {
            self.broadcast(&room, &meters::timed(buf, read), lines, None);
        }
        // The sender's copy is its acknowledgement: it gets one even if it left meanwhile.
        for c in batch.into_iter().filter(|c| c.to.is_none()) {
            if self.outboxes.contains_key(&c.sender)
                && self.table.room_of(c.sender) != Some(&c.room)
            {
                let line = said(&c).to_bytes();
                self.send(c.sender, line);
            }
        }
    }

    /// Frees the seats of node incarnation `epoch`'s sessions, each room hearing `LEAVE` for
    /// its users who had no other session there. If it is this node's own (the cluster lost
    /// sight of it for too long and freed its seats everywhere), its sessions are told so and
    /// closed: their clients reconnect and join again.
    fn evict(&mut self, epoch: u32) {
        // This node's own sessions of that incarnation (the node has drawn a new one since).
        let line = ProtoError::storage_evicted().to_bytes();
        for (session, o) in &self.outboxes {
            if epoch_of(*session) == epoch && !o.is_closing() {
                o.push(line.clone());
                o.close_after_flush();
            }
        }
        let gone: Vec<SessionId> = self
            .table
            .seated()
            .filter(|&s| epoch_of(s) == epoch)
            .collect();
        let n = gone.len();
        for session in gone {
            self.leave(session);
        }
        info!("cluster: node incarnation {epoch:08x} is gone, {n} seats freed");
    }

    /// A private message: to every session of the recipient here and every session of the
    /// sender here (the sender's copies are its acknowledgement), in log order with the rest.
    fn private(&mut self, c: &Committed, to: &crate::User) {
        let mut line = BytesMut::new();
        Reply::Priv {
            from: &c.name,
            to: &to.name,
            text: &c.text,
        }
        .encode(&mut line);
        let line = meters::timed(line, c.read.into_iter().collect());
        // A message to oneself reaches each session once; one the recipient ignores, only
        // the sender's.
        let users: &[crate::UserId] = if c.from == to.id || c.ignored {
            &[c.from]
        } else {
            &[c.from, to.id]
        };
        let sessions: SmallVec<[SessionId; 4]> = users
            .iter()
            .filter_map(|u| self.online.get(u))
            .flatten()
            .copied()
            .collect();
        for s in sessions {
            self.send(s, line.clone());
        }
    }

    fn joined(&mut self, j: Joined) {
        let local = self.outboxes.contains_key(&j.session);
        if !local && epoch_of(j.session) == self.epoch.get() {
            return; // disconnected while the join was being recorded
        }
        match &j.topic {
            Some(t) => self.topics.insert(j.room.clone(), t.text.clone()),
            None => self.topics.remove(&j.room),
        };
        // Another node's session (no outbox here) is seated, counted and announced all the same.
        let entered = self.table.join(j.session, &j.user, &j.room);
        if let Some(left) = &entered.left {
            self.announce(left);
        }
        if entered.first {
            let line = Reply::Join {
                room: &j.room,
                name: &j.user.name,
                count: entered.count,
            }
            .to_bytes();
            self.broadcast(&j.room, &line, 1, Some(j.session));
        }
        if !local {
            return;
        }
        // OK, welcome and replay are one queue item: no live line can land inside them.
        let names = self.table.names_in(&j.room);
        let names: Vec<&str> = names.iter().map(|n| &**n).collect();
        let mut buf = BytesMut::new();
        Reply::Ok("join", &format!("{} {}", j.room, entered.count)).encode(&mut buf);
        Reply::Info(&crate::protocol::welcome(&j.room, &names)).encode(&mut buf);
        if let Some(t) = &j.topic {
            Reply::Topic {
                room: &j.room,
                by: &t.by,
                at: &t.at,
                text: &t.text,
            }
            .encode(&mut buf);
        }
        let new_from = j.missed.map_or(j.history.len(), |m| m.new_from);
        for h in &j.history[..new_from] {
            Reply::Hist(h).encode(&mut buf);
        }
        if let Some(m) = j.missed {
            let shown = j.history.len() - new_from;
            let first = j.history.get(new_from).map_or(0, |h| h.id);
            Reply::Info(&crate::protocol::missed_notice(
                &j.room, m.count, m.at_least, shown, first,
            ))
            .encode(&mut buf);
        }
        for h in &j.history[new_from..] {
            Reply::Hist(h).encode(&mut buf);
        }
        self.send(j.session, buf.freeze());
        let _ = j.reply.send(crate::log::Seated {
            count: entered.count,
            room: entered.room,
        });
    }
}

/// The line of a committed room message: `MSG`, or `ACTION` for a `#me`.
fn said(c: &Committed) -> Reply<'_> {
    let (room, name, text) = (&*c.room, &*c.name, c.text.as_str());
    if c.action {
        Reply::Action { room, name, text }
    } else {
        Reply::Msg { room, name, text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_covers_banned_users_and_networks_but_spares_admins_on_networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let sweep = Sweep {
            users: HashMap::from([(1, Bytes::from_static(b"user"))]),
            networks: vec![("10.0.0.0/8".parse().unwrap(), Bytes::from_static(b"net"))],
            spared: vec![1, 2],
        };
        // A banned account is closed wherever it is, admin list or not.
        assert_eq!(
            sweep.covers(1, ip("192.0.2.1")).map(|b| &b[..]),
            Some(&b"user"[..])
        );
        assert_eq!(
            sweep.covers(3, ip("10.1.2.3")).map(|b| &b[..]),
            Some(&b"net"[..])
        );
        assert_eq!(
            sweep.covers(2, ip("10.1.2.3")),
            None,
            "an admin on the network"
        );
        assert_eq!(sweep.covers(3, ip("192.0.2.1")), None);
        assert!(Sweep::default().is_empty() && !sweep.is_empty());
    }
}

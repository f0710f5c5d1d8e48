//! The room actor: the one owner of room membership, presence, user counts and fan-out.
//!
//! [`Rooms`] is the cheap cloneable handle; the task behind it owns a pure [`RoomTable`]
//! (room -> user -> sessions) and every logged-in session's [`Outbox`]. Sessions send it
//! commands and get answers on oneshot channels; the store's writer thread hands it committed
//! messages, joins and leaves in commit order, so live order = commit order = history order.
//! The actor never awaits a session: it only `try_push`es (a non-blocking send when the
//! session has nothing queued, see `outbox`), and drops a session whose queue is full. It is
//! also the single place a later cross-node bus would plug into.

pub mod outbox;

use crate::protocol::{HistRow, Reply};
use crate::{SessionId, User, UserId};
use bytes::{Bytes, BytesMut};
use log::{debug, info};
use outbox::Outbox;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Capacity of the actor's inbox.
const INBOX: usize = 4096;

/// A user present in a room, with the sessions that put them there.
#[derive(Debug)]
struct Present {
    name: Arc<str>,
    sessions: Vec<SessionId>,
}

/// Where a session sits.
#[derive(Debug)]
struct Seat {
    room: Arc<str>,
    user: UserId,
}

/// Result of seating a session in a room.
#[derive(Debug, PartialEq, Eq)]
pub struct Entered {
    /// Distinct users in the room now.
    pub count: usize,
    /// True if this is the user's first session in the room (announce `JOIN`).
    pub first: bool,
    /// The room the session left to come here, if any.
    pub left: Option<Left>,
}

/// Result of a session leaving its room.
#[derive(Debug, PartialEq, Eq)]
pub struct Left {
    /// The room left.
    pub room: Arc<str>,
    /// The user's name.
    pub name: Arc<str>,
    /// Distinct users still in the room.
    pub count: usize,
    /// True if that was the user's last session there (announce `LEAVE`).
    pub last: bool,
}

/// Presence state, pure and synchronous: which session is in which room for which user.
/// Counts are distinct users; a room with nobody left is removed.
#[derive(Debug, Default)]
pub struct RoomTable {
    rooms: HashMap<Arc<str>, HashMap<UserId, Present>>,
    seats: HashMap<SessionId, Seat>,
}

impl RoomTable {
    /// Seats `session` (of `user`) in `room`, leaving its current room first. Joining the room
    /// the session is already in changes nothing.
    pub fn join(&mut self, session: SessionId, user: &User, room: &Arc<str>) -> Entered {
        if let Some(seat) = self.seats.get(&session)
            && &seat.room == room
        {
            return Entered {
                count: self.count(room),
                first: false,
                left: None,
            };
        }
        let left = self.leave(session);
        let users = self.rooms.entry(room.clone()).or_default();
        let present = users.entry(user.id).or_insert_with(|| Present {
            name: user.name.clone(),
            sessions: Vec::new(),
        });
        let first = present.sessions.is_empty();
        present.sessions.push(session);
        let count = users.len();
        self.seats.insert(
            session,
            Seat {
                room: room.clone(),
                user: user.id,
            },
        );
        Entered { count, first, left }
    }

    /// Takes `session` out of its room, if it is in one.
    pub fn leave(&mut self, session: SessionId) -> Option<Left> {
        let seat = self.seats.remove(&session)?;
        let users = self.rooms.get_mut(&seat.room)?;
        let present = users.get_mut(&seat.user)?;
        present.sessions.retain(|s| *s != session);
        let name = present.name.clone();
        let last = present.sessions.is_empty();
        if last {
            users.remove(&seat.user);
        }
        let count = users.len();
        if count == 0 {
            self.rooms.remove(&seat.room);
        }
        Some(Left {
            room: seat.room,
            name,
            count,
            last,
        })
    }

    /// The room `session` is in.
    pub fn room_of(&self, session: SessionId) -> Option<&Arc<str>> {
        self.seats.get(&session).map(|s| &s.room)
    }

    /// Distinct users in `room`.
    pub fn count(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, |u| u.len())
    }

    /// Every session in `room`.
    pub fn sessions_in<'a>(&'a self, room: &str) -> impl Iterator<Item = SessionId> + 'a {
        self.rooms
            .get(room)
            .into_iter()
            .flat_map(|users| users.values())
            .flat_map(|p| p.sessions.iter().copied())
    }

    /// Names of the users in `room`, sorted.
    pub fn names_in(&self, room: &str) -> Vec<Arc<str>> {
        let mut names: Vec<Arc<str>> = self
            .rooms
            .get(room)
            .map(|u| u.values().map(|p| p.name.clone()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Rooms with users online and their counts, sorted by name.
    pub fn rooms(&self) -> Vec<(Arc<str>, usize)> {
        let mut v: Vec<(Arc<str>, usize)> = self
            .rooms
            .iter()
            .map(|(r, u)| (r.clone(), u.len()))
            .collect();
        v.sort();
        v
    }
}

/// A message the store has committed, on its way to the room.
#[derive(Debug)]
pub struct Committed {
    /// Message id.
    pub id: i64,
    /// Room it was said in.
    pub room: Arc<str>,
    /// Sender's name.
    pub name: Arc<str>,
    /// Text, verbatim.
    pub text: String,
    /// Sender's session: it gets its copy as the acknowledgement even if it left the room since.
    pub sender: SessionId,
}

/// A join the store has recorded, with the room's recent messages read in the same transaction.
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
    /// Told the room's user count once the session is seated.
    pub reply: oneshot::Sender<usize>,
}

/// A session ending, sequenced after every message it sent: those are delivered (and so
/// acknowledged to it) before `line`, its last line, and before its room hears `LEAVE`.
#[derive(Debug)]
pub struct Departure {
    /// The session ending.
    pub session: SessionId,
    /// Its last line (`OK quit`, the shutdown notice), if any.
    pub line: Option<Bytes>,
    /// Whether its room hears `LEAVE` (not during server shutdown).
    pub announce: bool,
}

/// A room and the sorted names of the users in it.
pub type RoomUsers = (Arc<str>, Vec<Arc<str>>);

#[derive(Debug)]
enum Command {
    Attach {
        session: SessionId,
        user: UserId,
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
        reply: oneshot::Sender<Vec<(Arc<str>, usize)>>,
    },
    Deliver(Vec<Committed>),
    Joined(Joined),
    Left {
        session: SessionId,
        reply: oneshot::Sender<Option<Arc<str>>>,
    },
    Send {
        session: SessionId,
        line: Bytes,
    },
    Depart {
        departure: Departure,
        reply: oneshot::Sender<()>,
    },
    Stats {
        reply: oneshot::Sender<RoomStats>,
    },
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
    /// The longest outbound queue, in items.
    pub sendq_max: usize,
    /// Commands waiting in the actor's inbox.
    pub inbox: usize,
}

/// Seconds in the delivery-rate window.
const METER_SECS: usize = 60;

/// Counts events per second over the last minute, in a ring of one-second buckets.
#[derive(Debug)]
pub struct Meter {
    counts: [u64; METER_SECS],
    stamps: [u64; METER_SECS],
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            counts: [0; METER_SECS],
            stamps: [0; METER_SECS],
        }
    }
}

impl Meter {
    /// Adds `n` events in second `now`.
    pub fn add(&mut self, now: u64, n: u64) {
        let i = (now % METER_SECS as u64) as usize;
        if self.stamps[i] != now {
            self.stamps[i] = now;
            self.counts[i] = 0;
        }
        self.counts[i] += n;
    }

    /// Events per second over the minute ending at second `now`.
    pub fn rate(&self, now: u64) -> f64 {
        let total: u64 = (0..METER_SECS)
            .filter(|&i| now.saturating_sub(self.stamps[i]) < METER_SECS as u64)
            .map(|i| self.counts[i])
            .sum();
        total as f64 / METER_SECS as f64
    }
}

/// Handle to the room actor. Cloning is cheap; the actor stops when the last handle drops.
#[derive(Clone, Debug)]
pub struct Rooms {
    tx: mpsc::Sender<Command>,
}

impl Rooms {
    /// Spawns the actor on the current runtime.
    pub fn spawn() -> Rooms {
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
        };
        tokio::spawn(actor.run(rx));
        Rooms { tx }
    }

    /// Registers a logged-in session's outbox, so it can be seated and sent to.
    pub async fn attach(&self, session: SessionId, user: UserId, outbox: Outbox) {
        let _ = self
            .tx
            .send(Command::Attach {
                session,
                user,
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

    /// Rooms with users online, sorted by name, with their counts.
    pub async fn list(&self) -> Vec<(Arc<str>, usize)> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::List { reply }).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// From the store's writer thread: deliver committed messages, in commit order.
    pub fn blocking_deliver(&self, batch: Vec<Committed>) {
        let _ = self.tx.blocking_send(Command::Deliver(batch));
    }

    /// From the store's writer thread: seat a session whose join was recorded.
    pub fn blocking_joined(&self, j: Joined) {
        let _ = self.tx.blocking_send(Command::Joined(j));
    }

    /// From the store's writer thread: take a session out of its room, in commit order.
    pub fn blocking_left(&self, session: SessionId, reply: oneshot::Sender<Option<Arc<str>>>) {
        let _ = self.tx.blocking_send(Command::Left { session, reply });
    }

    /// From the store's writer thread, in commit order: a session ends (see [`Departure`]).
    pub fn blocking_depart(&self, departure: Departure, reply: oneshot::Sender<()>) {
        let _ = self.tx.blocking_send(Command::Depart { departure, reply });
    }

    /// From the store's writer thread: send one line to one session (e.g. `ERR storage`).
    pub fn blocking_send_to(&self, session: SessionId, line: Bytes) {
        let _ = self.tx.blocking_send(Command::Send { session, line });
    }
}

struct Actor {
    table: RoomTable,
    outboxes: HashMap<SessionId, Outbox>,
    /// Which user each logged-in session is.
    session_users: HashMap<SessionId, UserId>,
    /// Logged-in sessions per user.
    online: HashMap<UserId, usize>,
    /// Sessions whose queue overflowed during the current command; dropped after it.
    dropped: Vec<SessionId>,
    /// Lines handed to sessions, for `#stats`.
    delivered: Meter,
    started: std::time::Instant,
    /// For measuring the inbox's depth; weak, so the actor still stops with its last handle.
    inbox: mpsc::WeakSender<Command>,
}

impl Actor {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            self.handle(cmd);
            while let Some(session) = self.dropped.pop() {
                if let Some(outbox) = self.forget(session) {
                    info!(conn = session; "dropped: outbound queue full (client not reading)");
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
                outbox,
            } => {
                self.outboxes.insert(session, outbox);
                self.session_users.insert(session, user);
                *self.online.entry(user).or_insert(0) += 1;
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
                let _ = reply.send(self.table.rooms());
            }
            Command::Deliver(batch) => self.deliver(batch),
            Command::Joined(j) => self.joined(j),
            Command::Left { session, reply } => {
                let room = self.leave(session);
                let _ = reply.send(room);
            }
            Command::Send { session, line } => self.send(session, line),
            Command::Depart { departure, reply } => {
                let session = departure.session;
                if let Some(line) = departure.line {
                    self.send(session, line);
                }
                self.forget(session);
                if departure.announce {
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
        if let Some(user) = self.session_users.remove(&session)
            && let Some(n) = self.online.get_mut(&user)
        {
            *n -= 1;
            if *n == 0 {
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
            rooms: self.table.rooms.len(),
            delivered_per_sec: self.delivered.rate(self.now_sec()),
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
    fn deliver(&mut self, batch: Vec<Committed>) {
        let mut rooms: Vec<(Arc<str>, BytesMut, u64)> = Vec::new();
        for c in &batch {
            let i = match rooms.iter().position(|(r, _, _)| *r == c.room) {
                Some(i) => i,
                None => {
                    rooms.push((c.room.clone(), BytesMut::new(), 0));
                    rooms.len() - 1
                }
            };
            Reply::Msg {
                room: &c.room,
                name: &c.name,
                text: &c.text,
            }
            .encode(&mut rooms[i].1);
            rooms[i].2 += 1;
        }
        for (room, buf, lines) in rooms {
            self.broadcast(&room, &buf.freeze(), lines, None);
        }
        // The sender's copy is its acknowledgement: it gets one even if it left meanwhile.
        for c in batch {
            if self.outboxes.contains_key(&c.sender)
                && self.table.room_of(c.sender) != Some(&c.room)
            {
                let line = Reply::Msg {
                    room: &c.room,
                    name: &c.name,
                    text: &c.text,
                }
                .to_bytes();
                self.send(c.sender, line);
            }
        }
    }

    fn joined(&mut self, j: Joined) {
        if !self.outboxes.contains_key(&j.session) {
            return; // disconnected while the join was being recorded
        }
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
        // OK, welcome and replay are one queue item: no live line can land inside them.
        let names = self.table.names_in(&j.room);
        let names: Vec<&str> = names.iter().map(|n| &**n).collect();
        let mut buf = BytesMut::new();
        Reply::Ok("join", &format!("{} {}", j.room, entered.count)).encode(&mut buf);
        Reply::Info(&crate::protocol::welcome(&j.room, &names)).encode(&mut buf);
        for h in &j.history {
            Reply::Hist(h).encode(&mut buf);
        }
        self.send(j.session, buf.freeze());
        let _ = j.reply.send(entered.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: UserId, name: &str) -> User {
        User {
            id,
            name: name.into(),
        }
    }

    #[test]
    fn counts_distinct_users_across_sessions() {
        let mut t = RoomTable::default();
        let g: Arc<str> = "general".into();
        let alice = user(1, "alice");
        let bob = user(2, "bob");
        let e = t.join(10, &alice, &g);
        assert_eq!((e.count, e.first), (1, true));
        let e = t.join(11, &alice, &g); // alice's second session
        assert_eq!((e.count, e.first), (1, false));
        let e = t.join(20, &bob, &g);
        assert_eq!((e.count, e.first), (2, true));
        let l = t.leave(10).unwrap();
        assert_eq!((l.count, l.last), (2, false)); // alice still here on session 11
        let l = t.leave(11).unwrap();
        assert_eq!((l.count, l.last, &*l.name), (1, true, "alice"));
        assert_eq!(t.names_in("general"), vec![Arc::<str>::from("bob")]);
        assert!(t.leave(11).is_none()); // a second leave changes nothing
        let l = t.leave(20).unwrap();
        assert_eq!((l.count, l.last), (0, true));
        assert!(t.rooms().is_empty());
    }

    #[test]
    fn switching_rooms_leaves_the_old_one() {
        let mut t = RoomTable::default();
        let a: Arc<str> = "a".into();
        let b: Arc<str> = "b".into();
        let alice = user(1, "alice");
        t.join(1, &alice, &a);
        t.join(2, &user(2, "bob"), &a);
        let e = t.join(1, &alice, &b);
        assert_eq!(e.count, 1);
        assert!(e.first);
        let left = e.left.unwrap();
        assert_eq!((&*left.room, left.count, left.last), ("a", 1, true));
        assert_eq!(t.rooms(), vec![(a.clone(), 1), (b.clone(), 1)]);
        // Rejoining the same room is a no-op.
        let e = t.join(1, &alice, &b);
        assert_eq!(
            e,
            Entered {
                count: 1,
                first: false,
                left: None
            }
        );
        assert_eq!(t.sessions_in("b").collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn meter_averages_the_last_minute() {
        let mut m = Meter::default();
        m.add(0, 60);
        m.add(30, 60);
        assert_eq!(m.rate(30), 2.0);
        assert_eq!(m.rate(59), 2.0);
        assert_eq!(m.rate(60), 1.0); // second 0 has left the window
        assert_eq!(m.rate(200), 0.0);
        m.add(200, 6);
        assert_eq!(m.rate(200), 0.1);
    }

    #[test]
    fn names_are_sorted() {
        let mut t = RoomTable::default();
        let g: Arc<str> = "g".into();
        for (i, n) in ["carol", "alice", "bob"].iter().enumerate() {
            t.join(i as u64, &user(i as i64, n), &g);
        }
        let names: Vec<String> = t.names_in("g").iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        assert_eq!(t.count("g"), 3);
        assert_eq!(t.count("nowhere"), 0);
    }
}

//! The local log: one SQLite writer thread that sequences every request and commits them with
//! group commit.
//!
//! Decisions:
//! - One writer thread owns the only writing connection. It takes every queued request (up to
//!   [`BATCH_MAX`]) into one transaction: under load many messages share a commit; at moderate
//!   load it lingers (up to `--commit-linger-ms`) while the recent pace says another message is
//!   due; when idle each message commits alone, with no lingering. Only after the commit does it
//!   hand events to the sink, so every line a client saw is on disk (as durable as `--sync`
//!   makes it).
//! - Consecutive messages in a batch go in with multi-row `INSERT`s: SQLite's per-statement
//!   work (cursors, binding, reset) is paid once per chunk, not once per message.
//! - Joins, leaves and departures travel the same queue as messages. A join reads the room's
//!   recent messages inside the transaction that records it.
//! - Checkpoints run on their own thread ([`crate::store::checkpoint`]), except when the WAL
//!   passes its bound: then the writer truncates it between two transactions.

mod pace;
mod room_ids;
mod seen;
mod sql;

pub use seen::MISSED_COUNT_MAX;

use super::{Applied, Committed, Event, Health, Log, Op, Sink};
use crate::User;
use crate::store::{FileId, StoreError, WriterDb, checkpoint};
use log::{debug, error, info, warn};
use pace::Pace;
use rusqlite::{Connection, TransactionBehavior, params};
use sql::{execute_all, finish, not_done};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most operations committed in one transaction.
pub const BATCH_MAX: usize = 1024;
/// Capacity of the writer's queue.
const QUEUE: usize = 8192;

/// How the writer thread batches.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Most operations per transaction (1: one transaction per message).
    pub batch_max: usize,
    /// The longest the writer waits after the first queued operation for more to join its
    /// transaction, unless [`LINGER_ENOUGH`] are already there or, at the recent pace, no other
    /// is due before the end (see `Pace`). Zero commits at once.
    pub linger: Duration,
    /// Most missed messages a returning user's join replays (`--history-on-join-missed`).
    pub missed_max: u32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            batch_max: BATCH_MAX,
            linger: DEFAULT_LINGER,
            missed_max: crate::config::DEFAULT_HISTORY_ON_JOIN_MISSED,
        }
    }
}

/// Default commit linger: at light load a few messages share a transaction and a write to each
/// recipient, for a few milliseconds of latency, and none at all when no other message is due
/// (docs/performance.md, L1, measures the trade).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(crate::config::DEFAULT_COMMIT_LINGER_MS);
/// A batch this large commits without lingering.
pub const LINGER_ENOUGH: usize = 256;
/// The WAL's documented bound (README, "The database"): it is truncated when it passes
/// [`WAL_TRUNCATE_AT`], and one check interval of the fastest writes adds well under the
/// difference.
pub const WAL_BOUND: u64 = 64 << 20;
/// WAL size at which the writer checkpoints and truncates it.
pub const WAL_TRUNCATE_AT: u64 = 16 << 20;
/// How often the writer looks at the WAL's size.
const WAL_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Starts the writer thread on `db`; committed events go to `sink`, in order.
pub fn start(db: WriterDb, sink: impl Sink, options: WriterOptions) -> std::io::Result<Log> {
    let (ops, rx) = mpsc::channel(QUEUE);
    let WriterDb {
        conn,
        path,
        identity,
        lock,
        messages,
    } = db;
    let stored = Arc::new(std::sync::atomic::AtomicI64::new(messages));
    let file = WatchedFile {
        path: path.clone(),
        identity,
    };
    let (alive, writer_gone) = std::sync::mpsc::channel::<()>();
    let checkpoints = std::thread::Builder::new()
        .name("linechat-checkpoint".into())
        .spawn(move || checkpoint::checkpointer(&path, writer_gone))?;
    let counted = stored.clone();
    let runner = std::thread::Builder::new()
        .name("linechat-writer".into())
        .spawn(move || {
            let stopped = Writer::new(conn, Box::new(sink), options, file, counted).run(rx);
            // The checkpointer's last checkpoint folds in everything committed, then a `stop`
            // returns; the lock is let go only after that.
            drop(alive);
            let _ = checkpoints.join();
            drop(lock);
            if let Some(done) = stopped {
                let _ = done.send(());
            }
        })?
        .thread()
        .clone();
    Ok(Log {
        ops,
        runner: Some(runner),
        stored,
    })
}

/// The database file as the writer opened it, to notice it being deleted or replaced.
struct WatchedFile {
    path: std::path::PathBuf,
    identity: Option<FileId>,
}

struct Writer {
    conn: Connection,
    file: WatchedFile,
    /// The WAL file, and when its size was last looked at (see [`Writer::bound_wal`]).
    wal_path: std::path::PathBuf,
    wal_checked: std::time::Instant,
    /// Whether the replaced file was logged already (once, not at every `#health`).
    file_gone_logged: std::cell::Cell<bool>,
    sink: Box<dyn Sink>,
    /// Room name -> id, for rooms known to be committed.
    room_ids: HashMap<Arc<str>, i64>,
    /// Where each session sits, for the seen marks.
    seats: seen::Seats,
    /// Most operations per transaction.
    batch_max: usize,
    /// See [`WriterOptions::linger`].
    linger: Duration,
    /// Messages stored: see [`Log::stored`].
    stored: Arc<std::sync::atomic::AtomicI64>,
}

impl Writer {
    fn new(
        conn: Connection,
        sink: Box<dyn Sink>,
        options: WriterOptions,
        file: WatchedFile,
        stored: Arc<std::sync::atomic::AtomicI64>,
    ) -> Writer {
        let mut wal = file.path.clone().into_os_string();
        wal.push("-wal");
        Writer {
            conn,
            wal_path: wal.into(),
            wal_checked: std::time::Instant::now(),
            file,
            file_gone_logged: std::cell::Cell::new(false),
            sink,
            room_ids: HashMap::new(),
            seats: seen::Seats::new(options.missed_max),
            batch_max: options.batch_max.max(1),
            linger: options.linger,
            stored,
        }
    }

    /// Commits batches until a `Stop` or until every sender is gone. While lingering the
    /// thread parks until the end of the linger (to the microsecond, where a timer wheel would
    /// round up to the next millisecond) or until [`Store::queue`] unparks it. It stops
    /// lingering early when, at the recent pace, the next operation is not due before the end
    /// (see [`Pace`]): waiting longer would add latency and batch nothing.
    /// Returns the `Stop`'s reply, sent once the checkpointer has finished too.
    fn run(mut self, mut rx: mpsc::Receiver<Op>) -> Option<oneshot::Sender<()>> {
        let mut batch = Vec::with_capacity(64);
        let mut pace = Pace::new(self.linger);
        while let Some(op) = rx.blocking_recv() {
            batch.push(op);
            let start = std::time::Instant::now();
            pace.arrived(start, 1);
            let deadline = start + self.linger;
            loop {
                let before = batch.len();
                while batch.len() < self.batch_max {
                    match rx.try_recv() {
                        Ok(op) => batch.push(op),
                        Err(_) => break,
                    }
                }
                let stopping = matches!(batch.last(), Some(Op::Stop { .. }));
                let now = std::time::Instant::now();
                pace.arrived(now, batch.len() - before);
                if batch.len() >= LINGER_ENOUGH.min(self.batch_max)
                    || stopping
                    || now >= deadline
                    || pace.next_due() >= deadline
                {
                    break;
                }
                // An unpark that came before this park makes it return at once: nothing queued
                // after the `try_recv` above is missed.
                std::thread::park_timeout(deadline - now);
            }
            let outcomes = self.commit(std::mem::take(&mut batch));
            if let Some(done) = self.dispatch(outcomes) {
                info!("store: writer stopped, everything queued is committed");
                return Some(done);
            }
            self.bound_wal();
        }
        None
    }

    /// Keeps the WAL under [`WAL_BOUND`]. The checkpointer's PASSIVE checkpoints never block
    /// the writer, but under sustained writes the WAL always has frames newer than the last
    /// checkpoint, so SQLite never restarts it from the top and it grows without end. When it
    /// passes [`WAL_TRUNCATE_AT`], the writer itself, between two transactions (so nothing
    /// waits on a lock), checkpoints in TRUNCATE mode, which folds every frame in and empties
    /// the file. That pauses commits for one checkpoint of at most that size, only under a
    /// load that fills it; the WAL's size is looked at every [`WAL_CHECK_EVERY`].
    fn bound_wal(&mut self) {
        let now = std::time::Instant::now();
        if now < self.wal_checked + WAL_CHECK_EVERY {
            return;
        }
        self.wal_checked = now;
        let size = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        if size < WAL_TRUNCATE_AT {
            return;
        }
        // Never waiting for readers: a search may hold its snapshot for up to its deadline,
        // and chat would wait with it. With readers on the WAL the checkpoint folds in what it
        // can (as PASSIVE would) and the next check tries again.
        let _ = self.conn.busy_timeout(Duration::ZERO);
        let checkpoint = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        let _ = self.conn.busy_timeout(crate::store::BUSY_TIMEOUT);
        match checkpoint {
            Ok(0) => debug!(
                "store: WAL of {} MiB checkpointed and truncated in {:?}",
                size >> 20,
                now.elapsed()
            ),
            // A reader is on the WAL: the next check tries again.
            Ok(_) => debug!("store: WAL truncation was busy; retrying"),
            Err(e) => warn!("store: WAL truncation failed: {e}"),
        }
    }

    /// Runs the batch in one transaction. If any statement or the commit fails, the whole
    /// batch is rolled back and every write in it is reported failed; nothing of it is delivered.
    fn commit(&mut self, ops: Vec<Op>) -> Vec<Outcome> {
        let n = ops.len();
        let mut new_rooms: Vec<Arc<str>> = Vec::new();
        // One timestamp per transaction: its messages are committed at the same moment.
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let seats = &mut self.seats;
        let started = std::time::Instant::now();
        let result = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                let dones = execute_all(&tx, &self.room_ids, &mut new_rooms, seats, &now, &ops)?;
                tx.commit()?;
                Ok(dones)
            });
        crate::meters::committed(n, started.elapsed());
        match result {
            Ok(dones) => {
                self.seats.commit();
                for r in new_rooms {
                    if let Some(id) = self.lookup_room(&r) {
                        self.room_ids.insert(r, id);
                    }
                }
                debug!("store: committed {n} operations");
                ops.into_iter()
                    .zip(dones)
                    .map(|(op, done)| finish(op, done))
                    .collect()
            }
            Err(e) => {
                self.seats.rollback();
                crate::meters::storage_error();
                error!("store: transaction of {n} operations rolled back: {e}");
                ops.into_iter().map(not_done).collect()
            }
        }
    }

    fn lookup_room(&self, name: &str) -> Option<i64> {
        self.conn
            .prepare_cached("SELECT id FROM rooms WHERE name = ?1")
            .and_then(|mut s| s.query_row(params![name], |r| r.get(0)))
            .ok()
    }

    /// `#health`'s answer once its transaction `committed` (or not).
    fn health(&self, committed: bool) -> Health {
        if !committed {
            return Health::Failing;
        }
        if self.file.identity.is_none() || FileId::of(&self.file.path) != self.file.identity {
            if self.file_gone_logged.replace(true) {
                return Health::FileReplaced;
            }
            error!(
                "store: {} was deleted or replaced while the daemon runs: what it commits now is lost when it stops",
                self.file.path.display()
            );
            return Health::FileReplaced;
        }
        Health::Ok
    }

    /// Hands each outcome on; returns a `Stop`'s reply, for the caller to send when it stops.
    fn dispatch(&self, outcomes: Vec<Outcome>) -> Option<oneshot::Sender<()>> {
        // Consecutive committed messages go to the sink as one event, so the actor can encode
        // each room's share once and queue it to each member as one item.
        let mut said: Vec<Committed> = Vec::new();
        let mut stop = None;
        let messages = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Said(_)))
            .count();
        self.stored
            .fetch_add(messages as i64, std::sync::atomic::Ordering::Relaxed);
        for o in outcomes {
            if let Outcome::Said(c) = o {
                said.push(c);
                continue;
            }
            if !said.is_empty() {
                self.sink.apply(Event::Said(std::mem::take(&mut said)));
            }
            match o {
                Outcome::Said(_) | Outcome::Nothing => {}
                Outcome::Event(e) => self.sink.apply(e),
                Outcome::Created(reply, r) => {
                    let _ = reply.send(r);
                }
                Outcome::Replied(reply, r) => {
                    let _ = reply.send(r);
                }
                Outcome::Moderated(reply, r) => {
                    let _ = reply.send(r);
                }
                Outcome::Health(reply, ok) => {
                    let _ = reply.send(self.health(ok));
                }
                Outcome::Stop(done) => stop = Some(done),
            }
        }
        if !said.is_empty() {
            self.sink.apply(Event::Said(said));
        }
        stop
    }
}

/// What an operation did, held until its transaction commits (or rolls back).
pub(super) enum Outcome {
    /// A committed message: consecutive ones go to the sink as one [`Event::Said`].
    Said(Committed),
    /// Any other event for the sink.
    Event(Event),
    /// An account created (or not): answered to the caller.
    Created(
        oneshot::Sender<Result<User, StoreError>>,
        Result<User, StoreError>,
    ),
    /// A write with nothing to report but whether it committed, answered to the caller.
    Replied(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    /// A moderation action, answered to the admin.
    Moderated(
        oneshot::Sender<Result<Applied, StoreError>>,
        Result<Applied, StoreError>,
    ),
    /// `#health`'s round trip, and whether its transaction committed.
    Health(oneshot::Sender<Health>, bool),
    /// Stop after this batch.
    Stop(oneshot::Sender<()>),
    /// A join that did not commit: its dropped reply tells the session.
    Nothing,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sync;
    use crate::store::Database;

    /// A sink that hands every event to the test, stamped with when it arrived.
    struct Collect(std::sync::mpsc::Sender<(std::time::Instant, Event)>);

    impl Sink for Collect {
        fn apply(&self, event: Event) {
            let _ = self.0.send((std::time::Instant::now(), event));
        }
    }

    type Events = std::sync::mpsc::Receiver<(std::time::Instant, Event)>;

    /// A log with the given linger over a fresh database, user "ann" and room "r", and the
    /// events it commits (the database's directory lives as long as the first element).
    async fn one_user(linger: Duration) -> (tempfile::TempDir, Log, User, Arc<str>, Events) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.db"), Sync::Normal).unwrap();
        let (tx, events) = std::sync::mpsc::channel();
        let options = WriterOptions {
            linger,
            ..WriterOptions::default()
        };
        let log = start(db.split().1, Collect(tx), options).unwrap();
        let user = log.create_user("ann", "x".into()).await.unwrap();
        (dir, log, user, Arc::from("r"), events)
    }

    /// The next batch of committed messages: when it came and how many it held.
    fn next_said(events: &Events) -> (std::time::Instant, usize) {
        loop {
            match events.recv_timeout(Duration::from_secs(5)) {
                Ok((at, Event::Said(batch))) => return (at, batch.len()),
                Ok(_) => continue,
                Err(e) => panic!("no commit: {e}"),
            }
        }
    }

    /// Messages arriving within the linger share one transaction (one event, one write to each
    /// reader); with no linger, messages that arrive apart commit apart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn linger_groups_messages_into_one_commit() {
        for (linger_ms, want) in [(200, vec![3]), (0, vec![1, 1, 1])] {
            let (_dir, log, user, room, events) = one_user(Duration::from_millis(linger_ms)).await;
            let t = std::time::Instant::now();
            for i in 0..3 {
                log.say(1, &user, &room, format!("m{i}"), false)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let mut got = Vec::new();
            while got.iter().sum::<usize>() < 3 {
                got.push(next_said(&events).1);
            }
            assert_eq!(got, want, "linger {linger_ms} ms");
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "linger {linger_ms} ms"
            );
            log.stop().await;
        }
    }

    /// When operations come further apart than the linger, lingering would batch nothing:
    /// the writer commits at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_queue_commits_without_lingering() {
        // A long linger, so that a machine busy with the other tests (a commit once took
        // 107 ms under the full suite) cannot pass for lingering. Gaps above two lingers
        // count as two: after four, the pace is ~1.4 lingers.
        let linger = Duration::from_millis(600);
        let (_dir, log, user, room, events) = one_user(linger).await;
        let mut waited = Vec::new();
        for i in 0..5 {
            tokio::time::sleep(Duration::from_millis(1350)).await;
            let t = std::time::Instant::now();
            log.say(1, &user, &room, format!("m{i}"), false)
                .await
                .unwrap();
            let (at, n) = next_said(&events);
            assert_eq!(n, 1);
            waited.push(at - t);
        }
        // The first lingers in full (no pace yet); by the last the pace says none is due.
        assert!(waited[0] >= linger, "{waited:?}");
        assert!(waited[4] < linger / 2, "{waited:?}");
        log.stop().await;
    }
}

//! SQLite storage: schema application, the writer thread (group commit), and an r2d2 pool for
//! reads.
//!
//! Decisions:
//! - One writer thread owns the only writing connection. It takes every queued operation (up to
//!   [`BATCH_MAX`]) into one transaction: under load many messages share a commit; at moderate
//!   load it lingers (up to `--commit-linger-ms`) while the recent pace says another message is
//!   due; when idle each message commits alone, with no lingering. Only after the commit does it
//!   hand results to the room actor, so every line a client saw is on disk (as durable as
//!   `--sync` makes it).
//!   Consecutive messages in a batch go in with multi-row `INSERT`s: SQLite's per-statement
//!   work (cursors, binding, reset) is paid once per chunk, not once per message.
//! - Joins and leaves travel the same queue as messages. A join reads the room's recent messages
//!   inside the transaction that records it, and reaches the actor in commit order: each message
//!   reaches a joiner exactly once, as `HIST` (committed before the join) or `MSG` (after).
//! - Reads (login lookups, history) use a pool of WAL readers on `spawn_blocking`, never the
//!   writer, so history queries never delay chat.
//! - `PRAGMA user_version` holds the schema version; `schema.sql` is applied idempotently in one
//!   exclusive transaction. A file that is not a linechat database is refused, never altered.

use crate::config::Sync;
use crate::protocol::{ErrCode, HistRow, Page, ProtoError, Reply};
use crate::rooms::{Committed, Departure, Joined, Rooms};
use crate::{SessionId, User, UserId};
use log::{debug, error, info, warn};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The schema, applied at every start.
pub const SCHEMA: &str = include_str!("../schema.sql");
/// Version recorded in `PRAGMA user_version` once [`SCHEMA`] is applied.
pub const SCHEMA_VERSION: i64 = 1;
/// Most operations committed in one transaction.
pub const BATCH_MAX: usize = 1024;
/// Capacity of the writer's queue.
const QUEUE: usize = 8192;
/// How long a statement waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Read connections in the pool.
const READERS: u32 = 4;

/// A storage failure.
#[derive(Debug)]
pub enum StoreError {
    /// A user with this name exists.
    Exists,
    /// SQLite failed.
    Sqlite(String),
    /// The store is shutting down.
    Closed,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Exists => f.write_str("name already registered"),
            StoreError::Sqlite(e) => write!(f, "sqlite: {e}"),
            StoreError::Closed => f.write_str("store closed"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

impl StoreError {
    /// The protocol error a client sees for this failure.
    pub fn to_proto(&self) -> ProtoError {
        match self {
            StoreError::Exists => ProtoError::new(ErrCode::Exists, "that name is taken"),
            StoreError::Sqlite(_) | StoreError::Closed => ProtoError::new(
                ErrCode::Storage,
                "the server could not store that; nothing was changed, try again",
            ),
        }
    }
}

type Pool = r2d2::Pool<SqliteConnectionManager>;

/// An opened database with its schema applied, not yet serving.
pub struct Database {
    writer: Connection,
    pool: Pool,
    path: std::path::PathBuf,
}

/// How the writer thread batches.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Most operations per transaction (1: one transaction per message).
    pub batch_max: usize,
    /// The longest the writer waits after the first queued operation for more to join its
    /// transaction, unless [`LINGER_ENOUGH`] are already there or, at the recent pace, no other
    /// is due before the end (see `Pace`). Zero commits at once.
    pub linger: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            batch_max: BATCH_MAX,
            linger: DEFAULT_LINGER,
        }
    }
}

/// Default commit linger: at light load a few messages share a transaction and a write to each
/// recipient, for a few milliseconds of latency, and none at all when no other message is due
/// (docs/performance.md, L1, measures the trade).
pub const DEFAULT_LINGER: Duration = Duration::from_millis(crate::config::DEFAULT_COMMIT_LINGER_MS);
/// A batch this large commits without lingering.
pub const LINGER_ENOUGH: usize = 256;
/// How often the background checkpointer folds the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Database {
    /// Opens (creating if missing) the database at `path` and applies the schema. Refuses a file
    /// that is not SQLite, or a SQLite database that is not linechat's.
    pub fn open(path: &Path, sync: Sync) -> Result<Database, String> {
        let fail =
            |e: &dyn fmt::Display| format!("cannot use {} as the database: {e}", path.display());
        let mut writer = Connection::open(path).map_err(|e| fail(&e))?;
        configure(&writer).map_err(|e| fail(&e))?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| fail(&e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(&format!("journal_mode is {mode}, WAL is required")));
        }
        writer
            .pragma_update(None, "synchronous", sync.pragma())
            .map_err(|e| fail(&e))?;
        apply_schema(&mut writer).map_err(|e| fail(&e))?;
        let manager = SqliteConnectionManager::file(path).with_init(|c| configure(c));
        let pool = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(1))
            .build(manager)
            .map_err(|e| fail(&e))?;
        // Checkpoints run on their own thread (see `checkpointer`), never inside a commit.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| fail(&e))?;
        Ok(Database {
            writer,
            pool,
            path: path.to_path_buf(),
        })
    }
}

fn apply_schema(conn: &mut Connection) -> Result<(), String> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(|e| e.to_string())?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version == 0 {
        let foreign: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| e.to_string())?;
        if foreign > 0 {
            return Err("it is a SQLite database of another program (it has tables and no linechat schema version)".into());
        }
    } else if version != SCHEMA_VERSION {
        return Err(format!(
            "its schema version is {version}, this linechatd knows version {SCHEMA_VERSION}"
        ));
    }
    tx.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| e.to_string())?;
    tx.commit().map_err(|e| e.to_string())
}

/// One operation for the writer thread.
enum Op {
    CreateUser {
        name: String,
        hash: String,
        reply: oneshot::Sender<Result<User, StoreError>>,
    },
    Say {
        session: SessionId,
        user: User,
        room: Arc<str>,
        text: String,
    },
    Join {
        session: SessionId,
        user: User,
        room: Arc<str>,
        history: u32,
        reply: oneshot::Sender<usize>,
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
        reply: oneshot::Sender<bool>,
    },
    Stop {
        done: oneshot::Sender<()>,
    },
}

/// What an operation did, held until its transaction commits.
enum Outcome {
    Created(
        oneshot::Sender<Result<User, StoreError>>,
        Result<User, StoreError>,
    ),
    Said(Committed),
    SayFailed(SessionId),
    Joined(Joined),
    /// The join's reply was dropped: the session answers `ERR storage` and logs it.
    JoinFailed,
    Leave(SessionId, oneshot::Sender<Option<Arc<str>>>),
    Depart(Departure, oneshot::Sender<()>),
    Health(oneshot::Sender<bool>, bool),
    Stop(oneshot::Sender<()>),
}

/// Handle to the store: queue writes, run reads. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    ops: mpsc::Sender<Op>,
    /// The writer thread, unparked after every queued operation (see [`Writer::run`]).
    writer: std::thread::Thread,
    pool: Pool,
}

impl Store {
    /// Starts the writer thread on `db`; committed results go to `rooms`.
    pub fn start(db: Database, rooms: Rooms, options: WriterOptions) -> std::io::Result<Store> {
        let (ops, rx) = mpsc::channel(QUEUE);
        let Database { writer, pool, path } = db;
        let (alive, writer_gone) = std::sync::mpsc::channel::<()>();
        let checkpoints = std::thread::Builder::new()
            .name("linechat-checkpoint".into())
            .spawn(move || checkpointer(&path, writer_gone))?;
        let writer = std::thread::Builder::new()
            .name("linechat-writer".into())
            .spawn(move || {
                let stopped = Writer::new(writer, rooms, options).run(rx);
                // The checkpointer's last checkpoint folds in everything committed, then a
                // `stop` returns.
                drop(alive);
                let _ = checkpoints.join();
                if let Some(done) = stopped {
                    let _ = done.send(());
                }
            })?
            .thread()
            .clone();
        Ok(Store { ops, writer, pool })
    }

    async fn queue(&self, op: Op) -> Result<(), StoreError> {
        self.ops.send(op).await.map_err(|_| StoreError::Closed)?;
        // Wakes a writer lingering for more (a no-op store of a token otherwise).
        self.writer.unpark();
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

    /// Queues a chat line. Its delivery (the sender's copy included) or an `ERR storage` line
    /// reaches the session through the room actor once the transaction ends.
    pub async fn say(
        &self,
        session: SessionId,
        user: &User,
        room: &Arc<str>,
        text: String,
    ) -> Result<(), StoreError> {
        self.queue(Op::Say {
            session,
            user: user.clone(),
            room: room.clone(),
            text,
        })
        .await
    }

    /// Records a join and has the actor seat the session; returns the room's user count. The
    /// actor queues `OK join`, the welcome and the replay to the session itself.
    pub async fn join(
        &self,
        session: SessionId,
        user: &User,
        room: &Arc<str>,
        history: u32,
    ) -> Result<usize, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::Join {
            session,
            user: user.clone(),
            room: room.clone(),
            history,
            reply,
        })
        .await?;
        // A dropped reply means the transaction failed (the writer told the session) or the
        // session vanished.
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
    /// messages: once those are committed and delivered (their senders acknowledged), the actor
    /// sends the departure's last line, forgets the session and, if asked, tells its room.
    pub async fn depart(&self, departure: Departure) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.queue(Op::Depart { departure, reply }).await?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// A round trip through the writer: true if it ran a query in a transaction that
    /// committed, i.e. the writer thread is alive, not stuck, and the database answers.
    pub async fn health(&self) -> bool {
        let (reply, rx) = oneshot::channel();
        if self.queue(Op::Health { reply }).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Operations waiting for the writer.
    pub fn writer_queue(&self) -> usize {
        self.ops.max_capacity() - self.ops.capacity()
    }

    /// Messages stored, ever (ids are never reused or deleted).
    pub async fn message_count(&self) -> Result<i64, StoreError> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
                    r.get(0)
                })?,
            )
        })
        .await
    }

    /// Commits everything queued so far, stops the writer thread and returns once the final
    /// checkpoint has folded the WAL into the database file.
    pub async fn stop(&self) {
        let (done, rx) = oneshot::channel();
        if self.queue(Op::Stop { done }).await.is_ok() {
            let _ = rx.await;
        }
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.get()?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Sqlite(e.to_string()))?
    }

    /// Looks an account up by name (any case): the user and their password hash.
    pub async fn find_user(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        let name = name.to_string();
        self.read(move |c| {
            let row = c
                .prepare_cached("SELECT id, name, password_hash FROM users WHERE name = ?1")?
                .query_row(params![name], |r| {
                    Ok((
                        User {
                            id: r.get(0)?,
                            name: Arc::from(r.get::<_, String>(1)?),
                        },
                        r.get::<_, String>(2)?,
                    ))
                })
                .optional()?;
            Ok(row)
        })
        .await
    }

    /// Every message `user` sent, in every room: one page, oldest first.
    pub async fn all_messages(&self, user: UserId, page: Page) -> Result<Vec<HistRow>, StoreError> {
        self.read(move |c| {
            let mut rows = query_hist(
                c,
                &format!(
                    "{HIST_SELECT} WHERE m.user_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"
                ),
                params![user, page.before.unwrap_or(i64::MAX), page.limit],
            )?;
            rows.reverse();
            Ok(rows)
        })
        .await
    }

    /// The messages of every room `user` has ever joined: one page, oldest first. A merge of
    /// one index range scan per room, newest first, stepped lazily: it reads the page's rows
    /// plus at most one more per room, whatever the size of the history.
    pub async fn my_messages(&self, user: UserId, page: Page) -> Result<Vec<HistRow>, StoreError> {
        self.read(move |c| Ok(merge_rooms(c, user, page)?)).await
    }
}

fn merge_rooms(c: &Connection, user: UserId, page: Page) -> rusqlite::Result<Vec<HistRow>> {
    let rooms: Vec<i64> = c
        .prepare_cached("SELECT room_id FROM memberships WHERE user_id = ?1")?
        .query_map(params![user], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let sql =
        format!("{HIST_SELECT} WHERE m.room_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3");
    let mut stmts = Vec::with_capacity(rooms.len());
    for _ in &rooms {
        stmts.push(c.prepare(&sql)?);
    }
    let before = page.before.unwrap_or(i64::MAX);
    let mut cursors = Vec::with_capacity(rooms.len());
    for (stmt, room) in stmts.iter_mut().zip(&rooms) {
        cursors.push(stmt.query(params![room, before, page.limit])?);
    }
    let mut heads = Vec::with_capacity(cursors.len());
    for cur in cursors.iter_mut() {
        heads.push(next_hist(cur)?);
    }
    let mut out = Vec::with_capacity(page.limit as usize);
    while out.len() < page.limit as usize {
        let newest = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (h.id, i)))
            .max();
        let Some((_, i)) = newest else { break };
        if let Some(row) = heads[i].take() {
            out.push(row);
        }
        heads[i] = next_hist(&mut cursors[i])?;
    }
    out.reverse();
    Ok(out)
}

/// One row of [`HIST_SELECT`].
fn hist_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HistRow> {
    Ok(HistRow {
        id: r.get(0)?,
        time: r.get(1)?,
        room: r.get(2)?,
        name: r.get(3)?,
        text: r.get(4)?,
    })
}

fn next_hist(rows: &mut rusqlite::Rows<'_>) -> rusqlite::Result<Option<HistRow>> {
    rows.next()?.map(hist_row).transpose()
}

const HIST_SELECT: &str = "SELECT m.id, m.created_at, r.name, u.name, m.body \
     FROM messages m JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id";

fn query_hist(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<HistRow>> {
    c.prepare_cached(sql)?
        .query_map(params, hist_row)?
        .collect()
}

/// The newest `limit` messages of `room` below `before`, newest first.
fn room_tail(
    c: &Connection,
    room: i64,
    before: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<HistRow>> {
    query_hist(
        c,
        &format!("{HIST_SELECT} WHERE m.room_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"),
        params![room, before.unwrap_or(i64::MAX), limit],
    )
}

struct Writer {
    conn: Connection,
    rooms: Rooms,
    /// Room name -> id, for rooms known to be committed.
    room_ids: HashMap<Arc<str>, i64>,
    /// Most operations per transaction.
    batch_max: usize,
    /// See [`WriterOptions::linger`].
    linger: Duration,
}

impl Writer {
    fn new(conn: Connection, rooms: Rooms, options: WriterOptions) -> Writer {
        Writer {
            conn,
            rooms,
            room_ids: HashMap::new(),
            batch_max: options.batch_max.max(1),
            linger: options.linger,
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
        }
        None
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
        let result = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .and_then(|tx| {
                let dones = execute_all(&tx, &self.room_ids, &mut new_rooms, &now, &ops)?;
                tx.commit()?;
                Ok(dones)
            });
        match result {
            Ok(dones) => {
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

    /// Hands each outcome on; returns a `Stop`'s reply, for the caller to send when it stops.
    fn dispatch(&self, outcomes: Vec<Outcome>) -> Option<oneshot::Sender<()>> {
        let storage_err = || {
            let e = StoreError::Sqlite(String::new()).to_proto();
            Reply::Err(e.code, &e.text).to_bytes()
        };
        // Consecutive committed messages go to the actor as one batch, so it can encode each
        // room's share once and queue it to each member as one item.
        let mut said: Vec<Committed> = Vec::new();
        let mut stop = None;
        for o in outcomes {
            if let Outcome::Said(c) = o {
                said.push(c);
                continue;
            }
            if !said.is_empty() {
                self.rooms.blocking_deliver(std::mem::take(&mut said));
            }
            match o {
                Outcome::Said(_) => {}
                Outcome::Created(reply, r) => {
                    let _ = reply.send(r);
                }
                Outcome::SayFailed(session) => self.rooms.blocking_send_to(session, storage_err()),
                Outcome::Joined(j) => self.rooms.blocking_joined(j),
                Outcome::JoinFailed => {}
                Outcome::Leave(session, reply) => self.rooms.blocking_left(session, reply),
                Outcome::Depart(departure, reply) => self.rooms.blocking_depart(departure, reply),
                Outcome::Health(reply, ok) => {
                    let _ = reply.send(ok);
                }
                Outcome::Stop(done) => stop = Some(done),
            }
        }
        if !said.is_empty() {
            self.rooms.blocking_deliver(said);
        }
        stop
    }
}

/// The recent pace of the writer's queue: a moving average of the gap between operations, to
/// tell whether another is due within a linger. Gaps longer than two lingers count as two
/// lingers, so after a quiet spell the pace catches up with a burst within a few operations.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// When the last operation arrived.
    last: Option<std::time::Instant>,
    /// Exponentially weighted mean gap (weight 1/4 to the newest), in nanoseconds. Starts at
    /// zero: with no history the writer lingers in full.
    mean_gap_ns: u64,
    /// The longest gap counted, in nanoseconds.
    cap_ns: u64,
}

impl Pace {
    fn new(linger: Duration) -> Pace {
        Pace {
            last: None,
            mean_gap_ns: 0,
            cap_ns: u64::try_from(linger.as_nanos().saturating_mul(2)).unwrap_or(u64::MAX),
        }
    }

    /// Notes `n` operations that arrived since the last call, the latest at `now`.
    fn arrived(&mut self, now: std::time::Instant, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(last) = self.last {
            let span =
                u64::try_from(now.saturating_duration_since(last).as_nanos()).unwrap_or(u64::MAX);
            for gap in std::iter::repeat_n((span / n as u64).min(self.cap_ns), n) {
                self.mean_gap_ns = self.mean_gap_ns - self.mean_gap_ns / 4 + gap / 4;
            }
        }
        self.last = Some(now);
    }

    /// When the next operation is due at the recent pace (long ago if nothing came yet).
    fn next_due(&self) -> std::time::Instant {
        match self.last {
            Some(last) => last + Duration::from_nanos(self.mean_gap_ns),
            None => std::time::Instant::now(),
        }
    }
}

/// What executing an operation inside the transaction produced.
enum Done {
    Created(Result<UserId, StoreError>),
    Said(i64),
    Joined(Vec<HistRow>),
    Nothing,
}

/// Executes a batch's statements in order, one result per operation; an `Err` aborts the
/// whole transaction. Consecutive messages are inserted together (see [`insert_messages`]);
/// they are flushed before any other operation, so a join's history sees the messages queued
/// ahead of it.
fn execute_all(
    tx: &Connection,
    cache: &HashMap<Arc<str>, i64>,
    new_rooms: &mut Vec<Arc<str>>,
    now: &str,
    ops: &[Op],
) -> rusqlite::Result<Vec<Done>> {
    let mut dones = Vec::with_capacity(ops.len());
    // (index in `ops`, room id, user id, body) of messages not yet inserted.
    let mut says: Vec<(usize, i64, UserId, &str)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Say {
            user, room, text, ..
        } = op
        {
            let room_id = room_id(tx, cache, new_rooms, room)?;
            says.push((i, room_id, user.id, text));
            // Its id is filled in when the message is inserted.
            dones.push(Done::Said(0));
            continue;
        }
        insert_messages(tx, now, &says, &mut dones)?;
        says.clear();
        dones.push(execute(tx, cache, new_rooms, op)?);
    }
    insert_messages(tx, now, &says, &mut dones)?;
    Ok(dones)
}

/// Most messages in one multi-row `INSERT`.
const INSERT_ROWS: usize = 64;

/// Inserts `says` with as few statements as it can: chunks of [`INSERT_ROWS`], then powers of
/// two, so a handful of cached statements serve any batch. Each chunk's rows get consecutive
/// ids ending at `last_insert_rowid()`: this connection is the only writer, and a row inserted
/// without an id into a table whose key is a plain `INTEGER PRIMARY KEY` gets the largest id
/// so far plus one (schema.sql keeps it so: no AUTOINCREMENT). Writes each id into `dones`.
fn insert_messages(
    tx: &Connection,
    now: &str,
    says: &[(usize, i64, UserId, &str)],
    dones: &mut [Done],
) -> rusqlite::Result<()> {
    let mut rest = says;
    while !rest.is_empty() {
        let rows = if rest.len() >= INSERT_ROWS {
            INSERT_ROWS
        } else {
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let mut stmt = tx.prepare_cached(&INSERT_SQL[rows.ilog2() as usize])?;
        for (k, (_, room_id, user_id, text)) in chunk.iter().enumerate() {
            let at = 4 * k;
            stmt.raw_bind_parameter(at + 1, room_id)?;
            stmt.raw_bind_parameter(at + 2, user_id)?;
            stmt.raw_bind_parameter(at + 3, now)?;
            stmt.raw_bind_parameter(at + 4, text)?;
        }
        let inserted = stmt.raw_execute()?;
        if inserted != rows {
            return Err(rusqlite::Error::StatementChangedRows(inserted));
        }
        let first = tx.last_insert_rowid() - rows as i64 + 1;
        for (k, (i, ..)) in chunk.iter().enumerate() {
            dones[*i] = Done::Said(first + k as i64);
        }
    }
    Ok(())
}

/// `INSERT INTO messages` statements of 1, 2, 4 .. [`INSERT_ROWS`] rows, built once.
static INSERT_SQL: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
    (0..=INSERT_ROWS.ilog2())
        .map(|k| insert_sql(1 << k))
        .collect()
});

/// `INSERT INTO messages` of `rows` rows, four parameters each.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from("INSERT INTO messages (room_id, user_id, created_at, body) VALUES ");
    for k in 0..rows {
        if k > 0 {
            sql.push(',');
        }
        let at = 4 * k;
        sql.push_str(&format!(
            "(?{},?{},?{},?{})",
            at + 1,
            at + 2,
            at + 3,
            at + 4
        ));
    }
    sql
}

/// Executes `op`'s statements; an `Err` aborts the whole transaction. A taken name is not an
/// error of the transaction: SQLite undoes just that statement.
fn execute(
    tx: &Connection,
    cache: &HashMap<Arc<str>, i64>,
    new_rooms: &mut Vec<Arc<str>>,
    op: &Op,
) -> rusqlite::Result<Done> {
    Ok(match op {
        Op::CreateUser { name, hash, .. } => {
            let r = tx
                .prepare_cached("INSERT INTO users (name, password_hash) VALUES (?1, ?2)")?
                .execute(params![name, hash]);
            match r {
                Ok(_) => Done::Created(Ok(tx.last_insert_rowid())),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Done::Created(Err(StoreError::Exists))
                }
                Err(e) => return Err(e),
            }
        }
        Op::Join {
            user,
            room,
            history,
            ..
        } => {
            let room_id = room_id(tx, cache, new_rooms, room)?;
            tx.prepare_cached(
                "INSERT INTO memberships (user_id, room_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![user.id, room_id])?;
            let mut rows = if *history == 0 {
                Vec::new()
            } else {
                room_tail(tx, room_id, None, *history)?
            };
            rows.reverse();
            Done::Joined(rows)
        }
        Op::Health { .. } => {
            tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Done::Nothing
        }
        // Messages are inserted by `insert_messages`.
        Op::Say { .. } | Op::Leave { .. } | Op::Depart { .. } | Op::Stop { .. } => Done::Nothing,
    })
}

/// Pairs an executed operation with what it produced.
fn finish(op: Op, done: Done) -> Outcome {
    match (op, done) {
        (Op::CreateUser { name, reply, .. }, Done::Created(r)) => Outcome::Created(
            reply,
            r.map(|id| User {
                id,
                name: Arc::from(name),
            }),
        ),
        (
            Op::Say {
                session,
                user,
                room,
                text,
            },
            Done::Said(id),
        ) => Outcome::Said(Committed {
            id,
            room,
            name: user.name,
            text,
            sender: session,
        }),
        (
            Op::Join {
                session,
                user,
                room,
                reply,
                ..
            },
            Done::Joined(history),
        ) => Outcome::Joined(Joined {
            session,
            user,
            room,
            history,
            reply,
        }),
        (Op::Health { reply }, Done::Nothing) => Outcome::Health(reply, true),
        (op, _) => not_done(op),
    }
}

/// Folds the WAL into the database file every [`CHECKPOINT_EVERY`], on its own connection, in
/// PASSIVE mode (never blocking the writer or readers), so no commit ever waits for a
/// checkpoint's fsync. Ends with a final checkpoint when the writer thread has finished.
fn checkpointer(path: &Path, writer_gone: std::sync::mpsc::Receiver<()>) {
    let conn = match Connection::open(path).and_then(|c| configure(&c).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            error!("store: checkpointer cannot open the database: {e}");
            return;
        }
    };
    // Logged when checkpoints start or stop failing, not every half second of a fault.
    let mut failing = false;
    let mut checkpoint = |mode: &str| match conn.query_row(
        &format!("PRAGMA wal_checkpoint({mode})"),
        [],
        |_| Ok(()),
    ) {
        Err(e) if !failing => {
            warn!("store: checkpoints failing: {e}");
            failing = true;
        }
        Ok(()) if failing => {
            info!("store: checkpoints working again");
            failing = false;
        }
        _ => {}
    };
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        writer_gone.recv_timeout(CHECKPOINT_EVERY)
    {
        checkpoint("PASSIVE");
    }
    checkpoint("TRUNCATE");
}

/// The outcome of an operation whose transaction did not commit: every write in it is reported
/// failed, the rest (leave, depart, stop) still answered.
fn not_done(op: Op) -> Outcome {
    match op {
        Op::CreateUser { reply, .. } => {
            Outcome::Created(reply, Err(StoreError::Sqlite("rolled back".into())))
        }
        Op::Say { session, .. } => Outcome::SayFailed(session),
        Op::Join { .. } => Outcome::JoinFailed,
        Op::Leave { session, reply } => Outcome::Leave(session, reply),
        Op::Depart { departure, reply } => Outcome::Depart(departure, reply),
        Op::Health { reply } => Outcome::Health(reply, false),
        Op::Stop { done } => Outcome::Stop(done),
    }
}

/// The room's id, creating the room if needed. Rooms created in this transaction are noted so
/// the cache learns them only once it commits.
fn room_id(
    tx: &Connection,
    cache: &HashMap<Arc<str>, i64>,
    new_rooms: &mut Vec<Arc<str>>,
    room: &Arc<str>,
) -> rusqlite::Result<i64> {
    if let Some(id) = cache.get(room) {
        return Ok(*id);
    }
    tx.prepare_cached("INSERT INTO rooms (name) VALUES (?1) ON CONFLICT DO NOTHING")?
        .execute(params![&**room])?;
    let id = tx
        .prepare_cached("SELECT id FROM rooms WHERE name = ?1")?
        .query_row(params![&**room], |r| r.get(0))?;
    new_rooms.push(room.clone());
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with the given linger over a fresh database, and session 1 of user "ann" joined
    /// to room "r" (the database's directory lives as long as the first element).
    async fn one_member_room(
        linger: Duration,
    ) -> (
        tempfile::TempDir,
        Store,
        User,
        Arc<str>,
        crate::outbox::Outbox,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.db"), Sync::Normal).unwrap();
        let rooms = Rooms::spawn();
        let options = WriterOptions {
            linger,
            ..WriterOptions::default()
        };
        let store = Store::start(db, rooms.clone(), options).unwrap();
        let user = store.create_user("ann", "x".into()).await.unwrap();
        let outbox = crate::outbox::Outbox::new(100, 1 << 20);
        rooms.attach(1, user.id, outbox.clone()).await;
        let room: Arc<str> = Arc::from("r");
        store.join(1, &user, &room, 0).await.unwrap();
        (dir, store, user, room, outbox)
    }

    /// Messages arriving within the linger share one transaction, so each reader gets them
    /// as one queued item; with no linger, messages that arrive apart commit apart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn linger_groups_messages_into_one_commit() {
        for (linger_ms, want_items) in [(200, 1), (0, 3)] {
            let (_dir, store, user, room, outbox) =
                one_member_room(Duration::from_millis(linger_ms)).await;
            let joined = outbox.len();
            let t = std::time::Instant::now();
            for i in 0..3 {
                store.say(1, &user, &room, format!("m{i}")).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            while outbox.len() < joined + want_items && t.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(outbox.len() - joined, want_items, "linger {linger_ms} ms");
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "linger {linger_ms} ms"
            );
            store.stop().await;
        }
    }

    #[test]
    fn pace_follows_the_gap_between_operations() {
        let linger = Duration::from_millis(4);
        let t0 = std::time::Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut pace = Pace::new(linger);
        // No history: due at once, so the writer lingers in full.
        assert!(pace.next_due() <= std::time::Instant::now());
        // Steady, one every 2 ms: the next is due 2 ms after the last.
        for k in 0..30 {
            pace.arrived(ms(2 * k), 1);
        }
        let due = pace.next_due() - ms(58);
        assert!(
            due > Duration::from_micros(1900) && due <= Duration::from_millis(2),
            "{due:?}"
        );
        // Eight that came together over 8 ms count as eight 1 ms gaps.
        pace.arrived(ms(66), 8);
        let due = pace.next_due() - ms(66);
        assert!(due < Duration::from_micros(1200), "{due:?}");
        // A quiet room: gaps of a second count as two lingers, and soon nothing is due
        // within a linger.
        for k in 1..=4 {
            pace.arrived(ms(66 + 1000 * k), 1);
        }
        let due = pace.next_due() - ms(4066);
        assert!(due > linger && due <= 2 * linger, "{due:?}");
        // A burst after it: within a few operations the writer lingers again.
        for k in 1..=4 {
            pace.arrived(ms(4066 + k), 1);
        }
        let due = pace.next_due() - ms(4070);
        assert!(due < linger, "{due:?}");
    }

    /// When operations come further apart than the linger, lingering would batch nothing:
    /// the writer commits at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_queue_commits_without_lingering() {
        // A long linger, so that a machine busy with the other tests (a commit once took
        // 107 ms under the full suite) cannot pass for lingering. Gaps above two lingers
        // count as two: after four, the pace is ~1.4 lingers.
        let linger = Duration::from_millis(600);
        let (_dir, store, user, room, outbox) = one_member_room(linger).await;
        let mut waited = Vec::new();
        for i in 0..5 {
            tokio::time::sleep(Duration::from_millis(1350)).await;
            let before = outbox.len();
            let t = std::time::Instant::now();
            store.say(1, &user, &room, format!("m{i}")).await.unwrap();
            while outbox.len() == before && t.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            waited.push(t.elapsed());
        }
        // The first lingers in full (no pace yet); by the last the pace says none is due.
        assert!(waited[0] >= linger, "{waited:?}");
        assert!(waited[4] < linger / 2, "{waited:?}");
        store.stop().await;
    }

    /// Messages batched into multi-row INSERTs get the ids of their own rows, in queue order,
    /// across chunk sizes and rooms; a join in the middle sees exactly the messages before it.
    #[test]
    fn a_batch_of_messages_gets_the_ids_of_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("t.db"), Sync::Normal).unwrap();
        let tx = db.writer.transaction().unwrap();
        tx.execute(
            "INSERT INTO users (name, password_hash) VALUES ('ann', 'x')",
            [],
        )
        .unwrap();
        let user = User {
            id: tx.last_insert_rowid(),
            name: Arc::from("ann"),
        };
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let mut ops = Vec::new();
        // 70 messages (64 + 4 + 2 rows), a join, then 131 more (64 + 64 + 2 + 1).
        for i in 0..201 {
            if i == 70 {
                let (reply, _) = oneshot::channel();
                ops.push(Op::Join {
                    session: 1,
                    user: user.clone(),
                    room: a.clone(),
                    history: 500,
                    reply,
                });
            }
            ops.push(Op::Say {
                session: 1,
                user: user.clone(),
                room: if i % 3 == 0 { b.clone() } else { a.clone() },
                text: format!("m{i}"),
            });
        }
        let mut new_rooms = Vec::new();
        let now = "2026-11-29T08:00:00.000Z";
        let dones = execute_all(&tx, &HashMap::new(), &mut new_rooms, now, &ops).unwrap();
        assert_eq!(dones.len(), ops.len());
        let mut ids = Vec::new();
        for (op, done) in ops.iter().zip(&dones) {
            match (op, done) {
                (Op::Say { room, text, .. }, Done::Said(id)) => {
                    let (got_room, got_text): (String, String) = tx
                        .query_row(
                            "SELECT r.name, m.body FROM messages m JOIN rooms r ON r.id = m.room_id \
                             WHERE m.id = ?1",
                            [id],
                            |r| Ok((r.get(0)?, r.get(1)?)),
                        )
                        .unwrap();
                    assert_eq!((got_room.as_str(), got_text.as_str()), (&**room, &**text));
                    ids.push(*id);
                }
                (Op::Join { .. }, Done::Joined(rows)) => {
                    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
                    let want: Vec<String> = (0..70)
                        .filter(|i| i % 3 != 0)
                        .map(|i| format!("m{i}"))
                        .collect();
                    assert_eq!(texts, want);
                }
                _ => panic!("an operation without its result"),
            }
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in queue order");
        let stored: i64 = tx
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 201);
    }

    #[test]
    fn schema_applies_twice_and_records_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(Database::open(&path, Sync::Normal).unwrap());
        let db = Database::open(&path, Sync::Normal).unwrap();
        let v: i64 = db
            .writer
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let mode: String = db
            .writer
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn durability_flag_sets_synchronous() {
        let dir = tempfile::tempdir().unwrap();
        for (sync, want) in [(Sync::Normal, 1), (Sync::Full, 2)] {
            let db = Database::open(&dir.path().join(format!("{want}.db")), sync).unwrap();
            let got: i64 = db
                .writer
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap();
            assert_eq!(got, want, "{sync:?}");
            let fk: i64 = db
                .writer
                .pragma_query_value(None, "foreign_keys", |r| r.get(0))
                .unwrap();
            assert_eq!(fk, 1);
        }
    }

    #[test]
    fn refuses_foreign_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        let e = Database::open(&junk, Sync::Normal).err().unwrap();
        assert!(e.contains("cannot use"), "{e}");
        assert_eq!(std::fs::read(&junk).unwrap(), vec![b'x'; 4096]);

        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
            .unwrap();
        let e = Database::open(&other, Sync::Normal).err().unwrap();
        assert!(e.contains("another program"), "{e}");
    }

    #[test]
    fn history_queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("t.db"), Sync::Normal).unwrap();
        let plan = |sql: &str| -> String {
            let mut s = db
                .writer
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let rows: Vec<String> = s
                .query_map([1, 2, 3], |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            rows.join("; ")
        };
        let by_room = plan(&format!(
            "{HIST_SELECT} WHERE m.room_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"
        ));
        assert!(
            by_room.contains("USING INDEX messages_room_id"),
            "{by_room}"
        );
        assert!(!by_room.contains("TEMP B-TREE"), "{by_room}");
        let by_user = plan(&format!(
            "{HIST_SELECT} WHERE m.user_id = ?1 AND m.id < ?2 ORDER BY m.id DESC LIMIT ?3"
        ));
        assert!(
            by_user.contains("USING INDEX messages_user_id"),
            "{by_user}"
        );
        assert!(!by_user.contains("TEMP B-TREE"), "{by_user}");
    }
}

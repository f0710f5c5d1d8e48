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
//! - The schema is versioned by [`migrations`] (`PRAGMA user_version`); a file that is not a
//!   linechat database, or is newer than this daemon, is refused and never altered.
//! - One daemon per database: [`lock`] holds an OS lock on `DB.lock` for the daemon's life.

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

pub mod lock;
pub mod migrations;

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
    /// The database file's identity when it was opened, for `#health`.
    identity: Option<FileId>,
    /// The daemon's lock on the database, held until the writer has finished.
    lock: lock::DaemonLock,
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
/// The WAL's documented bound (protocol.md and README: operations): it is truncated when it
/// passes [`WAL_TRUNCATE_AT`], and one check interval of the fastest writes adds well under the
/// difference.
pub const WAL_BOUND: u64 = 64 << 20;
/// WAL size at which the writer checkpoints and truncates it.
pub const WAL_TRUNCATE_AT: u64 = 16 << 20;
/// How often the writer looks at the WAL's size.
const WAL_CHECK_EVERY: Duration = Duration::from_millis(100);

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Database {
    /// Opens (creating if missing) the database at `path`, takes the daemon's lock on it and
    /// brings its schema up to date. Refuses a file that is not SQLite, a SQLite database that
    /// is not linechat's, one from a newer linechatd, and one another linechatd is serving.
    pub fn open(path: &Path, sync: Sync) -> Result<Database, String> {
        let fail =
            |e: &dyn fmt::Display| format!("cannot use {} as the database: {e}", path.display());
        let lock = lock::DaemonLock::take(path).map_err(|e| fail(&e))?;
        let mut writer = Connection::open(path).map_err(|e| fail(&e))?;
        configure(&writer).map_err(|e| fail(&e))?;
        // Before anything is written (even the journal mode): a file that is not ours, or is
        // newer than we know, stays as it was.
        migrations::check(&writer).map_err(|e| fail(&e))?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| fail(&e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(&format!("journal_mode is {mode}, WAL is required")));
        }
        writer
            .pragma_update(None, "synchronous", sync.pragma())
            .map_err(|e| fail(&e))?;
        let from = migrations::migrate(&mut writer).map_err(|e| fail(&e))?;
        if from != 0 && from != migrations::VERSION {
            info!(
                "store: migrated {} from schema version {from} to {}",
                path.display(),
                migrations::VERSION
            );
        }
        let manager = SqliteConnectionManager::file(path).with_init(|c| configure(c));
        let pool = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(Some(1))
            .build(manager)
            .map_err(|e| fail(&e))?;
        // Checkpoints run on their own thread (see `checkpointer`), never inside a commit,
        // except the writer's own when the WAL passes its bound (see `Writer::bound_wal`).
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| fail(&e))?;
        Ok(Database {
            writer,
            pool,
            path: path.to_path_buf(),
            identity: FileId::of(path),
            lock,
        })
    }
}

/// A file's device and inode: which file a path names now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
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
        reply: oneshot::Sender<Health>,
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
    Health(oneshot::Sender<Health>, bool),
    Stop(oneshot::Sender<()>),
}

/// What `#health` learns from the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// A transaction committed, on the file at `--db`.
    Ok,
    /// The transaction failed, or the writer is gone.
    Failing,
    /// The file at `--db` was deleted or replaced since the daemon opened it: what the daemon
    /// commits goes to a file nobody will open again.
    FileReplaced,
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
        let Database {
            writer,
            pool,
            path,
            identity,
            lock,
        } = db;
        let file = WatchedFile {
            path: path.clone(),
            identity,
        };
        let (alive, writer_gone) = std::sync::mpsc::channel::<()>();
        let checkpoints = std::thread::Builder::new()
            .name("linechat-checkpoint".into())
            .spawn(move || checkpointer(&path, writer_gone))?;
        let writer = std::thread::Builder::new()
            .name("linechat-writer".into())
            .spawn(move || {
                let stopped = Writer::new(writer, rooms, options, file).run(rx);
                // The checkpointer's last checkpoint folds in everything committed, then a
                // `stop` returns; the lock is let go only after that.
                drop(alive);
                let _ = checkpoints.join();
                drop(lock);
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

    /// A round trip through the writer: [`Health::Ok`] if it ran a query in a transaction
    /// that committed (the writer thread is alive, not stuck, and the database answers) and
    /// the file it writes is still the one at `--db`.
    pub async fn health(&self) -> Health {
        let (reply, rx) = oneshot::channel();
        if self.queue(Op::Health { reply }).await.is_err() {
            return Health::Failing;
        }
        rx.await.unwrap_or(Health::Failing)
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

/// Messages fetched from a room's index at a time while merging.
const MERGE_CHUNK: u32 = 32;

/// The newest `page.limit` messages below `page.before` across the rooms `user` has joined,
/// oldest first. Rooms are visited newest first by their last message id (kept in `rooms`),
/// and a room's index is read only once its newest possible row could be the next on the page:
/// the first page opens at most `limit + 1` rooms whatever the number of memberships, and
/// reads at most [`MERGE_CHUNK`] rows from each beyond what the page takes. One cached
/// statement serves every room, so memory does not grow with the memberships either.
/// Paging back (`before` set) also skips rooms whose first message is not below it.
fn merge_rooms(c: &Connection, user: UserId, page: Page) -> rusqlite::Result<Vec<HistRow>> {
    let before = page.before.unwrap_or(i64::MAX);
    let limit = page.limit as usize;
    // (room id, the largest id it can have below `before`), best first.
    let rooms: Vec<(i64, i64)> = c
        .prepare_cached(
            "SELECT r.id, min(r.last_message_id, ?2 - 1) AS bound \
             FROM memberships ms JOIN rooms r ON r.id = ms.room_id \
             WHERE ms.user_id = ?1 AND r.first_message_id < ?2 ORDER BY bound DESC",
        )?
        .query_map(params![user, before], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut open: Vec<OpenRoom> = Vec::new();
    // (id of an opened room's newest untaken row, index in `open`): the merge's frontier.
    let mut heads = std::collections::BinaryHeap::new();
    let mut next = 0;
    let mut out = Vec::with_capacity(limit);
    while out.len() < limit {
        let best = heads.peek().map(|&(id, _)| id);
        if let Some(&(room, bound)) = rooms.get(next)
            && best.is_none_or(|b| bound > b)
        {
            next += 1;
            let r = OpenRoom::fetch(c, room, before, limit - out.len())?;
            if let Some(h) = r.rows.front() {
                heads.push((h.id, open.len()));
                open.push(r);
            }
            continue;
        }
        let Some((_, i)) = heads.pop() else { break };
        let Some(row) = open[i].rows.pop_front() else {
            break;
        };
        if open[i].rows.is_empty() && open[i].more {
            open[i] = OpenRoom::fetch(c, open[i].room, row.id, limit - out.len())?;
        }
        if let Some(h) = open[i].rows.front() {
            heads.push((h.id, i));
        }
        out.push(row);
    }
    out.reverse();
    Ok(out)
}

/// A room being merged by [`merge_rooms`]: its fetched rows not yet taken, newest first.
struct OpenRoom {
    room: i64,
    rows: std::collections::VecDeque<HistRow>,
    /// Whether the room may have more rows below the last one fetched.
    more: bool,
}

impl OpenRoom {
    /// Up to [`MERGE_CHUNK`] (and at most `want`) of `room`'s newest rows below `below`.
    fn fetch(c: &Connection, room: i64, below: i64, want: usize) -> rusqlite::Result<OpenRoom> {
        let n = u32::try_from(want).unwrap_or(u32::MAX).min(MERGE_CHUNK);
        let rows: std::collections::VecDeque<HistRow> = room_tail(c, room, Some(below), n)?.into();
        let more = rows.len() == n as usize;
        Ok(OpenRoom { room, rows, more })
    }
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
    rooms: Rooms,
    /// Room name -> id, for rooms known to be committed.
    room_ids: HashMap<Arc<str>, i64>,
    /// Most operations per transaction.
    batch_max: usize,
    /// See [`WriterOptions::linger`].
    linger: Duration,
}

impl Writer {
    fn new(conn: Connection, rooms: Rooms, options: WriterOptions, file: WatchedFile) -> Writer {
        let mut wal = file.path.clone().into_os_string();
        wal.push("-wal");
        Writer {
            conn,
            wal_path: wal.into(),
            wal_checked: std::time::Instant::now(),
            file,
            file_gone_logged: std::cell::Cell::new(false),
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
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
            Ok(0) => debug!(
                "store: WAL of {} MiB checkpointed and truncated in {:?}",
                size >> 20,
                now.elapsed()
            ),
            // A reader held an old snapshot past the busy timeout: the next check tries again.
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
                    let _ = reply.send(self.health(ok));
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
    // Room id -> (first, last) id of the messages inserted into it now.
    let mut ranges: HashMap<i64, (i64, i64)> = HashMap::new();
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
        insert_messages(tx, now, &says, &mut dones, &mut ranges)?;
        says.clear();
        dones.push(execute(tx, cache, new_rooms, op)?);
    }
    insert_messages(tx, now, &says, &mut dones, &mut ranges)?;
    // Each room's message range, once per room per transaction (see `merge_rooms`).
    let mut update = tx.prepare_cached(
        "UPDATE rooms SET last_message_id = ?2, first_message_id = coalesce(first_message_id, ?3) \
         WHERE id = ?1",
    )?;
    for (room, (first, last)) in ranges {
        update.execute(params![room, last, first])?;
    }
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
    ranges: &mut HashMap<i64, (i64, i64)>,
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
        for (k, (i, room_id, ..)) in chunk.iter().enumerate() {
            let id = first + k as i64;
            dones[*i] = Done::Said(id);
            let range = ranges.entry(*room_id).or_insert((id, id));
            range.1 = id;
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
        crate::rooms::outbox::Outbox,
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
        let outbox = crate::rooms::outbox::Outbox::new(100, 1 << 20);
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

    /// `#my_messages`'s lazy merge gives exactly what a plain query over every joined room
    /// gives, for first pages and pages back, with the ranges the writer keeps per room.
    #[test]
    fn the_room_merge_equals_a_plain_query() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("t.db"), Sync::Normal).unwrap();
        let user = User {
            id: 1,
            name: Arc::from("ann"),
        };
        db.writer
            .execute(
                "INSERT INTO users (id, name, password_hash) VALUES (1, 'ann', 'x')",
                [],
            )
            .unwrap();
        let rooms: Vec<Arc<str>> = (0..30).map(|r| Arc::from(format!("r{r}"))).collect();
        let mut rng = fastrand::Rng::with_seed(11);
        let mut cache = HashMap::new();
        for batch in 0..20 {
            let tx = db.writer.transaction().unwrap();
            let mut ops = Vec::new();
            for k in 0..rng.usize(1..40) {
                // Rooms 0..10 busy, 10..25 rare, 25..30 never spoken in.
                let r = if rng.bool() {
                    rng.usize(0..10)
                } else {
                    rng.usize(10..25)
                };
                if rng.u8(0..10) == 0 || batch == 0 {
                    let (reply, _) = oneshot::channel();
                    ops.push(Op::Join {
                        session: 1,
                        user: user.clone(),
                        room: rooms[rng.usize(0..30)].clone(),
                        history: 0,
                        reply,
                    });
                }
                ops.push(Op::Say {
                    session: 1,
                    user: user.clone(),
                    room: rooms[r].clone(),
                    text: format!("b{batch} m{k}"),
                });
            }
            let mut new_rooms = Vec::new();
            execute_all(
                &tx,
                &cache,
                &mut new_rooms,
                "2026-12-01T00:00:00.000Z",
                &ops,
            )
            .unwrap();
            tx.commit().unwrap();
            for r in new_rooms {
                let id = db
                    .writer
                    .query_row("SELECT id FROM rooms WHERE name = ?1", [&*r], |row| {
                        row.get(0)
                    })
                    .unwrap();
                cache.insert(r, id);
            }
        }
        let c = &db.writer;
        let plain = |limit: u32, before: Option<i64>| -> Vec<i64> {
            let mut ids: Vec<i64> = c
                .prepare(
                    "SELECT id FROM messages WHERE room_id IN \
                     (SELECT room_id FROM memberships WHERE user_id = 1) AND id < ?1 \
                     ORDER BY id DESC LIMIT ?2",
                )
                .unwrap()
                .query_map(params![before.unwrap_or(i64::MAX), limit], |r| r.get(0))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            ids.reverse();
            ids
        };
        let total: i64 = c
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert!(total > 200, "{total}");
        for limit in [1, 7, 33, 100, 1000] {
            for before in [
                None,
                Some(2),
                Some(total / 3),
                Some(total / 2),
                Some(total - 5),
            ] {
                let got: Vec<i64> = merge_rooms(c, 1, Page { limit, before })
                    .unwrap()
                    .iter()
                    .map(|h| h.id)
                    .collect();
                assert_eq!(got, plain(limit, before), "limit {limit} before {before:?}");
            }
        }
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
        assert_eq!(v, migrations::VERSION);
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

//! SQLite storage: opening a database (lock, schema migrations, pragmas), the read pool for
//! history and logins, and the background checkpointer. Writes go through the ordered log
//! ([`crate::log`]), whose local implementation runs on the writing side of this database.
//!
//! Decisions:
//! - Reads (login lookups, history) use a pool of WAL readers on `spawn_blocking`, never the
//!   writer, so history queries never delay chat.
//! - The schema is versioned by [`migrations`] (`PRAGMA user_version`); a file that is not a
//!   linechat database, or is newer than this daemon, is refused and never altered.
//! - One daemon per database: [`lock`] holds an OS lock on `DB.lock` for the daemon's life.
//! - `journal_mode=WAL` is confirmed, `busy_timeout` is explicit, pool connections get their
//!   settings in r2d2_sqlite's `with_init`.

use crate::config::Sync;
use crate::protocol::sanction::{Ban, Until};
use crate::protocol::{HistRow, Page};
use crate::{User, UserId};
use log::info;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OptionalExtension, params};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub mod accounts;
pub mod checkpoint;
pub mod history;
pub mod lock;
pub mod migrations;
pub mod moderation;
pub mod search;

/// Most conversations `#privates` lists.
pub const CONVERSATIONS_MAX: u32 = 100;
/// How long a statement waits for a lock held by another process.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(2);
/// Read connections in the pool.
const READERS: u32 = 4;
/// Searches run at once; the others wait their turn (each stops at its deadline).
const SEARCHES_AT_ONCE: usize = 1;

/// An account as a login reads it.
#[derive(Debug, Clone)]
pub struct Found {
    /// The user.
    pub user: User,
    /// Their bcrypt hash.
    pub hash: String,
    /// The ban stored on the account, if any (it may have ended).
    pub banned: Option<Ban>,
}

/// The bans and mutes in force, as [`Store::sanctions`] read them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Banned addresses and networks.
    pub networks: Vec<(ipnet::IpNet, Ban)>,
    /// Banned accounts.
    pub banned: Vec<(UserId, Ban)>,
    /// Muted accounts.
    pub muted: Vec<(UserId, Until)>,
}

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
    /// Messages stored when it was opened.
    messages: i64,
}

/// Every connection's settings: the busy timeout and foreign keys.
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// The writing side of an opened database, for the log's writer thread.
pub struct WriterDb {
    /// The only connection that writes.
    pub(crate) conn: Connection,
    /// The database file.
    pub(crate) path: std::path::PathBuf,
    /// The file's identity when it was opened, for `#health`.
    pub(crate) identity: Option<FileId>,
    /// The daemon's lock, held until the writer has finished.
    pub(crate) lock: lock::DaemonLock,
    /// Messages stored when it was opened: the writer counts on from there.
    pub(crate) messages: i64,
}

impl Database {
    /// Splits the opened database into the read side (the [`Store`]) and the writing side
    /// (for the log, [`crate::log::local::start`]).
    pub fn split(self) -> (Store, WriterDb) {
        let Database {
            writer,
            pool,
            path,
            identity,
            lock,
            messages,
        } = self;
        (
            Store {
                pool,
                readers: Arc::new(tokio::sync::Semaphore::new(READERS as usize)),
                searches: Arc::new(tokio::sync::Semaphore::new(SEARCHES_AT_ONCE)),
            },
            WriterDb {
                conn: writer,
                path,
                identity,
                lock,
                messages,
            },
        )
    }

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
        // Checkpoints run on their own thread (see `checkpoint`), never inside a commit,
        // except the log writer's own when the WAL passes its bound.
        writer
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| fail(&e))?;
        // Counted once here (rows are never removed: a deleted message keeps its row); the
        // writer counts every message it commits on top, so `#stats` and `/metrics` never
        // count the table again.
        let messages = writer
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .map_err(|e| fail(&e))?;
        Ok(Database {
            writer,
            pool,
            path: path.to_path_buf(),
            identity: FileId::of(path),
            lock,
            messages,
        })
    }
}

/// A file's device and inode: which file a path names now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// The identity of the file at `path` now, if there is one.
    pub fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The read side of the store: a pool of WAL readers, used on `spawn_blocking` so reads never
/// block the async threads or the writer. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// One turn per pooled reader: a read waits for its turn here, on the async side, before
    /// it takes a blocking thread. Without it a burst of reads (thousands of logins at once)
    /// had tokio start a blocking thread for each, every one parked on the pool with its
    /// stack and its share of the allocator's caches, kept after the burst.
    readers: Arc<tokio::sync::Semaphore>,
    /// One search at a time, whoever asks: a search may take a core for up to its deadline,
    /// and the other core stays with chat (docs/performance.md, H2).
    searches: Arc<tokio::sync::Semaphore>,
}

impl Store {
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let turn = self
            .readers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let read = tokio::task::spawn_blocking(move || {
            // Held by the thread, not the caller: a read whose caller went away still counts
            // until it has finished.
            let _turn = turn;
            let conn = pool.get()?;
            f(&conn)
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Sqlite(e.to_string())));
        // Every failure is counted, the worker's own included.
        if let Err(StoreError::Sqlite(_)) = &read {
            crate::meters::storage_error();
        }
        read
    }

    /// The newest `limit` moderation actions, oldest first.
    pub async fn modlog(&self, limit: u32) -> Result<Vec<crate::protocol::ModRow>, StoreError> {
        self.read(move |c| {
            let mut rows: Vec<crate::protocol::ModRow> = c
                .prepare_cached(
                    "SELECT id, at, actor, action, target, reason FROM moderation \
                     ORDER BY id DESC LIMIT ?1",
                )?
                .query_map(params![limit], |r| {
                    Ok(crate::protocol::ModRow {
                        id: r.get(0)?,
                        time: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        reason: r.get(5)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            rows.reverse();
            Ok(rows)
        })
        .await
    }

    /// Whether the account `user` is an admin now (read at every moderation request, so a
    /// revocation counts at once).
    pub async fn is_admin(&self, user: UserId) -> Result<bool, StoreError> {
        self.read(move |c| {
            let admin: Option<bool> = c
                .prepare_cached("SELECT is_admin FROM users WHERE id = ?1")?
                .query_row(params![user], |r| r.get(0))
                .optional()?;
            Ok(admin.unwrap_or(false))
        })
        .await
    }

    /// Every admin account.
    pub async fn admins(&self) -> Result<Vec<UserId>, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT id FROM users WHERE is_admin")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Looks an account up by name (any case): the user, their password hash, and the ban
    /// stored on it (which may have ended since).
    pub async fn find_user(&self, name: &str) -> Result<Option<Found>, StoreError> {
        let name = name.to_string();
        self.read(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT id, name, password_hash, banned_until, ban_reason FROM users \
                     WHERE name = ?1",
                )?
                .query_row(params![name], |r| {
                    let until: Option<String> = r.get(3)?;
                    Ok(Found {
                        user: User {
                            id: r.get(0)?,
                            name: Arc::from(r.get::<_, String>(1)?),
                        },
                        hash: r.get(2)?,
                        banned: until.and_then(|u| Until::from_stored(&u)).map(|until| Ban {
                            until,
                            reason: r.get(4).unwrap_or_default(),
                        }),
                    })
                })
                .optional()?;
            Ok(row)
        })
        .await
    }

    /// The bans and mutes in force at `now`: what the daemon keeps in memory and checks on
    /// every connection and chat line (and re-reads, so the offline tool's changes count).
    pub async fn sanctions(&self, now: String) -> Result<Snapshot, StoreError> {
        self.read(move |c| {
            let networks = c
                .prepare_cached("SELECT network, until, reason FROM address_bans WHERE until > ?1")?
                .query_map(params![now], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
                })?
                .collect::<Result<Vec<(String, String, String)>, _>>()?
                .into_iter()
                .filter_map(|(net, until, reason)| {
                    let net = crate::protocol::sanction::parse_network(&net)?;
                    let until = Until::from_stored(&until)?;
                    Some((net, Ban { until, reason }))
                })
                .collect();
            let accounts = |sql: &str| -> Result<Vec<(UserId, String, String)>, StoreError> {
                Ok(c.prepare_cached(sql)?
                    .query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<Result<_, _>>()?)
            };
            let to_bans = |rows: Vec<(UserId, String, String)>| -> Vec<(UserId, Ban)> {
                rows.into_iter()
                    .filter_map(|(id, until, reason)| {
                        Some((
                            id,
                            Ban {
                                until: Until::from_stored(&until)?,
                                reason,
                            },
                        ))
                    })
                    .collect()
            };
            Ok(Snapshot {
                networks,
                banned: to_bans(accounts(
                    "SELECT id, banned_until, ban_reason FROM users WHERE banned_until > ?1",
                )?),
                muted: to_bans(accounts(
                    "SELECT id, muted_until, '' FROM users WHERE muted_until > ?1",
                )?)
                .into_iter()
                .map(|(id, b)| (id, b.until))
                .collect(),
            })
        })
        .await
    }

    /// `user`'s messages: every message they sent, in every room and conversation, and every
    /// private message they received (not from someone they ignore): one page, oldest first.
    /// Two pages merged: their own (one index range) and the received ones (a lazy merge of
    /// their conversations), each at most the page long.
    pub async fn all_messages(&self, user: UserId, page: Page) -> Result<Vec<HistRow>, StoreError> {
        self.read(move |c| {
            let mut rows = history::query_hist(
                c,
                &format!(
                    "{} WHERE m.user_id = ?1 AND m.id < ?2 AND m.deleted_at IS NULL \
                     ORDER BY m.id DESC LIMIT ?3",
                    history::HIST_SELECT
                ),
                params![user, page.before.unwrap_or(i64::MAX), page.limit],
            )?;
            rows.extend(history::merge_received(c, user, page)?);
            rows.sort_unstable_by_key(|h| std::cmp::Reverse(h.id));
            rows.truncate(page.limit as usize);
            rows.reverse();
            history::show_conversations(c, user, &mut rows)?;
            Ok(rows)
        })
        .await
    }

    /// A page of the private conversation between `user` and `peer`, oldest first; each row's
    /// room is `@PEER`.
    pub async fn conversation(
        &self,
        user: UserId,
        peer: User,
        page: Page,
    ) -> Result<Vec<HistRow>, StoreError> {
        self.read(move |c| {
            let room: Option<i64> = c
                .prepare_cached("SELECT id FROM rooms WHERE name = ?1")?
                .query_row(params![history::conversation(user, peer.id)], |r| r.get(0))
                .optional()?;
            let Some(room) = room else {
                return Ok(Vec::new());
            };
            // The other party's messages while this user ignores them are not shown.
            let mut rows = history::query_hist(
                c,
                &format!(
                    "{} WHERE m.room_id = ?1 AND m.id < ?2 AND m.deleted_at IS NULL \
                     AND NOT EXISTS (SELECT 1 FROM ignores i WHERE i.user_id = ?4 \
                     AND i.ignored_id = m.user_id) ORDER BY m.id DESC LIMIT ?3",
                    history::HIST_SELECT
                ),
                params![room, page.before.unwrap_or(i64::MAX), page.limit, user],
            )?;
            rows.reverse();
            let shown = format!("@{}", peer.name);
            for row in &mut rows {
                row.room = shown.clone();
            }
            Ok(rows)
        })
        .await
    }

    /// Private messages to `user` since a session of theirs last ended (`users.seen_id`), per
    /// sender in the order they first wrote: (sender, count).
    pub async fn unread(&self, user: UserId) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT u.name, count(*) FROM conversations cv \
                 JOIN messages m ON m.room_id = cv.room_id JOIN users u ON u.id = m.user_id \
                 WHERE (cv.low = ?1 OR cv.high = ?1) AND m.user_id != ?1 \
                 AND m.deleted_at IS NULL AND m.id > (SELECT seen_id FROM users WHERE id = ?1) \
                 AND NOT EXISTS (SELECT 1 FROM ignores i WHERE i.user_id = ?1 AND i.ignored_id = m.user_id) \
                 GROUP BY m.user_id ORDER BY min(m.id)",
            )?;
            let rows = stmt.query_map(params![user], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The newest `limit` private messages to `user` since a session of theirs last ended
    /// (not from someone they ignore), oldest first, each room shown as `@PEER`.
    pub async fn unread_messages(
        &self,
        user: UserId,
        limit: u32,
    ) -> Result<Vec<HistRow>, StoreError> {
        self.read(move |c| {
            let mut rows = history::query_hist(
                c,
                &format!(
                    "{} JOIN conversations cv ON cv.room_id = m.room_id \
                     WHERE (cv.low = ?1 OR cv.high = ?1) AND m.user_id != ?1 \
                     AND m.deleted_at IS NULL \
                     AND m.id > (SELECT seen_id FROM users WHERE id = ?1) \
                     AND NOT EXISTS (SELECT 1 FROM ignores i WHERE i.user_id = ?1 \
                     AND i.ignored_id = m.user_id) ORDER BY m.id DESC LIMIT ?2",
                    history::HIST_SELECT
                ),
                params![user, limit],
            )?;
            rows.reverse();
            history::show_conversations(c, user, &mut rows)?;
            Ok(rows)
        })
        .await
    }

    /// `user`'s private conversations, the most recent first (at most
    /// [`CONVERSATIONS_MAX`]): (the other party, messages from them since a session of
    /// `user` last ended).
    pub async fn conversations(&self, user: UserId) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT u.name, (SELECT count(*) FROM messages m WHERE m.room_id = cv.room_id \
                 AND m.user_id != ?1 AND m.deleted_at IS NULL \
                 AND m.id > (SELECT seen_id FROM users WHERE id = ?1) \
                 AND NOT EXISTS (SELECT 1 FROM ignores i WHERE i.user_id = ?1 AND i.ignored_id = m.user_id)) \
                 FROM conversations cv JOIN rooms r ON r.id = cv.room_id \
                 JOIN users u ON u.id = CASE WHEN cv.low = ?1 THEN cv.high ELSE cv.low END \
                 WHERE cv.low = ?1 OR cv.high = ?1 ORDER BY r.last_message_id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![user, CONVERSATIONS_MAX], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// A room's topic, if one is set.
    pub async fn topic(
        &self,
        room: Arc<str>,
    ) -> Result<Option<crate::protocol::Topic>, StoreError> {
        self.read(move |c| {
            let topic = c
                .prepare_cached("SELECT topic, topic_by, topic_at FROM rooms WHERE name = ?1")?
                .query_row(params![&*room], |r| {
                    Ok(crate::protocol::Topic {
                        text: r.get(0)?,
                        by: r.get(1)?,
                        at: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    })
                })
                .optional()?;
            Ok(topic.filter(|t| !t.text.is_empty()))
        })
        .await
    }

    /// When an account registered, and when a session of it last ended (`None`: never).
    pub async fn seen(&self, user: UserId) -> Result<(String, Option<String>), StoreError> {
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT created_at, last_seen_at FROM users WHERE id = ?1")?
                    .query_row(params![user], |r| Ok((r.get(0)?, r.get(1)?)))?,
            )
        })
        .await
    }

    /// `#search`: the newest matches `user` may read, oldest first (see [`search::search`]).
    pub async fn search(
        &self,
        user: UserId,
        query: crate::protocol::search::Search,
    ) -> Result<Result<Vec<HistRow>, search::SearchError>, StoreError> {
        let _turn = self
            .searches
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        self.read(move |c| Ok(search::search(c, user, &query)))
            .await
    }

    /// The messages of every room `user` has ever joined: one page, oldest first. A merge of
    /// one index range scan per room, newest first, stepped lazily: it reads the page's rows
    /// plus at most one more per room, whatever the size of the history.
    pub async fn my_messages(&self, user: UserId, page: Page) -> Result<Vec<HistRow>, StoreError> {
        self.read(move |c| Ok(history::merge_rooms(c, user, page)?))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use history::HIST_SELECT;

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
            let n = s.parameter_count() as i64;
            let rows: Vec<String> = s
                .query_map(rusqlite::params_from_iter(1..=n), |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            rows.join("; ")
        };
        let by_room = plan(&format!(
            "{HIST_SELECT} WHERE m.room_id = ?1 AND m.id < ?2 AND m.deleted_at IS NULL \
             ORDER BY m.id DESC LIMIT ?3"
        ));
        assert!(
            by_room.contains("USING INDEX messages_room_id"),
            "{by_room}"
        );
        assert!(!by_room.contains("TEMP B-TREE"), "{by_room}");
        let by_user = plan(&format!(
            "{HIST_SELECT} WHERE m.user_id = ?1 AND m.id < ?2 AND m.deleted_at IS NULL \
             ORDER BY m.id DESC LIMIT ?3"
        ));
        assert!(
            by_user.contains("USING INDEX messages_user_id"),
            "{by_user}"
        );
        assert!(!by_user.contains("TEMP B-TREE"), "{by_user}");
        // The bans and mutes read every 2 seconds visit the sanctioned accounts only.
        let banned = plan("SELECT id, banned_until, ban_reason FROM users WHERE banned_until > ?1");
        assert!(banned.contains("INDEX users_banned"), "{banned}");
        let muted = plan("SELECT id, muted_until, '' FROM users WHERE muted_until > ?1");
        assert!(muted.contains("INDEX users_muted"), "{muted}");
    }
}

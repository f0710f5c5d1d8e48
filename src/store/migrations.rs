//! Schema versions: an ordered list of migrations, applied at start in one exclusive
//! transaction, each bumping `PRAGMA user_version` (the pattern of cargo's `util/sqlite.rs`).
//!
//! `schema.sql` is the readable whole schema at [`VERSION`]; a test builds a database from the
//! migrations and checks that it has exactly the tables, columns, indexes and foreign keys of
//! `schema.sql`. A database from a newer linechatd is refused before anything is written, and
//! so is a SQLite file of another program.

use rusqlite::{Connection, TransactionBehavior};

/// The whole schema at [`VERSION`], for reading (and the test that holds the migrations to it).
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// Migration `k` (0-based) takes a database from version `k` to `k + 1`. Append only: a
/// released migration is never edited.
const MIGRATIONS: &[&str] = &[
    // 1: accounts, rooms, memberships, messages.
    include_str!("v1.sql"),
    // 2: each room's first and last message id, so `#my_messages` visits only the rooms whose
    // messages can be on the page (see `history`).
    "ALTER TABLE rooms ADD COLUMN first_message_id INTEGER;
     ALTER TABLE rooms ADD COLUMN last_message_id INTEGER;
     UPDATE rooms SET
         first_message_id = (SELECT min(id) FROM messages WHERE room_id = rooms.id),
         last_message_id = (SELECT max(id) FROM messages WHERE room_id = rooms.id);",
    // 3: admins, and the log of what they did.
    "ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
     CREATE TABLE moderation (
         id     INTEGER PRIMARY KEY,
         at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
         actor  TEXT NOT NULL,
         action TEXT NOT NULL,
         target TEXT NOT NULL,
         reason TEXT NOT NULL DEFAULT ''
     );",
    // 4: bans and mutes of accounts, bans of addresses and networks, deleted messages kept as
    // tombstones (a deleted row stays, so ids keep increasing).
    "ALTER TABLE users ADD COLUMN banned_until TEXT;
     ALTER TABLE users ADD COLUMN ban_reason TEXT NOT NULL DEFAULT '';
     ALTER TABLE users ADD COLUMN muted_until TEXT;
     ALTER TABLE messages ADD COLUMN deleted_at TEXT;
     CREATE INDEX users_banned ON users (banned_until) WHERE banned_until IS NOT NULL;
     CREATE INDEX users_muted ON users (muted_until) WHERE muted_until IS NOT NULL;
     CREATE TABLE address_bans (
         network TEXT PRIMARY KEY,
         until   TEXT NOT NULL,
         reason  TEXT NOT NULL DEFAULT '',
         actor   TEXT NOT NULL,
         at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
     ) WITHOUT ROWID;",
    // 5: a cluster node's place in the cluster's stream (the last record it applied) and the
    // cluster's seats as of that record, both written in the same transaction as the records'
    // effects, so a restarted node resumes with the presence it had (a single node writes
    // neither).
    "CREATE TABLE log_position (
         stream TEXT PRIMARY KEY,
         seq    INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE seats (
         session INTEGER PRIMARY KEY,
         user_id INTEGER NOT NULL REFERENCES users (id),
         room_id INTEGER NOT NULL REFERENCES rooms (id)
     );",
    // 6: private conversations (a hidden room per pair of accounts, its parties here) and, per
    // account, the newest message id committed before one of its sessions last ended: the
    // private messages after it arrived while the user was away.
    "CREATE TABLE conversations (
         room_id INTEGER PRIMARY KEY REFERENCES rooms (id),
         low     INTEGER NOT NULL REFERENCES users (id),
         high    INTEGER NOT NULL REFERENCES users (id)
     );
     CREATE INDEX conversations_low ON conversations (low);
     CREATE INDEX conversations_high ON conversations (high);
     INSERT INTO conversations (room_id, low, high)
         SELECT id, CAST(substr(name, 2, instr(name, ':') - 2) AS INTEGER),
                CAST(substr(name, instr(name, ':') + 1) AS INTEGER)
         FROM rooms WHERE name LIKE '@%:%';
     ALTER TABLE users ADD COLUMN seen_id INTEGER NOT NULL DEFAULT 0;",
    // 7: whom each account refuses private messages from (#ignore).
    "CREATE TABLE ignores (
         user_id    INTEGER NOT NULL REFERENCES users (id),
         ignored_id INTEGER NOT NULL REFERENCES users (id),
         PRIMARY KEY (user_id, ignored_id)
     ) WITHOUT ROWID;",
    // 8: the full-text index of #search, filled with every message not deleted.
    "CREATE VIRTUAL TABLE message_words USING fts5 (
         body, scope, content = '', contentless_delete = 1,
         tokenize = 'unicode61 remove_diacritics 2'
     );
     INSERT INTO message_words (rowid, body, scope)
         SELECT id, body, 'r' || room_id || ' u' || user_id FROM messages
         WHERE deleted_at IS NULL;",
    // 9: per user and room, the newest message delivered when a session last left the room.
    "ALTER TABLE memberships ADD COLUMN seen_id INTEGER;",
    // 10: actions (#me), room topics (#topic), when an account was last seen (#whois).
    "ALTER TABLE messages ADD COLUMN action INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';
     ALTER TABLE rooms ADD COLUMN topic_by TEXT NOT NULL DEFAULT '';
     ALTER TABLE rooms ADD COLUMN topic_at TEXT;
     ALTER TABLE users ADD COLUMN last_seen_at TEXT;",
];

/// The schema version this linechatd writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The database's `user_version`, refusing what this linechatd must not touch: a newer
/// version, or tables of another program under version 0. Reads only.
pub fn check(conn: &Connection) -> Result<i64, String> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if version > VERSION {
        return Err(format!(
            "its schema version is {version}, newer than this linechatd knows ({VERSION}): \
             run the linechatd that wrote it, or a newer one; the file was not modified"
        ));
    }
    if version < 0 {
        return Err(format!("its schema version {version} is not linechat's"));
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| e.to_string())?;
        if tables > 0 {
            return Err(
                "it is a SQLite database of another program (it has tables and no \
                        linechat schema version)"
                    .into(),
            );
        }
    }
    Ok(version)
}

/// Brings the database to [`VERSION`]: every migration it lacks, in order, in one exclusive
/// transaction (all of them or none). Returns the version it started from.
pub fn migrate(conn: &mut Connection) -> Result<i64, String> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(|e| e.to_string())?;
    // Checked again under the lock: another process may have migrated meanwhile.
    let from = check(&tx)?;
    for (k, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.execute_batch(sql)
            .map_err(|e| format!("migration to version {}: {e}", k + 1))?;
        tx.pragma_update(None, "user_version", k as i64 + 1)
            .map_err(|e| e.to_string())?;
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything that makes two schemas the same, table by table, in a comparable form.
    fn shape(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let names: Vec<(String, String)> = conn
            .prepare(
                "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for (kind, name) in names {
            out.push(format!("{kind} {name}"));
            let rows = |sql: &str| -> Vec<String> {
                let mut s = conn.prepare(sql).unwrap();
                let n = s.column_count();
                s.query_map([&name], |r| {
                    let cols: Vec<String> = (0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect();
                    Ok(cols.join("|"))
                })
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
            };
            if kind == "table" {
                out.extend(rows("SELECT * FROM pragma_table_xinfo(?1)"));
                out.extend(rows("SELECT * FROM pragma_foreign_key_list(?1)"));
                out.extend(rows(
                    "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1) \
                     ORDER BY name",
                ));
            } else if kind == "index" {
                out.extend(rows("SELECT * FROM pragma_index_xinfo(?1)"));
            }
        }
        out
    }

    #[test]
    fn the_migrations_build_exactly_schema_sql() {
        let mut migrated = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut migrated).unwrap(), 0);
        let whole = Connection::open_in_memory().unwrap();
        whole.execute_batch(SCHEMA).unwrap();
        assert_eq!(shape(&migrated), shape(&whole));
        let v: i64 = migrated
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
        // Applying again changes nothing.
        assert_eq!(migrate(&mut migrated).unwrap(), VERSION);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", VERSION + 1)
            .unwrap();
        let e = check(&conn).unwrap_err();
        assert!(e.contains("newer than this linechatd knows"), "{e}");
    }

    #[test]
    fn version_2_fills_the_message_range_of_existing_rooms() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO users (id, name, password_hash) VALUES (1, 'a', 'x');
             INSERT INTO rooms (id, name) VALUES (1, 'busy'), (2, 'empty');
             INSERT INTO messages (id, room_id, user_id, body) VALUES
                 (3, 1, 1, 'x'), (5, 1, 1, 'y'), (9, 1, 1, 'z');",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 1);
        let ranges: Vec<(i64, Option<i64>, Option<i64>)> = conn
            .prepare("SELECT id, first_message_id, last_message_id FROM rooms ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(ranges, [(1, Some(3), Some(9)), (2, None, None)]);
    }
}

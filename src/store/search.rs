//! The full-text index of messages (`message_words`, FTS5): the writer's statements that keep
//! it, in the transaction that inserts or deletes a message, and `#search`'s read of it.
//!
//! The index is contentless: it holds the words and the message id (its rowid), not the text,
//! which stays in `messages`. Besides the words, each entry has two scope tokens, `r<room id>`
//! and `u<sender id>`, so the index itself narrows a search to some rooms or one sender (an
//! intersection of its lists) instead of SQLite reading every match and dropping most.
//! Who may read a row is decided in SQL all the same (memberships, conversations, ignores):
//! the scope tokens only make it fast.

use crate::UserId;
use crate::protocol::HistRow;
use crate::protocol::search::{Search, Within};
use rusqlite::{Connection, OptionalExtension, params};
use std::time::{Duration, Instant};

/// Longest a search may run before it is abandoned (`SearchError::TooSlow`).
pub const SEARCH_DEADLINE: Duration = Duration::from_secs(1);
/// A user who may read at most this many rooms and conversations has them named in the index
/// query; beyond that the rows are checked in SQL only.
const SCOPE_IN_INDEX: usize = 64;
/// [`SCOPE_IN_INDEX`] + 1, as SQLite takes it.
const SCOPE_READ: i64 = SCOPE_IN_INDEX as i64 + 1;

/// Why a search found nothing to show.
#[derive(Debug)]
pub enum SearchError {
    /// `in=ROOM` names a room the user has never joined (or none).
    NotJoined(String),
    /// `in=@NAME` or `from=NAME` names no account.
    NoUser(String),
    /// It ran longer than [`SEARCH_DEADLINE`].
    TooSlow,
    /// SQLite failed.
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for SearchError {
    fn from(e: rusqlite::Error) -> Self {
        SearchError::Sqlite(e)
    }
}

/// The search: matches from the index newest first (`?1` the expression, `?2` BEFORE_ID), each
/// checked against what `?3` may read (a room they joined or their conversation, not from
/// someone they ignore in a conversation), `?4` one room or NULL, `?5` LIMIT.
static SEARCH_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} JOIN message_words ON message_words.rowid = m.id \
         WHERE message_words MATCH ?1 AND message_words.rowid < ?2 AND m.deleted_at IS NULL \
         AND (?4 IS NULL OR m.room_id = ?4) \
         AND m.room_id IN (SELECT room_id FROM memberships WHERE user_id = ?3 \
             UNION ALL SELECT room_id FROM conversations WHERE low = ?3 OR high = ?3) \
         AND NOT EXISTS (SELECT 1 FROM conversations cv JOIN ignores i \
             ON i.user_id = ?3 AND i.ignored_id = m.user_id WHERE cv.room_id = m.room_id) \
         ORDER BY message_words.rowid DESC LIMIT ?5",
        super::history::HIST_SELECT
    )
});

/// Adds the messages with ids `lo..=hi`, just inserted, to the index (the writer, in their
/// transaction: one statement for a multi-row insert's rows).
pub fn index_range(tx: &Connection, lo: i64, hi: i64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO message_words (rowid, body, scope) \
         SELECT id, body, 'r' || room_id || ' u' || user_id FROM messages \
         WHERE id BETWEEN ?1 AND ?2",
    )?
    .execute(params![lo, hi])?;
    Ok(())
}

/// Takes a deleted message out of the index (the writer, in the deletion's transaction).
pub fn unindex(tx: &Connection, id: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM message_words WHERE rowid = ?1")?
        .execute(params![id])?;
    Ok(())
}

/// The newest `query.page.limit` messages `user` may read that match `query`, below its
/// BEFORE_ID, oldest first; private messages' room is shown as `@PEER`.
pub fn search(c: &Connection, user: UserId, query: &Search) -> Result<Vec<HistRow>, SearchError> {
    let id_of = |name: &str| -> Result<UserId, SearchError> {
        c.prepare_cached("SELECT id FROM users WHERE name = ?1")?
            .query_row(params![name], |r| r.get(0))
            .optional()?
            .ok_or_else(|| SearchError::NoUser(name.to_string()))
    };
    let from = query.from.as_deref().map(id_of).transpose()?;
    let rooms: Vec<i64> = match &query.within {
        Some(Within::Room(name)) => {
            let joined: Option<i64> = c
                .prepare_cached(
                    "SELECT r.id FROM rooms r JOIN memberships ms ON ms.room_id = r.id \
                     WHERE r.name = ?1 AND ms.user_id = ?2",
                )?
                .query_row(params![name, user], |r| r.get(0))
                .optional()?;
            vec![joined.ok_or_else(|| SearchError::NotJoined(name.clone()))?]
        }
        Some(Within::Private(name)) => {
            let peer = id_of(name)?;
            let room: Option<i64> = c
                .prepare_cached("SELECT id FROM rooms WHERE name = ?1")?
                .query_row(params![super::history::conversation(user, peer)], |r| {
                    r.get(0)
                })
                .optional()?;
            match room {
                Some(room) => vec![room],
                None => return Ok(Vec::new()),
            }
        }
        None => c
            .prepare_cached(
                "SELECT room_id FROM memberships WHERE user_id = ?1 \
                 UNION ALL SELECT room_id FROM conversations WHERE low = ?1 OR high = ?1 \
                 LIMIT ?2",
            )?
            .query_map(params![user, SCOPE_READ], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
    };
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let mut expr = query.expr.clone();
    if rooms.len() <= SCOPE_IN_INDEX {
        let names: Vec<String> = rooms.iter().map(|r| format!("r{r}")).collect();
        expr = format!("({expr}) AND (scope : ({}))", names.join(" OR "));
    }
    if let Some(from) = from {
        expr = format!("({expr}) AND (scope : u{from})");
    }
    let only = query.within.as_ref().map(|_| rooms[0]);
    let started = Instant::now();
    c.progress_handler(10_000, Some(move || started.elapsed() > SEARCH_DEADLINE))?;
    let found = super::history::query_hist(
        c,
        &SEARCH_SQL,
        params![
            expr,
            query.page.before.unwrap_or(i64::MAX),
            user,
            only,
            query.page.limit
        ],
    );
    c.progress_handler(0, None::<fn() -> bool>)?;
    let mut rows = match found {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::OperationInterrupted =>
        {
            return Err(SearchError::TooSlow);
        }
        r => r?,
    };
    rows.reverse();
    super::history::show_conversations(c, user, &mut rows)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::search::parse;

    fn db() -> Connection {
        let mut c = Connection::open_in_memory().unwrap();
        super::super::migrations::migrate(&mut c).unwrap();
        c.execute_batch(
            "INSERT INTO users (id, name, password_hash) VALUES (1, 'ann', 'x'), (2, 'bob', 'x');
             INSERT INTO rooms (id, name) VALUES (1, 'a'), (2, 'b'), (3, '@1:2');
             INSERT INTO conversations VALUES (3, 1, 2);
             INSERT INTO memberships (user_id, room_id) VALUES (1, 1), (2, 2);",
        )
        .unwrap();
        let rows = [
            (1, 1, 1, "deploy one"),
            (2, 2, 2, "deploy two"),
            (3, 3, 2, "deploy private"),
            (4, 1, 2, "deploy three"),
        ];
        for (id, room, user, body) in rows {
            c.execute(
                "INSERT INTO messages (id, room_id, user_id, body) VALUES (?1, ?2, ?3, ?4)",
                params![id, room, user, body],
            )
            .unwrap();
            index_range(&c, id, id).unwrap();
        }
        c
    }

    fn ids(c: &Connection, user: UserId, words: &str) -> Vec<i64> {
        search(c, user, &parse(words).unwrap())
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect()
    }

    /// The scope in the index and the scope in SQL agree: a reader sees the rooms they joined
    /// and their conversations, by words, room and sender.
    #[test]
    fn a_reader_finds_what_they_may_read() {
        let c = db();
        assert_eq!(ids(&c, 1, "deploy"), [1, 3, 4]);
        assert_eq!(ids(&c, 2, "deploy"), [2, 3]);
        assert_eq!(ids(&c, 1, "deploy from=bob"), [3, 4]);
        assert_eq!(ids(&c, 1, "deploy in=@bob"), [3]);
        assert_eq!(ids(&c, 1, "deploy in=a 1"), [4]);
        assert_eq!(ids(&c, 1, "deploy 5 4"), [1, 3]);
        unindex(&c, 4).unwrap();
        c.execute(
            "UPDATE messages SET body = '', deleted_at = 'x' WHERE id = 4",
            [],
        )
        .unwrap();
        assert_eq!(ids(&c, 1, "deploy in=a"), [1]);
        assert!(matches!(
            search(&c, 1, &parse("deploy in=b").unwrap()),
            Err(SearchError::NotJoined(r)) if r == "b"
        ));
    }

    /// The index drives the query: matches come from it newest first, with no sort and no
    /// scan of `messages`.
    #[test]
    fn the_query_walks_the_index_newest_first() {
        let c = db();
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {}", *SEARCH_SQL))
            .unwrap()
            .query_map(params!["deploy", 9, 1, None::<i64>, 5], |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let plan = plan.join("; ");
        assert!(
            plan.starts_with("SCAN message_words VIRTUAL TABLE"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        assert!(
            plan.contains("SEARCH m USING INTEGER PRIMARY KEY"),
            "{plan}"
        );
    }
}

//! The statements a batch runs inside its transaction, and what each operation produced.

use super::super::{
    Applied, Committed, Effect, Event, Failure, Joined, Missed, Moderation, Op, STREAM, Topic,
};
use super::Outcome;
use super::room_ids::room_id;
use super::seen::{self, Seats};
use crate::protocol::HistRow;
use crate::store::StoreError;
use crate::store::moderation;
use crate::store::search;
use crate::{User, UserId};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::sync::Arc;

/// What executing an operation inside the transaction produced.
pub(super) enum Done {
    Created(Result<UserId, StoreError>),
    Said(i64),
    /// A private message whose recipient ignores its sender.
    SaidIgnored(i64),
    Joined(Vec<HistRow>, Option<Missed>, Option<Topic>),
    /// A topic set, at this time.
    TopicSet(String),
    Moderated(Applied),
    /// A message deleted: its room's name and its author's.
    Deleted(String, String),
    Nothing,
}

/// A message waiting for its multi-row insert: (index in the batch, room id, user id, body,
/// explicit id (a stream record's sequence) or `None` for the next rowid, creation time,
/// whether it is an action).
type Pending<'a> = (usize, i64, UserId, &'a str, Option<i64>, &'a str, bool);

/// Executes a batch's statements in order, one result per operation; an `Err` aborts the
/// whole transaction. Consecutive messages are inserted together (see [`insert_messages`]);
/// they are flushed before any other operation, so a join's history sees the messages queued
/// ahead of it. Stream records ([`Op::Applied`]) run as their inner operation with the record's
/// id and time, and the last one's sequence is written to `log_position`.
pub(super) fn execute_all(
    tx: &Connection,
    cache: &HashMap<Arc<str>, i64>,
    new_rooms: &mut Vec<Arc<str>>,
    seats: &mut Seats,
    now: &str,
    ops: &[Op],
) -> rusqlite::Result<Vec<Done>> {
    let mut dones = Vec::with_capacity(ops.len());
    let mut says: Vec<Pending> = Vec::new();
    // Room id -> (first, last) id of the messages inserted into it now.
    let mut ranges: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut position = None;
    for (i, op) in ops.iter().enumerate() {
        let (op, seq, at) = match op {
            Op::Applied { seq, at, op, .. } => {
                position = Some(*seq);
                (&**op, Some(*seq), at.as_str())
            }
            op => (op, None, now),
        };
        if let Op::Say {
            user,
            room,
            text,
            to,
            action,
            ..
        } = op
        {
            let room_id = room_id(tx, cache, new_rooms, room)?;
            let mut ignored = false;
            if let Some(to) = to {
                tx.prepare_cached(
                    "INSERT INTO conversations (room_id, low, high) VALUES (?1, ?2, ?3) \
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![
                    room_id,
                    user.id.min(to.id),
                    user.id.max(to.id)
                ])?;
                ignored = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM ignores WHERE user_id = ?1 AND ignored_id = ?2)",
                    )?
                    .query_row(params![to.id, user.id], |r| r.get(0))?;
            }
            says.push((i, room_id, user.id, text, seq, at, *action));
            // Its id is filled in when the message is inserted.
            dones.push(if ignored {
                Done::SaidIgnored(0)
            } else {
                Done::Said(0)
            });
            continue;
        }
        insert_messages(tx, &says, &mut dones, &mut ranges)?;
        says.clear();
        seen::move_seat(tx, cache, new_rooms, seats, op)?;
        dones.push(execute(tx, cache, new_rooms, seats, at, seq, op)?);
        if seq.is_some() {
            seen::record_seat(tx, cache, new_rooms, op)?;
        }
    }
    insert_messages(tx, &says, &mut dones, &mut ranges)?;
    // Each room's message range, once per room per transaction (see `merge_rooms`).
    let mut update = tx.prepare_cached(
        "UPDATE rooms SET last_message_id = ?2, first_message_id = coalesce(first_message_id, ?3) \
         WHERE id = ?1",
    )?;
    for (room, (first, last)) in ranges {
        update.execute(params![room, last, first])?;
    }
    if let Some(seq) = position {
        tx.prepare_cached(
            "INSERT INTO log_position (stream, seq) VALUES (?1, ?2) \
             ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq",
        )?
        .execute(params![STREAM, seq])?;
    }
    Ok(dones)
}

/// Most messages in one multi-row `INSERT`.
const INSERT_ROWS: usize = 64;

/// Inserts `says` with as few statements as it can: chunks of [`INSERT_ROWS`], then powers of
/// two, so a handful of cached statements serve any batch. A message with an explicit id (a
/// stream record's) gets that id; the others get consecutive ids ending at
/// `last_insert_rowid()`: this connection is the only writer, and a row inserted without an id
/// into a table whose key is a plain `INTEGER PRIMARY KEY` gets the largest id so far plus one
/// (schema.sql keeps it so: no AUTOINCREMENT). A chunk never mixes the two kinds. Writes each
/// id into `dones`, and each message into the full-text index.
fn insert_messages(
    tx: &Connection,
    says: &[Pending],
    dones: &mut [Done],
    ranges: &mut HashMap<i64, (i64, i64)>,
) -> rusqlite::Result<()> {
    let mut rest = says;
    while !rest.is_empty() {
        let explicit = rest[0].4.is_some();
        let run = rest
            .iter()
            .take_while(|m| m.4.is_some() == explicit)
            .count();
        let rows = if run >= INSERT_ROWS {
            INSERT_ROWS
        } else {
            1 << run.ilog2()
        };
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let mut stmt = tx.prepare_cached(&INSERT_SQL[rows.ilog2() as usize])?;
        for (k, (_, room_id, user_id, text, id, at, action)) in chunk.iter().enumerate() {
            let p = 6 * k;
            stmt.raw_bind_parameter(p + 1, id)?;
            stmt.raw_bind_parameter(p + 2, room_id)?;
            stmt.raw_bind_parameter(p + 3, user_id)?;
            stmt.raw_bind_parameter(p + 4, at)?;
            stmt.raw_bind_parameter(p + 5, text)?;
            stmt.raw_bind_parameter(p + 6, action)?;
        }
        let inserted = stmt.raw_execute()?;
        if inserted != rows {
            return Err(rusqlite::Error::StatementChangedRows(inserted));
        }
        let first = tx.last_insert_rowid() - rows as i64 + 1;
        // The chunk's words, in one statement: its ids are the only ones in their range (ids
        // only grow, and this connection is the only writer).
        let lo = chunk[0].4.unwrap_or(first);
        let hi = chunk[rows - 1].4.unwrap_or(first + rows as i64 - 1);
        search::index_range(tx, lo, hi)?;
        for (k, (i, room_id, _, _, explicit, _, _)) in chunk.iter().enumerate() {
            let id = explicit.unwrap_or(first + k as i64);
            dones[*i] = match dones[*i] {
                Done::SaidIgnored(_) => Done::SaidIgnored(id),
                _ => Done::Said(id),
            };
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

/// `INSERT INTO messages` of `rows` rows, six parameters each (the id may be NULL).
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO messages (id, room_id, user_id, created_at, body, action) VALUES ",
    );
    for k in 0..rows {
        if k > 0 {
            sql.push(',');
        }
        let p = 6 * k;
        sql.push_str(&format!(
            "(?{},?{},?{},?{},?{},?{})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6
        ));
    }
    sql
}

/// Executes `op`'s statements at time `now`, with `id` for what it creates (a stream
/// record's sequence) or the next rowid; an `Err` aborts the whole transaction. A taken name
/// is not an error of the transaction: SQLite undoes just that statement.
fn execute(
    tx: &Connection,
    cache: &HashMap<Arc<str>, i64>,
    new_rooms: &mut Vec<Arc<str>>,
    seats: &Seats,
    now: &str,
    id: Option<i64>,
    op: &Op,
) -> rusqlite::Result<Done> {
    Ok(match op {
        Op::CreateUser { name, hash, .. } => {
            let r = tx
                .prepare_cached(
                    "INSERT INTO users (id, name, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, name, hash, now]);
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
        Op::Moderate { record, .. } => {
            let done = match apply_effect(tx, now, record)? {
                None => return Ok(Done::Moderated(Applied::Missing)),
                Some(done) => done,
            };
            moderation::record(
                tx,
                &record.actor,
                record.action,
                &record.target,
                &record.reason,
            )?;
            done
        }
        Op::SetPassword { user, hash, .. } => {
            let changed = tx
                .prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
                .execute(params![user, hash])?;
            if changed != 1 {
                return Err(rusqlite::Error::StatementChangedRows(changed));
            }
            Done::Nothing
        }
        Op::Join {
            user,
            room,
            history,
            ..
        } => {
            let room_id = room_id(tx, cache, new_rooms, room)?;
            let (rows, missed) = seen::replay(tx, user.id, room_id, *history, seats.missed_max)?;
            tx.prepare_cached(
                "INSERT INTO memberships (user_id, room_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![user.id, room_id])?;
            let topic = tx
                .prepare_cached("SELECT topic, topic_by, topic_at FROM rooms WHERE id = ?1")?
                .query_row(params![room_id], |r| {
                    Ok(Topic {
                        text: r.get(0)?,
                        by: r.get(1)?,
                        at: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    })
                })?;
            Done::Joined(rows, missed, (!topic.text.is_empty()).then_some(topic))
        }
        Op::Topic {
            user, room, text, ..
        } => {
            let room_id = room_id(tx, cache, new_rooms, room)?;
            tx.prepare_cached(
                "UPDATE rooms SET topic = ?2, topic_by = ?3, topic_at = ?4 WHERE id = ?1",
            )?
            .execute(params![room_id, text, &*user.name, now])?;
            Done::TopicSet(now.to_string())
        }
        Op::Ignore {
            user, ignored, on, ..
        } => {
            let sql = if *on {
                "INSERT INTO ignores (user_id, ignored_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM ignores WHERE user_id = ?1 AND ignored_id = ?2"
            };
            tx.prepare_cached(sql)?.execute(params![user, ignored])?;
            Done::Nothing
        }
        Op::Depart { departure, .. } => {
            if let Some(user) = departure.user {
                tx.prepare_cached(
                    "UPDATE users SET seen_id = (SELECT coalesce(max(id), 0) FROM messages), \
                     last_seen_at = ?2 WHERE id = ?1",
                )?
                .execute(params![user, now])?;
            }
            Done::Nothing
        }
        Op::Health { .. } => {
            tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Done::Nothing
        }
        // Messages are inserted by `insert_messages`; stream records are unwrapped by
        // `execute_all`.
        Op::Say { .. }
        | Op::Leave { .. }
        | Op::Evict { .. }
        | Op::Sync { .. }
        | Op::Refused { .. }
        | Op::Applied { .. }
        | Op::Stop { .. } => Done::Nothing,
    })
}

/// A moderation action's change to the store; `None` if there was nothing to act on (then
/// nothing is recorded either).
fn apply_effect(tx: &Connection, now: &str, record: &Moderation) -> rusqlite::Result<Option<Done>> {
    let done = Done::Moderated(Applied::Done);
    let changed = match &record.effect {
        Effect::Kick { .. } => return Ok(Some(done)),
        Effect::Ban { user, ban } => moderation::ban_account(tx, *user, ban)?,
        Effect::Unban { user } => moderation::lift_account_ban(tx, *user, now)?,
        Effect::BanNetwork { network, ban } => {
            moderation::ban_network(tx, network, ban, &record.actor, now)?
        }
        Effect::UnbanNetwork { network } => moderation::lift_network_ban(tx, network, now)?,
        Effect::Mute { user, until } => tx
            .prepare_cached("UPDATE users SET muted_until = ?2 WHERE id = ?1")?
            .execute(params![user, until.stored()])?,
        Effect::Unmute { user } => tx
            .prepare_cached(
                "UPDATE users SET muted_until = NULL WHERE id = ?1 AND muted_until > ?2",
            )?
            .execute(params![user, now])?,
        Effect::Delete { id } => {
            let found: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT r.name, u.name FROM messages m JOIN rooms r ON r.id = m.room_id \
                     JOIN users u ON u.id = m.user_id WHERE m.id = ?1 AND m.deleted_at IS NULL",
                )?
                .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((room, name)) = found else {
                return Ok(None);
            };
            tx.prepare_cached("UPDATE messages SET body = '', deleted_at = ?2 WHERE id = ?1")?
                .execute(params![id, now])?;
            search::unindex(tx, *id)?;
            return Ok(Some(Done::Deleted(room, name)));
        }
    };
    Ok((changed > 0).then_some(done))
}

/// Pairs an executed operation with what it produced.
pub(super) fn finish(op: Op, done: Done) -> Outcome {
    match (op, done) {
        (
            Op::Applied {
                op, remote: true, ..
            },
            Done::Moderated(Applied::Done),
        ) if matches!(&*op, Op::Moderate { record, .. } if matches!(record.effect, Effect::Kick { .. })) =>
        {
            let Op::Moderate { record, .. } = *op else {
                return Outcome::Nothing;
            };
            let Effect::Kick { user } = record.effect else {
                return Outcome::Nothing;
            };
            Outcome::Event(Event::Kicked {
                user,
                reason: record.reason,
            })
        }
        (Op::Applied { op, .. }, done) => finish(*op, done),
        (Op::Refused { op, reason }, _) => refused(*op, reason),
        (Op::Sync { reply }, _) => {
            let _ = reply.send(());
            Outcome::Nothing
        }
        (Op::Evict { epoch }, Done::Nothing) => Outcome::Event(Event::Evicted { epoch }),
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
                to,
                action,
                read,
            },
            done @ (Done::Said(_) | Done::SaidIgnored(_)),
        ) => {
            let (id, ignored) = match done {
                Done::SaidIgnored(id) => (id, true),
                Done::Said(id) => (id, false),
                _ => (0, false),
            };
            Outcome::Said(Committed {
                id,
                room,
                name: user.name,
                text,
                action,
                sender: session,
                from: user.id,
                to,
                ignored,
                read,
            })
        }
        (Op::Ignore { reply, .. }, Done::Nothing) => Outcome::Replied(reply, Ok(())),
        (
            Op::Join {
                session,
                user,
                room,
                reply,
                ..
            },
            Done::Joined(history, missed, topic),
        ) => Outcome::Event(Event::Joined(Joined {
            session,
            user,
            room,
            history,
            missed,
            topic,
            reply,
        })),
        (
            Op::Topic {
                user,
                room,
                text,
                reply,
            },
            Done::TopicSet(at),
        ) => Outcome::Event(Event::Topic {
            room,
            topic: Topic {
                text,
                by: user.name.to_string(),
                at,
            },
            reply,
        }),
        (Op::Health { reply }, Done::Nothing) => Outcome::Health(reply, true),
        (Op::SetPassword { reply, .. }, Done::Nothing) => Outcome::Replied(reply, Ok(())),
        (Op::Moderate { reply, .. }, Done::Moderated(applied)) => {
            Outcome::Moderated(reply, Ok(applied))
        }
        (Op::Moderate { record, reply }, Done::Deleted(room, name)) => {
            let Effect::Delete { id } = record.effect else {
                return Outcome::Moderated(reply, Ok(Applied::Done));
            };
            Outcome::Event(Event::Deleted {
                room: Arc::from(room),
                id,
                name: Arc::from(name),
                reply,
            })
        }
        (op, _) => not_done(op),
    }
}

/// The outcome of an operation whose transaction did not commit: every write in it is reported
/// failed, the rest (leave, depart, stop) still answered.
pub(super) fn not_done(op: Op) -> Outcome {
    refused(op, Failure::Storage)
}

/// The outcome of an operation not committed for `reason`.
fn refused(op: Op, reason: Failure) -> Outcome {
    match op {
        Op::Applied { op, .. } | Op::Refused { op, .. } => refused(*op, reason),
        // Presence only: freed whether or not the transaction committed.
        Op::Evict { epoch } => Outcome::Event(Event::Evicted { epoch }),
        Op::Sync { reply } => {
            let _ = reply.send(());
            Outcome::Nothing
        }
        Op::CreateUser { reply, .. } => {
            Outcome::Created(reply, Err(StoreError::Sqlite("rolled back".into())))
        }
        Op::Say { session, .. } => Outcome::Event(Event::Failed { session, reason }),
        Op::SetPassword { reply, .. } | Op::Ignore { reply, .. } | Op::Topic { reply, .. } => {
            Outcome::Replied(reply, Err(StoreError::Sqlite("rolled back".into())))
        }
        Op::Moderate { reply, .. } => {
            Outcome::Moderated(reply, Err(StoreError::Sqlite("rolled back".into())))
        }
        Op::Join { .. } => Outcome::Nothing,
        Op::Leave { session, reply } => Outcome::Event(Event::Left { session, reply }),
        Op::Depart { departure, reply } => Outcome::Event(Event::Departed { departure, reply }),
        Op::Health { reply } => Outcome::Health(reply, false),
        Op::Stop { done } => Outcome::Stop(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Sync;
    use crate::protocol::Page;
    use crate::store::Database;
    use crate::store::history::merge_rooms;
    use tokio::sync::oneshot;

    /// Messages batched into multi-row INSERTs get the ids of their own rows, in queue order,
    /// across chunk sizes and rooms; a join in the middle sees exactly the messages before it.
    #[test]
    fn a_batch_of_messages_gets_the_ids_of_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(&dir.path().join("t.db"), Sync::Normal)
            .unwrap()
            .split()
            .1;
        let tx = db.conn.transaction().unwrap();
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
                to: None,
                action: false,
                read: None,
            });
        }
        let mut new_rooms = Vec::new();
        let now = "2026-11-29T08:00:00.000Z";
        let dones = execute_all(
            &tx,
            &HashMap::new(),
            &mut new_rooms,
            &mut Seats::new(0),
            now,
            &ops,
        )
        .unwrap();
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
                (Op::Join { .. }, Done::Joined(rows, _, _)) => {
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
        let mut db = Database::open(&dir.path().join("t.db"), Sync::Normal)
            .unwrap()
            .split()
            .1;
        let user = User {
            id: 1,
            name: Arc::from("ann"),
        };
        db.conn
            .execute(
                "INSERT INTO users (id, name, password_hash) VALUES (1, 'ann', 'x')",
                [],
            )
            .unwrap();
        let rooms: Vec<Arc<str>> = (0..30).map(|r| Arc::from(format!("r{r}"))).collect();
        let mut rng = fastrand::Rng::with_seed(11);
        let mut cache = HashMap::new();
        for batch in 0..20 {
            let tx = db.conn.transaction().unwrap();
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
                    to: None,
                    action: false,
                    read: None,
                });
            }
            let mut new_rooms = Vec::new();
            execute_all(
                &tx,
                &cache,
                &mut new_rooms,
                &mut Seats::new(0),
                "2026-12-01T00:00:00.000Z",
                &ops,
            )
            .unwrap();
            tx.commit().unwrap();
            for r in new_rooms {
                let id = db
                    .conn
                    .query_row("SELECT id FROM rooms WHERE name = ?1", [&*r], |row| {
                        row.get(0)
                    })
                    .unwrap();
                cache.insert(r, id);
            }
        }
        let c = &db.conn;
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
}

//! Where sessions sit, as the writer sequences it, and what follows from it: "what I missed"
//! (each account's mark, per room, of the newest message delivered to it there,
//! `memberships.seen_id`, moved when one of its sessions leaves the room, and the replay a
//! join builds from it), and on a cluster node the `seats` table kept with the stream.
//!
//! The writer sequences every join, leave and departure, so it knows where each session sits
//! ([`Seats`]), and when a session leaves a room every message committed there before the
//! leave was delivered to it (the log's order): the mark becomes the room's newest message id.
//! A returning user's join then replays what came after the mark (up to `missed_max`), after
//! the last N from before it as context; a first visit gets the plain replay of the last N.

use crate::log::{Missed, Op};
use crate::protocol::HistRow;
use crate::store::history::room_tail;
use crate::{SessionId, UserId, epoch_of};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::sync::Arc;

/// Most missed messages counted exactly; beyond, the count says at least this many.
pub const MISSED_COUNT_MAX: i64 = 10_000;

/// Where each session sits, as the writer has sequenced it: (account, room id). Changes made
/// inside a transaction are pending until it commits, and dropped if it rolls back.
#[derive(Debug, Default)]
pub(super) struct Seats {
    seated: HashMap<SessionId, (UserId, i64)>,
    pending: Vec<(SessionId, Option<(UserId, i64)>)>,
    /// Most missed messages a join replays (`--history-on-join-missed`).
    pub(super) missed_max: u32,
}

impl Seats {
    /// No session seated yet; joins replay at most `missed_max` missed messages.
    pub(super) fn new(missed_max: u32) -> Seats {
        Seats {
            missed_max,
            ..Seats::default()
        }
    }

    /// Where `session` sits, counting this transaction's changes.
    fn get(&self, session: SessionId) -> Option<(UserId, i64)> {
        match self.pending.iter().rev().find(|(s, _)| *s == session) {
            Some((_, seat)) => *seat,
            None => self.seated.get(&session).copied(),
        }
    }

    /// Seats `session` (or takes it out, `None`) once the transaction commits; returns where
    /// it sat before.
    pub(super) fn set(
        &mut self,
        session: SessionId,
        seat: Option<(UserId, i64)>,
    ) -> Option<(UserId, i64)> {
        let before = self.get(session);
        self.pending.push((session, seat));
        before
    }

    /// Takes out every session of a node incarnation declared gone; returns their seats.
    pub(super) fn evict(&mut self, epoch: u32) -> Vec<(UserId, i64)> {
        let mut sessions: Vec<SessionId> = self
            .seated
            .keys()
            .chain(self.pending.iter().map(|(s, _)| s))
            .copied()
            .filter(|s| epoch_of(*s) == epoch)
            .collect();
        sessions.sort_unstable();
        sessions.dedup();
        sessions
            .into_iter()
            .filter_map(|s| self.set(s, None))
            .collect()
    }

    /// The transaction committed: its changes hold.
    pub(super) fn commit(&mut self) {
        for (session, seat) in self.pending.drain(..) {
            match seat {
                Some(seat) => self.seated.insert(session, seat),
                None => self.seated.remove(&session),
            };
        }
    }

    /// The transaction rolled back: its changes are dropped.
    pub(super) fn rollback(&mut self) {
        self.pending.clear();
    }
}

/// Moves the writer's record of where a session sits for a join (leaving its room, if any),
/// a leave, a departure or a node's end, marking what the session saw in the room it leaves.
pub(super) fn move_seat(
    tx: &Connection,
    cache: &HashMap<Arc<str>, i64>,
    new_rooms: &mut Vec<Arc<str>>,
    seats: &mut Seats,
    op: &Op,
) -> rusqlite::Result<()> {
    let left = match op {
        Op::Join {
            session,
            user,
            room,
            ..
        } => {
            let room = super::room_ids::room_id(tx, cache, new_rooms, room)?;
            seats.set(*session, Some((user.id, room)))
        }
        Op::Leave { session, .. } => seats.set(*session, None),
        Op::Depart { departure, .. } => seats.set(departure.session, None),
        Op::Evict { epoch } => {
            for seat in seats.evict(*epoch) {
                mark(tx, seat)?;
            }
            None
        }
        _ => None,
    };
    match left {
        Some(seat) => mark(tx, seat),
        None => Ok(()),
    }
}

/// Keeps `seats` (the cluster's presence as of the applied records) in step with a stream
/// record's join, leave, departure or node end.
pub(super) fn record_seat(
    tx: &Connection,
    cache: &HashMap<Arc<str>, i64>,
    new_rooms: &mut Vec<Arc<str>>,
    op: &Op,
) -> rusqlite::Result<()> {
    match op {
        Op::Join {
            session,
            user,
            room,
            ..
        } => {
            let room_id = super::room_ids::room_id(tx, cache, new_rooms, room)?;
            tx.prepare_cached(
                "INSERT INTO seats (session, user_id, room_id) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (session) DO UPDATE SET user_id = excluded.user_id, \
                 room_id = excluded.room_id",
            )?
            .execute(params![*session as i64, user.id, room_id])?;
        }
        Op::Leave { session, .. } => {
            tx.prepare_cached("DELETE FROM seats WHERE session = ?1")?
                .execute(params![*session as i64])?;
        }
        Op::Depart { departure, .. } => {
            tx.prepare_cached("DELETE FROM seats WHERE session = ?1")?
                .execute(params![departure.session as i64])?;
        }
        Op::Evict { epoch } => {
            tx.prepare_cached("DELETE FROM seats WHERE (session >> 32) & 4294967295 = ?1")?
                .execute(params![epoch])?;
        }
        _ => {}
    }
    Ok(())
}

/// Marks every message of `room` so far as delivered to `user` (one of its sessions left).
pub(super) fn mark(tx: &Connection, (user, room): (UserId, i64)) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE memberships SET seen_id = \
         (SELECT coalesce(max(id), 0) FROM messages WHERE room_id = ?2) \
         WHERE user_id = ?1 AND room_id = ?2",
    )?
    .execute(params![user, room])?;
    Ok(())
}

/// The replay of `user`'s join to `room`, oldest first, read before the membership is made
/// (so its mark is the one from the last visit): a first visit, or a return with nothing new,
/// gets the last `history` messages; a return with messages after the mark gets the last
/// `history` it had seen (context), then the newest `missed_max` of those after the mark.
pub(super) fn replay(
    tx: &Connection,
    user: UserId,
    room: i64,
    history: u32,
    missed_max: u32,
) -> rusqlite::Result<(Vec<HistRow>, Option<Missed>)> {
    let mark: Option<i64> = tx
        .prepare_cached("SELECT seen_id FROM memberships WHERE user_id = ?1 AND room_id = ?2")?
        .query_row(params![user, room], |r| r.get(0))
        .optional()?
        .flatten();
    let plain = |tx: &Connection| -> rusqlite::Result<Vec<HistRow>> {
        if history == 0 {
            return Ok(Vec::new());
        }
        let mut rows = room_tail(tx, room, None, history)?;
        rows.reverse();
        Ok(rows)
    };
    let Some(mark) = mark else {
        return Ok((plain(tx)?, None));
    };
    // An index-only count, capped: the writer never walks a long absence row by row.
    let after: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM (SELECT id FROM messages WHERE room_id = ?1 AND id > ?2 \
             LIMIT ?3)",
        )?
        .query_row(params![room, mark, MISSED_COUNT_MAX], |r| r.get(0))?;
    if after == 0 || missed_max == 0 {
        return Ok((plain(tx)?, None));
    }
    let missed = u32::try_from(after).unwrap_or(u32::MAX).min(missed_max);
    let mut rows = room_tail(tx, room, None, history.saturating_add(missed))?;
    rows.reverse();
    let mut new_from = rows.iter().position(|h| h.id > mark).unwrap_or(rows.len());
    // At most `history` of context (more came back when some missed ones were deleted), and
    // at most `missed` missed ones (more came back when there was less context than that).
    let extra = new_from.saturating_sub(history as usize);
    rows.drain(..extra);
    new_from -= extra;
    let over = (rows.len() - new_from).saturating_sub(missed as usize);
    rows.drain(new_from..new_from + over);
    let shown = rows.len() - new_from;
    if shown == 0 {
        return Ok((rows, None));
    }
    // Every missed message was read (deleted ones are never shown): the count is exact.
    let count = if after as u64 <= u64::from(missed_max) {
        shown as u64
    } else {
        after as u64
    };
    Ok((
        rows,
        Some(Missed {
            count,
            at_least: after >= MISSED_COUNT_MAX,
            new_from,
        }),
    ))
}

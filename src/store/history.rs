//! History reads: a room's tail (join replay), a user's own messages, and the merge of every
//! room a user has joined (`#my_messages`). Pure SQL on a connection; callers run them off the
//! async threads.

use crate::UserId;
use crate::protocol::{HistRow, Page};
use rusqlite::{Connection, params};

/// Messages fetched from a room's index at a time while merging.
pub const MERGE_CHUNK: u32 = 32;

/// The newest `page.limit` messages below `page.before` across the rooms `user` has joined,
/// oldest first. Rooms are visited newest first by their last message id (kept in `rooms`),
/// and a room's index is read only once its newest possible row could be the next on the page:
/// the first page opens at most `limit + 1` rooms whatever the number of memberships, and
/// reads at most [`MERGE_CHUNK`] rows from each beyond what the page takes. One cached
/// statement serves every room, so memory does not grow with the memberships either.
/// Paging back (`before` set) also skips rooms whose first message is not below it.
pub fn merge_rooms(c: &Connection, user: UserId, page: Page) -> rusqlite::Result<Vec<HistRow>> {
    let before = page.before.unwrap_or(i64::MAX);
    // (room id, the largest id it can have below `before`), best first.
    let rooms: Vec<(i64, i64)> = c
        .prepare_cached(
            "SELECT r.id, min(r.last_message_id, ?2 - 1) AS bound \
             FROM memberships ms JOIN rooms r ON r.id = ms.room_id \
             WHERE ms.user_id = ?1 AND r.first_message_id < ?2 ORDER BY bound DESC",
        )?
        .query_map(params![user, before], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    merge(c, &rooms, page, None)
}

/// The private messages `user` received (the other parties' messages in their conversations,
/// not from someone they ignore): one page, oldest first, merged as [`merge_rooms`] merges, so
/// the cost follows the page, not the number of conversations or of their messages.
pub fn merge_received(c: &Connection, user: UserId, page: Page) -> rusqlite::Result<Vec<HistRow>> {
    let before = page.before.unwrap_or(i64::MAX);
    let rooms: Vec<(i64, i64)> = c
        .prepare_cached(
            "SELECT r.id, min(r.last_message_id, ?2 - 1) AS bound \
             FROM conversations cv JOIN rooms r ON r.id = cv.room_id \
             WHERE (cv.low = ?1 OR cv.high = ?1) AND r.first_message_id < ?2 \
             ORDER BY bound DESC",
        )?
        .query_map(params![user, before], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    merge(c, &rooms, page, Some(user))
}

/// The lazy merge of `rooms` ((room id, bound), best first) for one page; with `reader`, only
/// other senders' rows that the reader does not ignore.
fn merge(
    c: &Connection,
    rooms: &[(i64, i64)],
    page: Page,
    reader: Option<UserId>,
) -> rusqlite::Result<Vec<HistRow>> {
    let before = page.before.unwrap_or(i64::MAX);
    let limit = page.limit as usize;
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
            let r = OpenRoom::fetch(c, room, before, limit - out.len(), reader)?;
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
            open[i] = OpenRoom::fetch(c, open[i].room, row.id, limit - out.len(), reader)?;
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
    /// Up to [`MERGE_CHUNK`] (and at most `want`) of `room`'s newest rows below `below`; with
    /// `reader`, only those of other senders the reader does not ignore.
    fn fetch(
        c: &Connection,
        room: i64,
        below: i64,
        want: usize,
        reader: Option<UserId>,
    ) -> rusqlite::Result<OpenRoom> {
        let n = u32::try_from(want).unwrap_or(u32::MAX).min(MERGE_CHUNK);
        let rows: std::collections::VecDeque<HistRow> = match reader {
            None => room_tail(c, room, Some(below), n)?,
            Some(reader) => query_hist(
                c,
                &format!(
                    "{HIST_SELECT} WHERE m.room_id = ?1 AND m.id < ?2 AND m.deleted_at IS NULL \
                     AND m.user_id != ?4 AND NOT EXISTS (SELECT 1 FROM ignores i \
                     WHERE i.user_id = ?4 AND i.ignored_id = m.user_id) \
                     ORDER BY m.id DESC LIMIT ?3"
                ),
                params![room, below, n, reader],
            )?,
        }
        .into();
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
        action: r.get(5)?,
    })
}

/// The columns of a `HIST` row, joined from messages, rooms and users; callers add the
/// `WHERE` (with `m.deleted_at IS NULL`: deleted messages are tombstones, never shown) and
/// `ORDER BY`.
pub const HIST_SELECT: &str = "SELECT m.id, m.created_at, r.name, u.name, m.body, m.action \
     FROM messages m JOIN rooms r ON r.id = m.room_id JOIN users u ON u.id = m.user_id";

/// Runs a [`HIST_SELECT`] query (cached) and maps its rows.
pub fn query_hist(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<HistRow>> {
    c.prepare_cached(sql)?
        .query_map(params, hist_row)?
        .collect()
}

/// The newest `limit` messages of `room` below `before`, newest first.
pub fn room_tail(
    c: &Connection,
    room: i64,
    before: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<HistRow>> {
    query_hist(
        c,
        &format!(
            "{HIST_SELECT} WHERE m.room_id = ?1 AND m.id < ?2 AND m.deleted_at IS NULL \
             ORDER BY m.id DESC LIMIT ?3"
        ),
        params![room, before.unwrap_or(i64::MAX), limit],
    )
}

/// The room name of the private conversation between two accounts, the same from either side:
/// `@LOW:HIGH` (their ids). No client can join it: `@` and `:` are not allowed in room names.
pub fn conversation(a: UserId, b: UserId) -> String {
    format!("@{}:{}", a.min(b), a.max(b))
}

/// Shows the private messages among `rows` as the reader `user` sees them: room `@PEER` (the
/// other party's name) instead of the conversation's stored name.
pub fn show_conversations(
    c: &Connection,
    user: UserId,
    rows: &mut [HistRow],
) -> rusqlite::Result<()> {
    for row in rows.iter_mut() {
        let Some((a, b)) = row
            .room
            .strip_prefix('@')
            .and_then(|ids| ids.split_once(':'))
            .and_then(|(a, b)| Some((a.parse::<UserId>().ok()?, b.parse::<UserId>().ok()?)))
        else {
            continue;
        };
        let peer = if a == user { b } else { a };
        let name: String = c
            .prepare_cached("SELECT name FROM users WHERE id = ?1")?
            .query_row(params![peer], |r| r.get(0))?;
        row.room = format!("@{name}");
    }
    Ok(())
}

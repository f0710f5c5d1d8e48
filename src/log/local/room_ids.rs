//! Room names to ids inside the writer's transaction: the one place a room is created.

use rusqlite::{Connection, params};
use std::collections::HashMap;
use std::sync::Arc;

/// The room's id, creating the room if needed. Rooms created in this transaction are noted so
/// the cache learns them only once it commits.
pub(super) fn room_id(
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

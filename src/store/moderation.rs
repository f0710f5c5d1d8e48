//! The statements that change bans and record moderation actions, shared by the daemon's
//! writer (inside a batch's transaction) and the operator's offline tool: one place says what
//! a ban is in the database.

use crate::UserId;
use crate::protocol::sanction::Ban;
use rusqlite::{Connection, params};

/// Sets the account's ban (replacing any). Returns the rows changed (0: no such account).
pub fn ban_account(c: &Connection, user: UserId, ban: &Ban) -> rusqlite::Result<usize> {
    c.prepare_cached("UPDATE users SET banned_until = ?2, ban_reason = ?3 WHERE id = ?1")?
        .execute(params![user, ban.until.stored(), ban.reason])
}

/// Lifts the account's ban if one is in force at `now`. Returns the rows changed.
pub fn lift_account_ban(c: &Connection, user: UserId, now: &str) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "UPDATE users SET banned_until = NULL, ban_reason = '' \
         WHERE id = ?1 AND banned_until > ?2",
    )?
    .execute(params![user, now])
}

/// Bans a network (CIDR form), replacing any ban of the same network.
pub fn ban_network(
    c: &Connection,
    network: &str,
    ban: &Ban,
    actor: &str,
    now: &str,
) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "INSERT INTO address_bans (network, until, reason, actor, at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (network) DO UPDATE SET until = excluded.until, reason = excluded.reason, \
         actor = excluded.actor, at = excluded.at",
    )?
    .execute(params![network, ban.until.stored(), ban.reason, actor, now])
}

/// Lifts a network's ban if one is in force at `now`. Returns the rows changed.
pub fn lift_network_ban(c: &Connection, network: &str, now: &str) -> rusqlite::Result<usize> {
    c.prepare_cached("DELETE FROM address_bans WHERE network = ?1 AND until > ?2")?
        .execute(params![network, now])
}

/// Records an action in the moderation log.
pub fn record(
    c: &Connection,
    actor: &str,
    action: &str,
    target: &str,
    reason: &str,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO moderation (actor, action, target, reason) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![actor, action, target, reason])?;
    Ok(())
}

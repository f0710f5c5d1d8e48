//! Accounts for the operator's offline tool (`linechatd user ...`): on the same database file
//! as a running daemon, through SQLite's own locking (one writer at a time, a busy timeout),
//! without the daemon's lock. How the first account is made when registration is closed.

use super::{configure, migrations, moderation};
use crate::protocol::sanction::{Ban, Target, Until};
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use std::path::Path;

/// One account, as `linechatd user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Name as registered.
    pub name: String,
    /// Whether it is an admin.
    pub admin: bool,
    /// When it was created (RFC 3339 UTC).
    pub created_at: String,
    /// The ban in force on it, if any.
    pub banned: Option<Ban>,
}

/// The database at `path` for the offline tool: it must exist and be at this daemon's schema
/// version (an older one is upgraded by starting linechatd once; a newer one is refused).
pub fn open(path: &Path) -> Result<Connection, String> {
    if !path.exists() {
        return Err(format!(
            "{} does not exist (start linechatd once to create it)",
            path.display()
        ));
    }
    let conn =
        Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    configure(&conn).map_err(|e| e.to_string())?;
    let version =
        migrations::check(&conn).map_err(|e| format!("cannot use {}: {e}", path.display()))?;
    if version != migrations::VERSION {
        return Err(format!(
            "{} is at schema version {version}; start linechatd {} once to upgrade it",
            path.display(),
            env!("CARGO_PKG_VERSION")
        ));
    }
    Ok(conn)
}

/// Refuses to change what the cluster's stream owns on a cluster node's database: accounts,
/// passwords and bans are records every node applies, and a row written here alone would
/// give this node ids and accounts the others do not have. (Admin flags are per node: they
/// may be set here.)
pub fn not_clustered(conn: &Connection, path: &Path) -> Result<(), String> {
    let clustered: bool = conn
        .query_row("SELECT EXISTS (SELECT 1 FROM log_position)", [], |r| {
            r.get(0)
        })
        .map_err(explain)?;
    if clustered {
        return Err(format!(
            "{} is a cluster node's database: accounts, passwords and bans go through the \
             cluster (#register, #password, #ban as an admin on any node)",
            path.display()
        ));
    }
    Ok(())
}

/// What went wrong, in the words an operator reads.
fn explain(e: rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "the database stayed busy (the daemon holds its write lock); try again".into()
        }
        _ => e.to_string(),
    }
}

/// Creates an account with an already computed bcrypt `hash`.
pub fn add(conn: &Connection, name: &str, hash: &str) -> Result<(), String> {
    match conn.execute(
        "INSERT INTO users (name, password_hash) VALUES (?1, ?2)",
        params![name, hash],
    ) {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
            Err(format!("the name {name} is taken (in some case)"))
        }
        Err(e) => Err(explain(e)),
    }
}

/// Replaces the password hash of `name` (any case).
pub fn set_password(conn: &Connection, name: &str, hash: &str) -> Result<(), String> {
    let changed = conn
        .execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            params![name, hash],
        )
        .map_err(explain)?;
    if changed == 0 {
        return Err(format!("no account named {name}"));
    }
    Ok(())
}

/// The id and stored name of the account `name` (any case).
fn account(conn: &Connection, name: &str) -> Result<(i64, String), String> {
    conn.query_row("SELECT id, name FROM users WHERE name = ?1", [name], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
    .map_err(explain)?
    .ok_or_else(|| format!("no account named {name}"))
}

/// Makes `name` an admin (or, with `admin` false, no longer one), and records it in the
/// moderation log as done by `cli`.
pub fn set_admin(conn: &mut Connection, name: &str, admin: bool) -> Result<(), String> {
    let tx = conn.transaction().map_err(explain)?;
    let (id, stored) = account(&tx, name)?;
    tx.execute(
        "UPDATE users SET is_admin = ?2 WHERE id = ?1",
        params![id, admin],
    )
    .map_err(explain)?;
    let action = if admin { "admin" } else { "revoke" };
    moderation::record(&tx, "cli", action, &stored, "").map_err(explain)?;
    tx.commit().map_err(explain)
}

/// Bans an account (admins too: this is the operator) or a network, and records it in the
/// moderation log as done by `cli`. A running daemon reads it within two seconds and closes
/// the sessions it covers. The same statements as the daemon's `#ban`.
pub fn ban(conn: &mut Connection, target: Target<'_>, ban: &Ban) -> Result<String, String> {
    let tx = conn.transaction().map_err(explain)?;
    let now = Until::now_stored();
    let name = match target {
        Target::Account(name) => {
            let (id, stored) = account(&tx, name)?;
            moderation::ban_account(&tx, id, ban).map_err(explain)?;
            stored
        }
        Target::Network(net) => {
            let network = net.to_string();
            moderation::ban_network(&tx, &network, ban, "cli", &now).map_err(explain)?;
            network
        }
    };
    moderation::record(&tx, "cli", "ban", &name, &ban.text()).map_err(explain)?;
    tx.commit().map_err(explain)?;
    Ok(name)
}

/// Lifts the ban on an account or a network, recorded as done by `cli`.
pub fn unban(conn: &mut Connection, target: Target<'_>) -> Result<String, String> {
    let tx = conn.transaction().map_err(explain)?;
    let now = Until::now_stored();
    let (name, changed) = match target {
        Target::Account(name) => {
            let (id, stored) = account(&tx, name)?;
            let changed = moderation::lift_account_ban(&tx, id, &now).map_err(explain)?;
            (stored, changed)
        }
        Target::Network(net) => {
            let network = net.to_string();
            let changed = moderation::lift_network_ban(&tx, &network, &now).map_err(explain)?;
            (network, changed)
        }
    };
    if changed == 0 {
        return Err(format!("{name} is not banned"));
    }
    moderation::record(&tx, "cli", "unban", &name, "").map_err(explain)?;
    tx.commit().map_err(explain)?;
    Ok(name)
}

/// Every account, by name.
pub fn list(conn: &Connection) -> Result<Vec<Account>, String> {
    let now = Until::now_stored();
    let mut stmt = conn
        .prepare(
            "SELECT name, created_at, is_admin, banned_until, ban_reason FROM users \
             ORDER BY name COLLATE NOCASE",
        )
        .map_err(explain)?;
    let rows = stmt
        .query_map([], |r| {
            let until: Option<String> = r.get(3)?;
            let banned = until
                .filter(|u| *u > now)
                .and_then(|u| Until::from_stored(&u))
                .map(|until| Ban {
                    until,
                    reason: r.get(4).unwrap_or_default(),
                });
            Ok(Account {
                name: r.get(0)?,
                created_at: r.get(1)?,
                admin: r.get(2)?,
                banned,
            })
        })
        .map_err(explain)?;
    rows.collect::<Result<_, _>>().map_err(explain)
}

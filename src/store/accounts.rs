//! Accounts for the operator's offline tool (`linechatd user ...`): on the same database file
//! as a running daemon, through SQLite's own locking (one writer at a time, a busy timeout),
//! without the daemon's lock. How the first account is made when registration is closed.

use super::{configure, migrations};
use rusqlite::{Connection, ErrorCode, params};
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

/// Makes `name` an admin (or, with `admin` false, no longer one), and records it in the
/// moderation log as done by `cli`.
pub fn set_admin(conn: &mut Connection, name: &str, admin: bool) -> Result<(), String> {
    let tx = conn.transaction().map_err(explain)?;
    let changed = tx
        .execute(
            "UPDATE users SET is_admin = ?2 WHERE name = ?1",
            params![name, admin],
        )
        .map_err(explain)?;
    if changed == 0 {
        return Err(format!("no account named {name}"));
    }
    let action = if admin { "admin" } else { "revoke" };
    tx.execute(
        "INSERT INTO moderation (actor, action, target) VALUES ('cli', ?1, ?2)",
        params![action, name],
    )
    .map_err(explain)?;
    tx.commit().map_err(explain)
}

/// Every account, by name.
pub fn list(conn: &Connection) -> Result<Vec<Account>, String> {
    let mut stmt = conn
        .prepare("SELECT name, created_at, is_admin FROM users ORDER BY name COLLATE NOCASE")
        .map_err(explain)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Account {
                name: r.get(0)?,
                created_at: r.get(1)?,
                admin: r.get(2)?,
            })
        })
        .map_err(explain)?;
    rows.collect::<Result<_, _>>().map_err(explain)
}

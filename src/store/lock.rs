//! One daemon per database: an OS file lock on `DB.lock`, held for the daemon's life.
//!
//! SQLite's own locking lets two processes share a database, which for two daemons means two
//! sets of presence and interleaved ids (split brain). The daemon therefore takes an exclusive
//! `flock` on a file beside the database before opening it, and a second daemon is refused
//! with a message naming the lock and the first daemon's pid. The lock is the kernel's: it
//! ends with the process, however it ends (`kill -9` included), so a stale lock file never
//! blocks a restart. Offline tools that open the database through SQLite do not take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    path: PathBuf,
}

/// The lock file of the database at `db`: `DB.lock` beside it.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl DaemonLock {
    /// Takes the lock of the database at `db`, or says who holds it.
    pub fn take(db: &Path) -> Result<DaemonLock, String> {
        let path = lock_path(db);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let pid = holder.trim();
                let who = if pid.is_empty() {
                    "another linechatd".to_string()
                } else {
                    format!("another linechatd (pid {pid})")
                };
                return Err(format!(
                    "{who} is serving it and holds the lock {}; stop it first (one daemon per \
                     database)",
                    path.display()
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        // Say who holds it, for the message above. Best effort: the lock is what counts.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DaemonLock { _file: file, path })
    }

    /// Where the lock is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_taker_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("chat.db");
        let first = DaemonLock::take(&db).unwrap();
        assert_eq!(first.path(), dir.path().join("chat.db.lock"));
        let e = DaemonLock::take(&db).unwrap_err();
        let pid = std::process::id().to_string();
        assert!(e.contains(&format!("(pid {pid})")), "{e}");
        assert!(e.contains("chat.db.lock"), "{e}");
        drop(first);
        DaemonLock::take(&db).unwrap();
    }
}

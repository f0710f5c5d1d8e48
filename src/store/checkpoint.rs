//! The background checkpointer: folds the WAL into the database file on its own connection.

use super::configure;
use log::{error, info, warn};
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// How often the background checkpointer folds the WAL into the database file.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Folds the WAL into the database file every [`CHECKPOINT_EVERY`], on its own connection, in
/// PASSIVE mode (never blocking the writer or readers), so no commit ever waits for a
/// checkpoint's fsync. Ends with a final checkpoint when the writer thread has finished.
pub fn checkpointer(path: &Path, writer_gone: std::sync::mpsc::Receiver<()>) {
    let conn = match Connection::open(path).and_then(|c| configure(&c).map(|()| c)) {
        Ok(c) => c,
        Err(e) => {
            error!("store: checkpointer cannot open the database: {e}");
            return;
        }
    };
    // Logged when checkpoints start or stop failing, not every half second of a fault.
    let mut failing = false;
    let mut checkpoint = |mode: &str| match conn.query_row(
        &format!("PRAGMA wal_checkpoint({mode})"),
        [],
        |_| Ok(()),
    ) {
        Err(e) if !failing => {
            warn!("store: checkpoints failing: {e}");
            failing = true;
        }
        Ok(()) if failing => {
            info!("store: checkpoints working again");
            failing = false;
        }
        _ => {}
    };
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
        writer_gone.recv_timeout(CHECKPOINT_EVERY)
    {
        checkpoint("PASSIVE");
    }
    checkpoint("TRUNCATE");
}

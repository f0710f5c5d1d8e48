//! The accept loop: connection limit, one session task per socket, and graceful shutdown
//! (stop accepting, tell every session, let them flush, commit what is queued).

use crate::auth::Auth;
use crate::config::Config;
use crate::protocol::{ErrCode, Reply};
use crate::rooms::Rooms;
use crate::session;
use crate::store::{Database, Store};
use log::{info, warn};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long sessions get to say goodbye and flush after shutdown starts.
const SESSION_GRACE: Duration = Duration::from_secs(3);
/// How long the writer gets to commit what is queued after the sessions are gone.
const STORE_GRACE: Duration = Duration::from_millis(1500);

/// What every session shares.
pub struct Shared {
    /// Validated settings.
    pub config: Config,
    /// The room actor.
    pub rooms: Rooms,
    /// The store (writer queue and read pool).
    pub store: Store,
    /// bcrypt, off the async threads.
    pub auth: Auth,
}

/// Serves `listener` until `shutdown` is cancelled, then winds down: sessions are told
/// `INFO server shutting down`, get [`SESSION_GRACE`] to flush, and the store commits what is
/// queued. Takes an already bound listener so tests and scripts can bind port 0.
pub async fn run(
    listener: TcpListener,
    config: Config,
    db: Database,
    auth: Auth,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let rooms = Rooms::spawn();
    let store = Store::start(db, rooms.clone())?;
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let shared = Arc::new(Shared {
        config,
        rooms,
        store: store.clone(),
        auth,
    });
    let tracker = TaskTracker::new();
    let mut next_id: u64 = 0;
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let id = next_id;
        let _ = stream.set_nodelay(true);
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    session::run(stream, id, peer, shared, shutdown).await;
                    drop(permit);
                });
            }
            Err(_) => {
                info!("conn={id} peer={peer} refused: connection limit reached");
                tracker.spawn(async move {
                    let line = Reply::Err(ErrCode::Busy, "server is full, try again later");
                    let _ = tokio::time::timeout(SESSION_GRACE, async {
                        let _ = stream.write_all(&line.to_bytes()).await;
                        let _ = stream.shutdown().await;
                    })
                    .await;
                });
            }
        }
    }
    drop(listener);
    info!("shutting down: no longer accepting connections");
    tracker.close();
    if tokio::time::timeout(SESSION_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("shutting down: some sessions did not finish in time");
    }
    if tokio::time::timeout(STORE_GRACE, store.stop())
        .await
        .is_err()
    {
        warn!("shutting down: the store did not finish committing in time");
    }
    info!("shut down");
    Ok(())
}

//! The cluster log: every writing request is published to one NATS JetStream stream, whose
//! order is the one order of the cluster; every node applies the whole stream, in order, to its
//! own SQLite database through its [`local`](super::local) log, and hands the events to its
//! room actor. So every node's history has the same ids (a record's stream sequence is its
//! message's or account's id), order and text, and a join's replay is read at the join's place
//! in the stream on every node.
//!
//! Decisions:
//! - **Commit is the stream's acknowledgement**, and delivery waits for it: a request reaches
//!   the sink only when the node's ordered consumer receives it back from the stream, which
//!   JetStream does only once the record is stored on the stream's replicas. The publishing
//!   node keeps the request (with its reply channels) by message id until then, and answers
//!   its session from it; the other nodes rebuild it from the record with replies to nobody.
//! - **Many publishes in flight** (up to [`IN_FLIGHT`]), acknowledged as they come: the
//!   equivalent of the local log's group commit, never one round trip per message in series.
//!   The consumer's records reach the local writer in bursts, which commits them together.
//! - **At most once.** Each request's `Nats-Msg-Id` is its node incarnation and a counter; a
//!   publish not acknowledged within [`ACK_TIMEOUT`] is sent again with the same id (the
//!   stream drops a copy it already has, within its two-minute duplicate window), up to
//!   [`ATTEMPTS`] times. Then the sender is told `ERR storage` with an unknown outcome; if the
//!   record did land, it is applied like any other, once.
//! - **Applied once.** The node's place in the stream is written in the same transaction as
//!   what each record did (`log_position`); a restarted node resumes after it, and a new node
//!   on an empty database replays the stream from the start, before it serves anyone.
//! - **Sessions of other nodes** carry their node incarnation (a random `epoch`, new at every
//!   start) in the high 32 bits of their id, so every node seats them, counts them and tells
//!   its own members of their joins and leaves. Nodes heartbeat on core NATS every
//!   [`HEARTBEAT`]; an incarnation silent for [`DEAD_AFTER`] is declared gone by whoever
//!   notices (a `NodeGone` record, deduplicated by id), and applying it frees its seats on
//!   every node in stream order. A node stopping cleanly declares itself gone; a node that
//!   finds itself declared gone (cut off too long) ends its sessions and goes on as a new
//!   incarnation.
//! - Reads (logins, history) stay local: they work while NATS is away; writes do not.

mod consume;
mod heartbeat;
mod nodes;
mod publish;
mod record;

use super::local::{self, WriterOptions};
use super::{Health, Log, Op, STREAM, Sink};
use crate::config::{ClusterConfig, Credentials};
use crate::store::WriterDb;
use async_nats::jetstream::{self, stream};
use consume::Consumer;
use heartbeat::{declare_the_dead, heartbeats, listen};
use log::{debug, info, warn};
use nodes::Liveness;
use publish::Router;
use rusqlite::OptionalExtension;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// The subject every record is published on.
pub const SUBJECT: &str = "linechat.log";
/// The subject of the nodes' heartbeats (core NATS: not stored).
const HEARTBEATS: &str = "linechat.nodes";
/// Publishes awaiting their acknowledgement, at most.
pub const IN_FLIGHT: usize = 4096;
/// How long one publish waits for its acknowledgement.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Publishes of one request before its sender is told `ERR storage`: a chat line gets its
/// answer within `ATTEMPTS × ACK_TIMEOUT`.
pub const ATTEMPTS: u32 = 3;
/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node silent this long is gone: its users leave every room on every other node.
pub const DEAD_AFTER: Duration = Duration::from_secs(5);
/// The stream's duplicate window: a retried publish within it is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// A consumer that has received nothing for this long while the stream holds newer records
/// is replaced.
const STALL: Duration = Duration::from_secs(2);
/// Capacity of the cluster log's queue.
const QUEUE: usize = 8192;

/// Requests published and not yet applied, by message id: the publishing node answers its
/// sessions from these.
type Pending = Arc<Mutex<HashMap<String, Op>>>;

/// Joins the cluster: connects to NATS, makes sure the stream exists, starts the local writer
/// on `db` and the ordered consumer that feeds it, and returns once this node has applied the
/// whole stream as it was when the node started (a new node has rebuilt its history). `epoch`
/// is this incarnation of the node (nonzero, random): the high 32 bits of its sessions' ids.
pub async fn start(
    db: WriterDb,
    sink: impl Sink,
    options: WriterOptions,
    cluster: ClusterConfig,
    epoch: crate::Incarnation,
) -> Result<Log, String> {
    // The database's reads run off the async threads, like every SQLite call.
    let (db, read) = tokio::task::spawn_blocking(move || {
        let read = position_of(&db).and_then(|p| Ok((p, seats_of(&db)?)));
        (db, read)
    })
    .await
    .map_err(|e| format!("reading the database: {e}"))?;
    let (position, seats) = read?;
    let (connections, connected) = watch::channel(0u64);
    let connections_seen = connected.clone();
    let client = connect(&cluster, connections).await?;
    let js = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .max_ack_inflight(IN_FLIGHT)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let stream = the_stream(&js, cluster.replicas).await?;
    let last = stream.cached_info().state.last_sequence;
    if position > last {
        return Err(format!(
            "the database has applied the cluster's stream up to record {position}, but the \
             stream ends at {last}: it belongs to another cluster (or the stream was deleted)"
        ));
    }
    let writer = local::start(db, sink, options).map_err(|e| format!("the writer: {e}"))?;
    let pending: Pending = Arc::default();
    let liveness = Arc::new(Mutex::new(Liveness::new(epoch.get(), DEAD_AFTER)));
    // The cluster's presence as of `position`, seated again before the next record; each
    // seat's node gets its grace to be heard from, or is declared gone.
    let n = seats.len();
    for seat in seats {
        lock(&liveness).saw(crate::epoch_of(seat.session), Instant::now());
        let (reply, _) = oneshot::channel();
        let join = Op::Join {
            session: seat.session,
            user: seat.user,
            room: seat.room,
            history: 0,
            reply,
        };
        writer
            .queue(join)
            .await
            .map_err(|e| format!("restoring presence: {e}"))?;
    }
    if n > 0 {
        info!("cluster: {n} seats restored from the database");
    }
    let (applied_tx, mut applied) = watch::channel(position);
    let consumer = Consumer {
        writer: writer.clone(),
        epoch: epoch.clone(),
        pending: pending.clone(),
        liveness: liveness.clone(),
        applied: applied_tx,
    };
    tokio::spawn(consumer.run(stream, position, connected));
    info!(
        node = cluster.node.as_str(), epoch = format!("{:08x}", epoch.get()).as_str();
        "cluster: joined; applying the stream from record {} to {last}", position + 1
    );
    let caught_up = Instant::now();
    let mut told = Instant::now();
    while *applied.borrow_and_update() < last {
        if tokio::time::timeout(Duration::from_secs(5), applied.changed())
            .await
            .is_ok_and(|r| r.is_err())
        {
            return Err("the stream's consumer stopped while catching up".into());
        }
        if told.elapsed() >= Duration::from_secs(5) {
            told = Instant::now();
            info!(
                "cluster: caught up to record {} of {last}",
                *applied.borrow()
            );
        }
    }
    // Handed to the writer is not yet committed: a round trip through it is.
    if writer.health().await != Health::Ok {
        return Err("the database did not commit the stream's records".into());
    }
    info!(
        "cluster: caught up to record {last} in {:?}",
        caught_up.elapsed()
    );
    tokio::spawn(heartbeats(
        client.clone(),
        epoch.clone(),
        cluster.node.clone(),
    ));
    tokio::spawn(listen(client.clone(), liveness.clone()));
    tokio::spawn(declare_the_dead(
        client.clone(),
        js.clone(),
        liveness,
        connections_seen,
    ));
    let (ops, rx) = mpsc::channel(QUEUE);
    let stored = writer.stored.clone();
    let router = Router {
        js,
        client,
        writer,
        pending,
        applied,
        orphans: Default::default(),
        epoch,
        next: 0,
    };
    tokio::spawn(router.run(rx));
    Ok(Log {
        ops,
        runner: None,
        stored,
    })
}

/// How long a starting node waits for NATS and its JetStream to be ready (servers starting
/// beside it, a JetStream cluster electing its leader).
const START_WAIT: Duration = Duration::from_secs(30);

/// The cluster's stream, made if it does not exist yet; retried while JetStream is not ready
/// (a new JetStream cluster answers "temporarily unavailable" until it has a leader).
async fn the_stream(js: &jetstream::Context, replicas: usize) -> Result<stream::Stream, String> {
    let started = Instant::now();
    loop {
        let made = js
            .get_or_create_stream(stream::Config {
                name: STREAM.to_string(),
                subjects: vec![SUBJECT.to_string()],
                storage: stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await;
        match made {
            Ok(s) => return Ok(s),
            Err(e) if started.elapsed() < START_WAIT => {
                debug!("cluster: the stream is not ready yet: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(format!("the cluster's stream {STREAM}: {e}")),
        }
    }
}

/// The stream position the database has applied: 0 for an empty database. A database with
/// accounts or messages and no position was written by a single node: refused, because its
/// ids would clash with the stream's.
fn position_of(db: &WriterDb) -> Result<u64, String> {
    let conn = &db.conn;
    let sql = |e: rusqlite::Error| format!("reading the stream position: {e}");
    let position: Option<i64> = conn
        .query_row(
            "SELECT seq FROM log_position WHERE stream = ?1",
            [STREAM],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    if let Some(p) = position {
        return Ok(p.max(0) as u64);
    }
    let rows: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM messages)",
            [],
            |r| r.get(0),
        )
        .map_err(sql)?;
    if rows > 0 {
        return Err(format!(
            "{} holds accounts or messages of a single node, not of the cluster's stream: a \
             cluster node starts on an empty database (or its own from an earlier run)",
            db.path.display()
        ));
    }
    Ok(0)
}

/// A seat of the cluster's presence, as the database has it.
struct Seat {
    session: crate::SessionId,
    user: crate::User,
    room: Arc<str>,
}

/// The seats stored as of the database's stream position.
fn seats_of(db: &WriterDb) -> Result<Vec<Seat>, String> {
    let sql = |e: rusqlite::Error| format!("reading the stored seats: {e}");
    let mut stmt = db
        .conn
        .prepare(
            "SELECT s.session, u.id, u.name, r.name FROM seats s JOIN users u ON u.id = s.user_id \
             JOIN rooms r ON r.id = s.room_id ORDER BY s.session",
        )
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Seat {
                session: r.get::<_, i64>(0)? as u64,
                user: crate::User {
                    id: r.get(1)?,
                    name: Arc::from(r.get::<_, String>(2)?),
                },
                room: Arc::from(r.get::<_, String>(3)?),
            })
        })
        .map_err(sql)?;
    rows.collect::<Result<_, _>>().map_err(sql)
}

/// Connects to NATS, retrying for ever once connected (a lost server is reconnected to);
/// `connections` counts each (re)connection.
async fn connect(
    cluster: &ClusterConfig,
    connections: watch::Sender<u64>,
) -> Result<async_nats::Client, String> {
    let connections = Arc::new(connections);
    let mut addrs = Vec::new();
    for s in &cluster.servers {
        addrs.push(
            s.parse::<async_nats::ServerAddr>()
                .map_err(|e| format!("--cluster {s}: {e}"))?,
        );
    }
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("linechatd {}", cluster.node))
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .reconnect_delay_callback(|attempt| Duration::from_millis(100 * attempt.min(10) as u64))
        .event_callback(move |event| {
            let connections = connections.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        info!("cluster: connected to NATS");
                        crate::meters::nats_connected(true);
                        connections.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::Disconnected => {
                        warn!("cluster: NATS connection lost");
                        crate::meters::nats_connected(false);
                    }
                    other => debug!("cluster: {other}"),
                }
            }
        });
    options = match &cluster.credentials {
        Credentials::None => options,
        Credentials::UserPassword(user, password) => {
            options.user_and_password(user.clone(), password.clone())
        }
        Credentials::Token(token) => options.token(token.clone()),
    };
    // NATS may be starting beside this node: retried for a while, except a refusal of the
    // credentials, which waiting does not mend.
    let started = Instant::now();
    loop {
        match options.clone().connect(addrs.clone()).await {
            Ok(client) => {
                crate::meters::nats_connected(true);
                return Ok(client);
            }
            Err(e)
                if started.elapsed() < START_WAIT
                    && e.kind() != async_nats::ConnectErrorKind::AuthorizationViolation =>
            {
                debug!("cluster: NATS not reachable yet: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                return Err(format!(
                    "connecting to NATS at {}: {e}",
                    cluster.servers.join(",")
                ));
            }
        }
    }
}

/// Locks `m`.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding it leaves plain data behind: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

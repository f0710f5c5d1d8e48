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

mod nodes;
mod record;

use super::local::{self, WriterOptions};
use super::{Failure, Health, Log, Op, STREAM, Sink};
use crate::config::{ClusterConfig, Credentials};
use crate::store::WriterDb;
use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use log::{debug, error, info, warn};
use nodes::Liveness;
use record::{Kind, Record, epoch_of_msg_id, msg_id};
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
    let position = position_of(&db)?;
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
    let seats = seats_of(&db)?;
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
    Ok(Log { ops, runner: None })
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
                        connections.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::Disconnected => warn!("cluster: NATS connection lost"),
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
            Ok(client) => return Ok(client),
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

/// Publishes every writing request and answers the ones the cluster would not take.
struct Router {
    js: jetstream::Context,
    client: async_nats::Client,
    writer: Log,
    pending: Pending,
    /// The last record the consumer handed to the writer.
    applied: watch::Receiver<u64>,
    /// Leaves and departures given up on and answered here, still being published so that
    /// the other nodes free their seats.
    orphans: std::collections::HashSet<String>,
    epoch: crate::Incarnation,
    next: u64,
}

/// One publish attempt's outcome: (message id, body, attempt, `Err(timed out)` if it failed).
type Attempt = (String, Bytes, u32, Result<(), bool>);

/// Publishes awaiting their acknowledgement.
type Flights = FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = Attempt> + Send>>>;

impl Router {
    async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut in_flight = Flights::new();
        loop {
            tokio::select! {
                op = rx.recv() => match op {
                    Some(Op::Stop { done }) => {
                        self.stop(in_flight, done).await;
                        return;
                    }
                    Some(op) => self.take(op, &mut in_flight).await,
                    None => return,
                },
                Some(attempt) = in_flight.next(), if !in_flight.is_empty() => {
                    self.acknowledged(attempt, &mut in_flight).await;
                }
            }
        }
    }

    async fn take(&mut self, op: Op, in_flight: &mut Flights) {
        if let Op::Sync { reply } = op {
            tokio::spawn(sync(
                self.client.clone(),
                self.js.clone(),
                self.applied.clone(),
                self.writer.clone(),
                reply,
            ));
            return;
        }
        if let Op::Health { reply } = op {
            tokio::spawn(health(
                self.client.clone(),
                self.js.clone(),
                self.writer.clone(),
                reply,
            ));
            return;
        }
        let Some(record) = Record::of(&op, crate::protocol::sanction::Until::now_stored()) else {
            return;
        };
        self.next += 1;
        let id = msg_id(self.epoch.get(), self.next);
        let body = record.encode();
        lock(&self.pending).insert(id.clone(), op);
        let flight = publish(&self.js, id, body, 1).await;
        in_flight.push(flight);
    }

    /// A publish answered: done, tried again, or given up on (the request is refused, in log
    /// order, unless the consumer has applied it meanwhile).
    async fn acknowledged(
        &mut self,
        (id, body, attempt, result): Attempt,
        in_flight: &mut Flights,
    ) {
        if self.orphans.contains(&id) {
            match (attempt, result) {
                // The wait is over: publish again.
                (0, _) => {
                    let flight = publish(&self.js, id, body, ATTEMPTS + 1).await;
                    in_flight.push(flight);
                }
                (_, Ok(())) => {
                    self.orphans.remove(&id);
                }
                (_, Err(_)) => in_flight.push(later(id, body)),
            }
            return;
        }
        let Err(timed_out) = result else {
            return;
        };
        if !lock(&self.pending).contains_key(&id) {
            return; // it was stored after all: the consumer applied it
        }
        if attempt < ATTEMPTS {
            let flight = publish(&self.js, id, body, attempt + 1).await;
            in_flight.push(flight);
            return;
        }
        let Some(op) = lock(&self.pending).remove(&id) else {
            return;
        };
        warn!("cluster: request {id} not acknowledged after {ATTEMPTS} attempts");
        if matches!(op, Op::Leave { .. } | Op::Depart { .. }) {
            // Answered here as if done (the session is leaving either way), but the other
            // nodes must still free its seat: published again every ACK_TIMEOUT until the
            // stream takes it (at most once, by its id).
            self.orphans.insert(id.clone());
            in_flight.push(later(id, body));
        }
        let reason = if timed_out {
            Failure::Unknown
        } else {
            Failure::Storage
        };
        let _ = self
            .writer
            .queue(Op::Refused {
                op: Box::new(op),
                reason,
            })
            .await;
    }

    /// Waits (a bounded time) for what is in flight, declares this incarnation gone, and
    /// stops the writer.
    async fn stop(mut self, mut in_flight: Flights, done: oneshot::Sender<()>) {
        let settle = async {
            while let Some(attempt) = in_flight.next().await {
                self.acknowledged(attempt, &mut in_flight).await;
            }
            while !lock(&self.pending).is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        if tokio::time::timeout(ATTEMPTS * ACK_TIMEOUT, settle)
            .await
            .is_err()
        {
            warn!("cluster: stopping with requests not yet applied");
        }
        let gone = Record {
            at: crate::protocol::sanction::Until::now_stored(),
            kind: Kind::NodeGone {
                epoch: self.epoch.get(),
            },
        };
        if let Err(e) = publish_once(&self.js, &gone_id(self.epoch.get()), gone.encode()).await {
            warn!("cluster: could not say this node is leaving: {e}");
        }
        self.writer.stop().await;
        let _ = done.send(());
    }
}

/// The message id of incarnation `epoch`'s end: the same from whoever publishes it.
fn gone_id(epoch: u32) -> String {
    format!("gone-{epoch:08x}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding it leaves plain data behind: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A wait of [`ACK_TIMEOUT`] before an orphan's next publish (attempt 0: publish now).
fn later(id: String, body: Bytes) -> std::pin::Pin<Box<dyn Future<Output = Attempt> + Send>> {
    Box::pin(async move {
        tokio::time::sleep(ACK_TIMEOUT).await;
        (id, body, 0, Err(false))
    })
}

/// Sends one publish attempt, here and now (so one session's requests reach the stream in
/// the order it made them), and returns the wait for its acknowledgement.
async fn publish(
    js: &jetstream::Context,
    id: String,
    body: Bytes,
    attempt: u32,
) -> std::pin::Pin<Box<dyn Future<Output = Attempt> + Send>> {
    let sent = js
        .send_publish(
            SUBJECT,
            PublishMessage::build()
                .payload(body.clone())
                .message_id(&id),
        )
        .await;
    Box::pin(async move {
        let result = match sent {
            Ok(ack) => ack.await.map(|_| ()),
            Err(e) => Err(e),
        };
        let result = result.map_err(|e| {
            debug!("cluster: publish {id} attempt {attempt}: {e}");
            e.kind() == jetstream::context::PublishErrorKind::TimedOut
        });
        (id, body, attempt, result)
    })
}

async fn publish_once(
    js: &jetstream::Context,
    id: &str,
    body: Bytes,
) -> Result<(), jetstream::context::PublishError> {
    let ack = js
        .send_publish(
            SUBJECT,
            PublishMessage::build().payload(body).message_id(id),
        )
        .await?;
    ack.await.map(|_| ())
}

/// Answers once every record the stream holds now is committed here; after a bounded wait
/// if NATS is away (then the node's reads are as fresh as it could make them).
async fn sync(
    client: async_nats::Client,
    js: jetstream::Context,
    mut applied: watch::Receiver<u64>,
    writer: Log,
    reply: oneshot::Sender<()>,
) {
    if client.connection_state() == async_nats::connection::State::Connected {
        let caught_up = async {
            let last = js
                .get_stream(STREAM)
                .await
                .ok()?
                .cached_info()
                .state
                .last_sequence;
            applied.wait_for(|&a| a >= last).await.ok()?;
            writer.health().await;
            Some(())
        };
        if tokio::time::timeout(ACK_TIMEOUT, caught_up).await.is_err() {
            debug!("cluster: sync timed out");
        }
    }
    let _ = reply.send(());
}

/// `#health` in a cluster: connected to NATS, the stream answering, and the local writer
/// committing.
async fn health(
    client: async_nats::Client,
    js: jetstream::Context,
    writer: Log,
    reply: oneshot::Sender<Health>,
) {
    let ok = client.connection_state() == async_nats::connection::State::Connected
        && tokio::time::timeout(ACK_TIMEOUT, js.get_stream(STREAM))
            .await
            .is_ok_and(|r| r.is_ok());
    let _ = reply.send(if ok {
        writer.health().await
    } else {
        Health::Unreachable
    });
}

/// Applies the stream, in order, through the local writer.
struct Consumer {
    writer: Log,
    epoch: crate::Incarnation,
    pending: Pending,
    liveness: Arc<Mutex<Liveness>>,
    applied: watch::Sender<u64>,
}

impl Consumer {
    async fn run(self, stream: stream::Stream, position: u64, mut connected: watch::Receiver<u64>) {
        let mut last = position;
        loop {
            // From the record after the last one applied: a new consumer never skips or
            // repeats one.
            let deliver_policy = if last == 0 {
                consumer::DeliverPolicy::All
            } else {
                consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: last + 1,
                }
            };
            let config = consumer::pull::OrderedConfig {
                filter_subject: SUBJECT.to_string(),
                deliver_policy,
                ..Default::default()
            };
            let messages = match stream.create_consumer(config).await {
                Ok(c) => c.messages().await,
                Err(e) => {
                    warn!("cluster: creating the stream's consumer: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    warn!("cluster: reading the stream: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            connected.borrow_and_update();
            // The ordered consumer recreates itself after a gap, but notices a lost server
            // only after two missed 15-second heartbeats: after a reconnection this node
            // starts a new one at once, and so it does when the stream holds records it has
            // not received for STALL (its consumer was on a JetStream server that died).
            let mut quiet_since = Instant::now();
            let mut check = tokio::time::interval(STALL);
            loop {
                let message = tokio::select! {
                    m = messages.next() => m,
                    _ = connected.changed() => {
                        info!("cluster: reconnected; reading the stream again after record {last}");
                        break;
                    }
                    _ = check.tick() => {
                        if quiet_since.elapsed() >= STALL && self.behind(&stream, last).await {
                            warn!("cluster: the stream's consumer stalled; reading again after record {last}");
                            break;
                        }
                        continue;
                    }
                };
                quiet_since = Instant::now();
                let Some(message) = message else {
                    warn!("cluster: the stream's consumer ended; starting another after {last}");
                    break;
                };
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        debug!("cluster: stream consumer: {e}");
                        continue;
                    }
                };
                let Ok(info) = message.info() else {
                    continue;
                };
                let seq = info.stream_sequence;
                if seq <= last {
                    continue; // redelivered after a reset: applied already
                }
                let id = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default();
                if !self.apply(seq, &id, &message.payload).await {
                    return;
                }
                last = seq;
                self.applied.send_replace(seq);
            }
        }
    }

    /// Whether the stream holds records after `last` (asked with a bounded wait).
    async fn behind(&self, stream: &stream::Stream, last: u64) -> bool {
        match tokio::time::timeout(STALL, stream.get_info()).await {
            Ok(Ok(info)) => info.state.last_sequence > last,
            _ => false,
        }
    }

    /// Hands record `seq` to the writer: the request this node published, if it is one of
    /// ours still waiting, or the request rebuilt from the record. False once the writer is
    /// gone.
    async fn apply(&self, seq: u64, id: &str, body: &[u8]) -> bool {
        let record = match Record::decode(body) {
            Ok(r) => r,
            Err(e) => {
                error!("cluster: record {seq} is not a linechat record, skipped: {e}");
                return true;
            }
        };
        if let Some(epoch) = epoch_of_msg_id(id) {
            lock(&self.liveness).saw(epoch, Instant::now());
        }
        if let Kind::NodeGone { epoch } = record.kind {
            lock(&self.liveness).gone(epoch);
            if epoch == self.epoch.get() {
                // The others lost sight of this node for too long and freed its seats: its
                // sessions are ended (the actor does it when it applies this record) and it
                // goes on as a new incarnation, which the others will hear from and can
                // declare gone in its turn.
                let new = self.epoch.renew();
                lock(&self.liveness).renew(new);
                warn!(
                    "cluster: this node ({epoch:08x}) was declared gone; its sessions are ended, it goes on as {new:08x}"
                );
            }
        }
        let at = record.at.clone();
        let mine = lock(&self.pending).remove(id);
        let remote = mine.is_none();
        let op = match mine.or_else(|| record.into_op()) {
            Some(op) => op,
            None => {
                error!("cluster: record {seq} names what this daemon does not know, skipped");
                return true;
            }
        };
        self.writer
            .queue(Op::Applied {
                seq: seq as i64,
                at,
                op: Box::new(op),
                remote,
            })
            .await
            .is_ok()
    }
}

/// Says every [`HEARTBEAT`] that this incarnation is alive.
async fn heartbeats(client: async_nats::Client, epoch: crate::Incarnation, node: String) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let beat = Bytes::from(format!("{:08x} {node}", epoch.get()));
        if let Err(e) = client.publish(HEARTBEATS, beat).await {
            debug!("cluster: heartbeat: {e}");
        }
    }
}

/// Hears the other nodes' heartbeats.
async fn listen(client: async_nats::Client, liveness: Arc<Mutex<Liveness>>) {
    let mut beats = match client.subscribe(HEARTBEATS).await {
        Ok(s) => s,
        Err(e) => {
            error!("cluster: cannot hear other nodes ({e}): dead nodes' users stay seated");
            return;
        }
    };
    while let Some(beat) = beats.next().await {
        let text = String::from_utf8_lossy(&beat.payload);
        if let Some(epoch) = text
            .split(' ')
            .next()
            .and_then(|e| u32::from_str_radix(e, 16).ok())
        {
            lock(&liveness).heard(epoch, Instant::now());
        }
    }
}

/// Declares gone every incarnation silent for [`DEAD_AFTER`] while this node is connected:
/// after its own outage (a reconnection) every other node gets a full grace first, so a NATS
/// blip does not end every node's sessions.
async fn declare_the_dead(
    client: async_nats::Client,
    js: jetstream::Context,
    liveness: Arc<Mutex<Liveness>>,
    mut connections: watch::Receiver<u64>,
) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        if client.connection_state() != async_nats::connection::State::Connected {
            continue;
        }
        if connections.has_changed().unwrap_or(false) {
            connections.borrow_and_update();
            lock(&liveness).reset(Instant::now());
            continue;
        }
        let due = lock(&liveness).overdue(Instant::now());
        for epoch in due {
            info!("cluster: node incarnation {epoch:08x} is silent; declaring it gone");
            let gone = Record {
                at: crate::protocol::sanction::Until::now_stored(),
                kind: Kind::NodeGone { epoch },
            };
            if let Err(e) = publish_once(&js, &gone_id(epoch), gone.encode()).await {
                warn!("cluster: declaring {epoch:08x} gone: {e}");
            }
        }
    }
}

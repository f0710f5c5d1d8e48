//! The daemon's metrics: every name, its help and its buckets in one place, and the calls the
//! parts record with.
//!
//! Recording goes through the `metrics` facade. With no recorder installed (no
//! `--metrics-listen`), every call here is a no-op, and the few that would read the clock do
//! not ([`on`]). `server::metrics` installs Prometheus's recorder before anything starts and
//! serves it. The gauges that `#stats` also reports are not recorded here: they are read from
//! the same source as `#stats` at each scrape (`Shared::stats`).
//!
//! No label ever holds a user name, room name or text: labels take only the fixed values
//! named below (cardinality and privacy).

use bytes::{Bytes, BytesMut};
use metrics::{Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Seconds since the daemon started (gauge).
pub const UPTIME: &str = "linechat_uptime_seconds";
/// Open connections, guests included, by `listener` (`plain`, `tls`) (gauge).
pub const CONNECTIONS: &str = "linechat_connections";
/// Logged-in sessions (gauge).
pub const SESSIONS: &str = "linechat_sessions";
/// Distinct users logged in (gauge).
pub const USERS_ONLINE: &str = "linechat_users_online";
/// Rooms with users in them (gauge).
pub const ROOMS_ACTIVE: &str = "linechat_rooms_active";
/// Messages stored in this node's database, ever, private ones included (counter).
pub const MESSAGES_STORED: &str = "linechat_messages_stored_total";
/// Lines delivered to sessions, ever (counter).
pub const DELIVERIES: &str = "linechat_deliveries_total";
/// Lines delivered per second over the last minute (gauge; `#stats`'s `delivered/s`).
pub const DELIVERIES_PER_SECOND: &str = "linechat_deliveries_per_second";
/// The longest outbound queue of any session, in items (gauge).
pub const SENDQ_MAX: &str = "linechat_sendq_max_items";
/// Operations waiting for the log's writer (gauge).
pub const WRITER_QUEUE: &str = "linechat_writer_queue_operations";
/// Commands waiting for the room actor (gauge).
pub const ACTOR_QUEUE: &str = "linechat_actor_queue_commands";
/// Operations per committed transaction (histogram).
pub const COMMIT_BATCH: &str = "linechat_commit_batch_operations";
/// Time to run and commit one transaction (histogram).
pub const COMMIT_SECONDS: &str = "linechat_commit_duration_seconds";
/// From a chat line's read to its write to the last member's connection (histogram).
pub const DELIVERY_SECONDS: &str = "linechat_delivery_latency_seconds";
/// Connections closed for not reading their deliveries (counter).
pub const SLOW_READER_DROPS: &str = "linechat_slow_reader_drops_total";
/// Connections refused at accept, by `reason` (`busy`, `banned`) (counter).
pub const REFUSED: &str = "linechat_connections_refused_total";
/// Requests refused with `ERR ratelimit` (counter).
pub const RATE_LIMITED: &str = "linechat_rate_limited_total";
/// Connections closed for flooding (counter).
pub const FLOOD_CLOSES: &str = "linechat_flood_closes_total";
/// `#login` attempts by `result` (`ok`, `failed`, `throttled`) (counter).
pub const LOGINS: &str = "linechat_logins_total";
/// `#register` attempts by `result` (`ok`, `failed`, `throttled`) (counter).
pub const REGISTRATIONS: &str = "linechat_registrations_total";
/// Time a bcrypt hash or check waited for a worker (histogram).
pub const BCRYPT_WAIT: &str = "linechat_bcrypt_wait_seconds";
/// Moderation actions taken, by `action` (counter).
pub const MODERATION: &str = "linechat_moderation_actions_total";
/// Storage operations that failed: transactions rolled back, reads refused (counter).
pub const STORAGE_ERRORS: &str = "linechat_storage_errors_total";
/// Cluster: from a publish to the stream's acknowledgement (histogram).
pub const PUBLISH_ACK: &str = "linechat_cluster_publish_ack_seconds";
/// Cluster: records in the stream this node has not applied yet (gauge).
pub const CONSUMER_LAG: &str = "linechat_cluster_consumer_lag_records";
/// Cluster: 1 while connected to NATS, 0 otherwise (gauge).
pub const NATS_CONNECTED: &str = "linechat_cluster_nats_connected";

/// Every moderation `action` label value.
pub const MODERATION_ACTIONS: &[&str] = &["kick", "ban", "unban", "mute", "unmute", "delete"];

/// Bucket bounds of the latency histograms, in seconds: 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Bucket bounds of [`COMMIT_BATCH`]: powers of two up to the writer's batch bound.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// Bucket bounds of [`BCRYPT_WAIT`], in seconds (a storm queues for seconds).
pub const BCRYPT_BUCKETS: &[f64] = &[0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The histograms recorded once per commit or per delivered batch: looked up once, not at
/// every record (a lookup hashes the name).
struct Hot {
    delivery: Histogram,
    commit_batch: Histogram,
    commit_seconds: Histogram,
}

static HOT: OnceLock<Hot> = OnceLock::new();

/// Takes the handles of the hot histograms from the installed recorder and turns [`on`]
/// timing; called once, right after installing it.
pub fn enable() {
    let _ = HOT.set(Hot {
        delivery: metrics::histogram!(DELIVERY_SECONDS),
        commit_batch: metrics::histogram!(COMMIT_BATCH),
        commit_seconds: metrics::histogram!(COMMIT_SECONDS),
    });
}

/// Whether metrics are being recorded: off, nothing reads the clock for them.
pub fn on() -> bool {
    HOT.get().is_some()
}

/// Now, if metrics are on: the start of something to be timed.
pub fn start() -> Option<Instant> {
    on().then(Instant::now)
}

/// Lines read at `read` were written to their last recipient now.
pub fn delivered(read: &[Instant]) {
    if let Some(h) = HOT.get() {
        let now = Instant::now();
        for r in read {
            h.delivery.record(now.saturating_duration_since(*r));
        }
    }
}

/// `buf` as the bytes of one delivery; with lines read at `read` in it, they record those
/// lines' delivery latency once the last copy is gone: written to the last member's
/// connection, or dropped with a closed one.
pub fn timed(buf: BytesMut, read: Vec<Instant>) -> Bytes {
    if read.is_empty() {
        return buf.freeze();
    }
    Bytes::from_owner(Timed { buf, read })
}

/// A delivery's bytes that time it when the last copy is dropped (see [`timed`]).
struct Timed {
    buf: BytesMut,
    read: Vec<Instant>,
}

impl AsRef<[u8]> for Timed {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Timed {
    fn drop(&mut self) {
        delivered(&self.read);
    }
}

/// A transaction of `ops` operations committed (or rolled back) in `took`.
pub fn committed(ops: usize, took: Duration) {
    if let Some(h) = HOT.get() {
        h.commit_batch.record(ops as f64);
        h.commit_seconds.record(took);
    }
}

/// A storage operation failed.
pub fn storage_error() {
    counter!(STORAGE_ERRORS).increment(1);
}

/// A connection was refused at accept; `banned` or else busy (a limit was full).
pub fn refused(banned: bool) {
    let reason = if banned { "banned" } else { "busy" };
    counter!(REFUSED, "reason" => reason).increment(1);
}

/// A connection was closed for not reading.
pub fn slow_reader() {
    counter!(SLOW_READER_DROPS).increment(1);
}

/// A request was refused for the rate limit.
pub fn rate_limited() {
    counter!(RATE_LIMITED).increment(1);
}

/// A connection was closed for flooding.
pub fn flood_close() {
    counter!(FLOOD_CLOSES).increment(1);
}

/// How an account attempt ended, as its label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// Wrong password, taken name, bad input, storage failure.
    Failed,
    /// Refused before trying, for a rate limit.
    Throttled,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Throttled => "throttled",
        }
    }
}

/// A `#login` ended so.
pub fn login(outcome: Outcome) {
    counter!(LOGINS, "result" => outcome.label()).increment(1);
}

/// A `#register` ended so.
pub fn registration(outcome: Outcome) {
    counter!(REGISTRATIONS, "result" => outcome.label()).increment(1);
}

/// A bcrypt call waited `wait` for its worker.
pub fn bcrypt_waited(wait: Duration) {
    metrics::histogram!(BCRYPT_WAIT).record(wait);
}

/// A moderation action was taken; `action` is one of [`MODERATION_ACTIONS`] (the verb's name,
/// a constant in the code, never the client's text).
pub fn moderated(action: &'static str) {
    counter!(MODERATION, "action" => action).increment(1);
}

/// The stream acknowledged a publish `took` after it was sent.
pub fn publish_acked(took: Duration) {
    metrics::histogram!(PUBLISH_ACK).record(took);
}

/// The stream holds `records` this node has not applied yet.
pub fn consumer_lag(records: u64) {
    metrics::gauge!(CONSUMER_LAG).set(records as f64);
}

/// The NATS connection is up, or not.
pub fn nats_connected(up: bool) {
    metrics::gauge!(NATS_CONNECTED).set(if up { 1.0 } else { 0.0 });
}

/// Every metric's help and unit, once, on the installed recorder; and the labelled counters
/// at zero, so a rate over them is defined before the first event.
pub fn describe() {
    describe_gauge!(UPTIME, Unit::Seconds, "Time since the daemon started");
    describe_gauge!(
        CONNECTIONS,
        "Open connections, guests included, by listener"
    );
    describe_gauge!(SESSIONS, "Logged-in sessions");
    describe_gauge!(USERS_ONLINE, "Distinct users logged in");
    describe_gauge!(ROOMS_ACTIVE, "Rooms with users in them");
    describe_counter!(
        MESSAGES_STORED,
        "Messages stored in this node's database, private ones included"
    );
    describe_counter!(DELIVERIES, "Lines delivered to sessions");
    describe_gauge!(
        DELIVERIES_PER_SECOND,
        "Lines delivered to sessions per second, averaged over the last minute"
    );
    describe_gauge!(
        SENDQ_MAX,
        "The longest outbound queue of any session, in items"
    );
    describe_gauge!(WRITER_QUEUE, "Operations waiting for the log's writer");
    describe_gauge!(ACTOR_QUEUE, "Commands waiting for the room actor");
    describe_histogram!(COMMIT_BATCH, "Operations per committed transaction");
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Time to run and commit one transaction"
    );
    describe_histogram!(
        DELIVERY_SECONDS,
        Unit::Seconds,
        "From a chat line's read to its write to the last member's connection"
    );
    describe_counter!(
        SLOW_READER_DROPS,
        "Connections closed for not reading their deliveries"
    );
    describe_counter!(REFUSED, "Connections refused at accept, by reason");
    describe_counter!(RATE_LIMITED, "Requests refused with ERR ratelimit");
    describe_counter!(FLOOD_CLOSES, "Connections closed for flooding");
    describe_counter!(LOGINS, "Login attempts by result");
    describe_counter!(REGISTRATIONS, "Registration attempts by result");
    describe_histogram!(
        BCRYPT_WAIT,
        Unit::Seconds,
        "Time a bcrypt hash or check waited for a worker"
    );
    describe_counter!(MODERATION, "Moderation actions taken, by action");
    describe_counter!(
        STORAGE_ERRORS,
        "Storage operations that failed: transactions rolled back, reads refused"
    );
    describe_histogram!(
        PUBLISH_ACK,
        Unit::Seconds,
        "Cluster: from a publish to the stream's acknowledgement"
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Cluster: records in the stream this node has not applied yet"
    );
    describe_gauge!(
        NATS_CONNECTED,
        "Cluster: 1 while connected to NATS, 0 otherwise"
    );
    for reason in ["busy", "banned"] {
        counter!(REFUSED, "reason" => reason).absolute(0);
    }
    for outcome in [Outcome::Ok, Outcome::Failed, Outcome::Throttled] {
        counter!(LOGINS, "result" => outcome.label()).absolute(0);
        counter!(REGISTRATIONS, "result" => outcome.label()).absolute(0);
    }
    for action in MODERATION_ACTIONS {
        counter!(MODERATION, "action" => *action).absolute(0);
    }
    for name in [
        SLOW_READER_DROPS,
        RATE_LIMITED,
        FLOOD_CLOSES,
        STORAGE_ERRORS,
    ] {
        counter!(name).absolute(0);
    }
}

//! The publishing side of the cluster log: every writing request to the stream, many in
//! flight, answered from the stream or refused after its attempts.

use super::super::{Failure, Health, Log, Op, STREAM};
use super::record::{Kind, Record, gone_id, msg_id};
use super::{ACK_TIMEOUT, ATTEMPTS, Pending, SUBJECT, lock};
use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use log::{debug, warn};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Publishes every writing request and answers the ones the cluster would not take.
pub(super) struct Router {
    pub(super) js: jetstream::Context,
    pub(super) client: async_nats::Client,
    pub(super) writer: Log,
    pub(super) pending: Pending,
    /// The last record the consumer handed to the writer.
    pub(super) applied: watch::Receiver<u64>,
    /// Leaves and departures given up on and answered here, still being published so that
    /// the other nodes free their seats.
    pub(super) orphans: std::collections::HashSet<String>,
    pub(super) epoch: crate::Incarnation,
    pub(super) next: u64,
}

/// One publish attempt's outcome: (message id, body, attempt, `Err(timed out)` if it failed).
type Attempt = (String, Bytes, u32, Result<(), bool>);

/// Publishes awaiting their acknowledgement.
type Flights = FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = Attempt> + Send>>>;

impl Router {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
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
    let sent_at = crate::meters::start();
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
        if let (Ok(()), Some(at)) = (&result, sent_at) {
            crate::meters::publish_acked(at.elapsed());
        }
        let result = result.map_err(|e| {
            debug!("cluster: publish {id} attempt {attempt}: {e}");
            e.kind() == jetstream::context::PublishErrorKind::TimedOut
        });
        (id, body, attempt, result)
    })
}

pub(super) async fn publish_once(
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
pub(super) async fn sync(
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
pub(super) async fn health(
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

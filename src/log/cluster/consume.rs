//! The applying side of the cluster log: the stream, in order, into the local writer.

use super::super::{Log, Op};
use super::nodes::Liveness;
use super::record::{Kind, Record, epoch_of_msg_id};
use super::{Pending, STALL, SUBJECT, lock};
use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;
use log::{debug, error, info, warn};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Applies the stream, in order, through the local writer.
pub(super) struct Consumer {
    pub(super) writer: Log,
    pub(super) epoch: crate::Incarnation,
    pub(super) pending: Pending,
    pub(super) liveness: Arc<Mutex<Liveness>>,
    pub(super) applied: watch::Sender<u64>,
}

impl Consumer {
    pub(super) async fn run(
        self,
        stream: stream::Stream,
        position: u64,
        mut connected: watch::Receiver<u64>,
    ) {
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
                crate::meters::consumer_lag(info.pending);
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

//! The nodes' heartbeats on core NATS, and declaring gone the incarnations that fell silent.

use super::nodes::Liveness;
use super::publish::publish_once;
use super::record::{Kind, Record, gone_id};
use super::{HEARTBEAT, HEARTBEATS, lock};
use async_nats::jetstream;
use bytes::Bytes;
use futures_util::StreamExt;
use log::{debug, error, info, warn};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::watch;

/// Says every [`HEARTBEAT`] that this incarnation is alive.
pub(super) async fn heartbeats(
    client: async_nats::Client,
    epoch: crate::Incarnation,
    node: String,
) {
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
pub(super) async fn listen(client: async_nats::Client, liveness: Arc<Mutex<Liveness>>) {
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
pub(super) async fn declare_the_dead(
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

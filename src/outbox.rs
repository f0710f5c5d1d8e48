//! A session's bounded outbound queue ([`Outbox`]) and the writer task that drains it to the
//! socket in batches, one write per batch.
//!
//! The queue is bounded twice: in lines (the channel's capacity) and in bytes (a shared counter).
//! The room actor only ever uses [`Outbox::try_push`]; when that fails the client is not reading
//! and the actor drops it, so one slow client never stalls a room.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most bytes gathered into one socket write.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// The sending side of a session's outbound queue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<Bytes>,
    /// Bytes queued and not yet taken by the writer, shared with it.
    queued: Arc<AtomicUsize>,
    max_bytes: usize,
    /// Cancelled to close the connection at once, without flushing (slow reader, write error).
    kill: CancellationToken,
}

/// The receiving side, owned by the writer task.
#[derive(Debug)]
pub struct OutboxReceiver {
    rx: mpsc::Receiver<Bytes>,
    queued: Arc<AtomicUsize>,
    kill: CancellationToken,
}

/// A queue bounded to `max_lines` items and (roughly) `max_bytes` bytes.
pub fn channel(max_lines: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::channel(max_lines);
    let queued = Arc::new(AtomicUsize::new(0));
    let kill = CancellationToken::new();
    (
        Outbox {
            tx,
            queued: queued.clone(),
            max_bytes,
            kill: kill.clone(),
        },
        OutboxReceiver { rx, queued, kill },
    )
}

impl Outbox {
    /// Queues `item` without waiting. Returns false when the queue is full (in lines or bytes)
    /// or closed; the caller then drops the session. An item larger than the byte bound is
    /// accepted into an empty queue, so a long reply still gets through to a reading client.
    pub fn try_push(&self, item: Bytes) -> bool {
        let len = item.len();
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before != 0 && before + len > self.max_bytes {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(_) => {
                self.queued.fetch_sub(len, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queues `item`, waiting for room in lines (not bytes). Used by the session for its own
    /// replies: waiting there only slows the client that is not reading. False if closed.
    pub async fn push(&self, item: Bytes) -> bool {
        let len = item.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        if self.tx.send(item).await.is_ok() {
            true
        } else {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            false
        }
    }

    /// Items queued and not yet taken by the writer.
    pub fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the connection without flushing what is queued.
    pub fn kill(&self) {
        self.kill.cancel();
    }

    /// A handle that kills the connection, without keeping the queue open.
    pub fn killer(&self) -> CancellationToken {
        self.kill.clone()
    }

    /// Resolves when the connection has been killed.
    pub fn killed(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.kill.cancelled()
    }
}

/// Drains the queue into `w` until every [`Outbox`] is dropped (then flushes and shuts the
/// write side down) or the connection is killed (then stops at once). A write error kills the
/// connection so the session's reader stops too.
pub async fn write_loop<W: AsyncWrite + Unpin>(mut rx: OutboxReceiver, mut w: W) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            _ = rx.kill.cancelled() => return,
            item = rx.rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
        };
        rx.queued.fetch_sub(first.len(), Ordering::Relaxed);
        buf.extend_from_slice(&first);
        while buf.len() < WRITE_BATCH_BYTES {
            match rx.rx.try_recv() {
                Ok(item) => {
                    rx.queued.fetch_sub(item.len(), Ordering::Relaxed);
                    buf.extend_from_slice(&item);
                }
                Err(_) => break,
            }
        }
        let written = tokio::select! {
            biased;
            _ = rx.kill.cancelled() => return,
            r = w.write_all(&buf) => r,
        };
        if written.is_err() {
            rx.kill.cancel();
            return;
        }
        buf.clear();
        if buf.capacity() > WRITE_BATCH_BYTES * 2 {
            buf = Vec::new();
        }
    }
    tokio::select! {
        _ = rx.kill.cancelled() => {}
        _ = w.shutdown() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_lines_and_bytes() {
        let (o, _rx) = channel(3, 10);
        assert!(o.try_push(Bytes::from_static(b"0123456789abc"))); // empty queue: accepted
        assert!(!o.try_push(Bytes::from_static(b"x"))); // over bytes
        let (o, _rx) = channel(2, 100);
        assert!(o.try_push(Bytes::from_static(b"a")));
        assert!(o.try_push(Bytes::from_static(b"b")));
        assert!(!o.try_push(Bytes::from_static(b"c"))); // over lines
    }

    #[tokio::test]
    async fn writes_in_order_then_shuts_down() {
        let (o, rx) = channel(8, 1000);
        assert!(o.try_push(Bytes::from_static(b"a\r\n")));
        assert!(o.push(Bytes::from_static(b"b\r\n")).await);
        drop(o);
        let mut out = Vec::new();
        write_loop(rx, &mut out).await;
        assert_eq!(out, b"a\r\nb\r\n");
    }
}

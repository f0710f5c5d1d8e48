//! A session's bounded outbound queue ([`Outbox`]) and the writer task that drains it to the
//! socket in batches, one vectored write per batch.
//!
//! The queue is bounded twice: in items and in bytes. It is a `VecDeque` behind a mutex that is
//! held only to push or to take a batch, and it allocates nothing until something is queued, so
//! an idle connection costs no queue memory. The room actor only ever uses
//! [`Outbox::try_push`]; when that fails the client is not reading and the actor drops it, so one
//! slow client never stalls a room.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// Most items gathered into one socket write.
const WRITE_BATCH_ITEMS: usize = 64;
/// Most bytes gathered into one socket write (a single larger item is written whole).
const WRITE_BATCH_BYTES: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Bytes>,
    bytes: usize,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer: something was queued, or the last sender went away.
    ready: Notify,
    /// Wakes a session waiting for room in its own queue.
    space: Notify,
    /// Live [`Outbox`] handles; the writer finishes when this reaches zero.
    senders: AtomicUsize,
    max_items: usize,
    max_bytes: usize,
    /// Set to close the connection at once, without flushing (slow reader, write error).
    killed: AtomicBool,
    /// Wakes whoever waits for [`Shared::killed`] to be set.
    kill_wake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill_wake.notify_waiters();
    }

    /// Resolves once the connection is killed (at once if it already is).
    async fn until_killed(&self) {
        loop {
            let woken = self.kill_wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.is_killed() {
                return;
            }
            woken.await;
        }
    }
}

/// Kills a connection without keeping its queue open (see [`Outbox::killer`]).
#[derive(Debug, Clone)]
pub struct Killer(Arc<Shared>);

impl Killer {
    /// Closes the connection at once.
    pub fn cancel(&self) {
        self.0.kill();
    }

    /// Whether the connection was killed.
    pub fn is_cancelled(&self) -> bool {
        self.0.is_killed()
    }
}

/// The sending side of a session's outbound queue. Cheap to clone.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::Relaxed);
        Outbox {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ready.notify_one();
        }
    }
}

/// The receiving side, owned by the writer task.
#[derive(Debug)]
pub struct OutboxReceiver {
    shared: Arc<Shared>,
}

/// A queue bounded to `max_items` items and (roughly) `max_bytes` bytes.
pub fn channel(max_items: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        ready: Notify::new(),
        space: Notify::new(),
        senders: AtomicUsize::new(1),
        max_items,
        max_bytes,
        killed: AtomicBool::new(false),
        kill_wake: Notify::new(),
    });
    (
        Outbox {
            shared: shared.clone(),
        },
        OutboxReceiver { shared },
    )
}

impl Outbox {
    /// Queues `item` without waiting. Returns false when the queue is full (in items or bytes)
    /// or the connection is closing; the caller then drops the session. An item larger than
    /// the byte bound is accepted into an empty queue, so a long reply still gets through.
    pub fn try_push(&self, item: Bytes) -> bool {
        let s = &self.shared;
        if s.is_killed() {
            return false;
        }
        {
            let mut q = s.lock();
            let full = q.items.len() >= s.max_items
                || (q.bytes != 0 && q.bytes + item.len() > s.max_bytes);
            if full {
                return false;
            }
            q.bytes += item.len();
            q.items.push_back(item);
        }
        s.ready.notify_one();
        true
    }

    /// Queues `item`, waiting while the queue is full. Used by the session for its own
    /// replies: waiting there only slows the client that is not reading. False if the
    /// connection was killed.
    pub async fn push(&self, item: Bytes) -> bool {
        let s = &self.shared;
        loop {
            let room = s.space.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if s.is_killed() {
                return false;
            }
            {
                let mut q = s.lock();
                if q.items.len() < s.max_items && (q.bytes == 0 || q.bytes < s.max_bytes) {
                    q.bytes += item.len();
                    q.items.push_back(item);
                    break;
                }
            }
            tokio::select! {
                _ = &mut room => {}
                _ = s.until_killed() => return false,
            }
        }
        s.ready.notify_one();
        true
    }

    /// Items queued and not yet taken by the writer.
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the connection without flushing what is queued.
    pub fn kill(&self) {
        self.shared.kill();
    }

    /// A handle that kills the connection, without keeping the queue open.
    pub fn killer(&self) -> Killer {
        Killer(self.shared.clone())
    }

    /// Resolves when the connection has been killed.
    pub async fn killed(&self) {
        self.shared.until_killed().await
    }
}

/// Writes every byte of `items`, as few `writev` calls as the socket allows.
async fn write_all_vectored<W: AsyncWrite + Unpin>(w: &mut W, items: &[Bytes]) -> io::Result<()> {
    if let [one] = items {
        return w.write_all(one).await;
    }
    let mut slices: Vec<IoSlice<'_>> = items.iter().map(|b| IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = w.write_vectored(rest).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Drains the queue into `w` until every [`Outbox`] is dropped (then flushes and shuts the
/// write side down) or the connection is killed (then stops at once). A write error kills the
/// connection so the session's reader stops too.
pub async fn write_loop<W: AsyncWrite + Unpin>(rx: OutboxReceiver, mut w: W) {
    let s = &rx.shared;
    let mut batch: Vec<Bytes> = Vec::new();
    loop {
        let ready = s.ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        {
            let mut q = s.lock();
            let mut bytes = 0;
            while let Some(item) = q.items.pop_front() {
                bytes += item.len();
                batch.push(item);
                if batch.len() >= WRITE_BATCH_ITEMS || bytes >= WRITE_BATCH_BYTES {
                    break;
                }
            }
            q.bytes -= bytes;
        }
        if batch.is_empty() {
            if s.senders.load(Ordering::Acquire) == 0 {
                break;
            }
            // Idle: keep no buffers while waiting.
            batch = Vec::new();
            tokio::select! {
                biased;
                _ = s.until_killed() => return,
                _ = &mut ready => continue,
            }
        }
        s.space.notify_waiters();
        let written = tokio::select! {
            biased;
            _ = s.until_killed() => return,
            r = write_all_vectored(&mut w, &batch) => r,
        };
        batch.clear();
        if written.is_err() {
            s.kill();
            return;
        }
    }
    tokio::select! {
        _ = s.until_killed() => {}
        _ = w.shutdown() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_items_and_bytes() {
        let (o, _rx) = channel(3, 10);
        assert!(o.try_push(Bytes::from_static(b"0123456789abc"))); // empty queue: accepted
        assert!(!o.try_push(Bytes::from_static(b"x"))); // over bytes
        let (o, _rx) = channel(2, 100);
        assert!(o.try_push(Bytes::from_static(b"a")));
        assert!(o.try_push(Bytes::from_static(b"b")));
        assert!(!o.try_push(Bytes::from_static(b"c"))); // over items
        assert_eq!(o.len(), 2);
        o.kill();
        assert!(!o.try_push(Bytes::from_static(b"d")));
    }

    #[tokio::test]
    async fn writes_in_order_then_shuts_down() {
        let (o, rx) = channel(8, 1000);
        assert!(o.try_push(Bytes::from_static(b"a\r\n")));
        assert!(o.push(Bytes::from_static(b"b\r\n")).await);
        let o2 = o.clone();
        assert!(o2.try_push(Bytes::from_static(b"c\r\n")));
        drop(o);
        drop(o2);
        let mut out = Vec::new();
        write_loop(rx, &mut out).await;
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
    }

    #[tokio::test]
    async fn push_waits_for_room() {
        let (o, rx) = channel(1, 1000);
        assert!(o.push(Bytes::from_static(b"1\r\n")).await);
        let o2 = o.clone();
        let second = tokio::spawn(async move { o2.push(Bytes::from_static(b"2\r\n")).await });
        let (wtx, mut wrx) = tokio::io::duplex(64);
        let writer = tokio::spawn(write_loop(rx, wtx));
        assert!(second.await.unwrap());
        drop(o);
        writer.await.unwrap();
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut wrx, &mut got)
            .await
            .unwrap();
        assert_eq!(got, b"1\r\n2\r\n");
    }
}

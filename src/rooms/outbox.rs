//! A session's bounded outbound queue ([`Outbox`]) and the [`Flusher`] that drains it to the
//! socket in batches, one vectored write per batch.
//!
//! The queue is bounded twice: in items and in bytes. It is a `VecDeque` behind a mutex that is
//! held only to push or to take a batch, and it allocates nothing until something is queued, so
//! an idle connection costs no queue memory. The room actor only ever uses
//! [`Outbox::try_push`]; when that fails the client is not reading and the actor kills the
//! connection, so one slow client never stalls a room.
//!
//! There is no writer task: the session task that reads the connection also drains its queue
//! (a [`Flusher`] is one arm of the session's `select!`), which keeps an idle connection to one
//! task. The session stops reading requests while its queue is over the bounds, so its own
//! replies ([`Outbox::push`], never refused for being over them) cannot pile up either.
//!
//! The outbox owns the connection's socket. A delivery to a connection with nothing queued and
//! nothing being written goes straight to the socket from [`Outbox::try_push`] (a non-blocking
//! send under the queue's lock), so a reader that keeps up costs one send per delivery and no
//! wake-up of its session; only what the socket does not take is queued for the flusher.

use bytes::{Buf, Bytes};
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// Most items gathered into one socket write.
const WRITE_BATCH_ITEMS: usize = 64;
/// Most bytes gathered into one socket write (a single larger item is written whole).
const WRITE_BATCH_BYTES: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Bytes>,
    bytes: usize,
    /// The flusher holds items taken from the queue and not yet written: nothing may be
    /// written around it.
    in_hand: bool,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the session: something was queued, or the connection was killed. Pushes after
    /// the first wake nothing until the session polls again, so a burst costs one wake-up.
    waker: AtomicWaker,
    /// Set to close the connection at once, without flushing (slow reader, write error).
    killed: AtomicBool,
    /// Set to close the connection once what is queued is written (a kick).
    closing: AtomicBool,
    /// Why the session must stop, once told ([`Stop`] as a number; 0: not told).
    stop: AtomicU8,
    /// When the session's time is up, in milliseconds on the daemon's clock (see
    /// [`Outbox::set_deadline`]); a sweep compares it with the clock.
    deadline_ms: AtomicU64,
    max_items: usize,
    max_bytes: usize,
    /// The connection, when the queue belongs to one: see [`Outbox::try_push`].
    socket: Option<TcpStream>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
}

/// A session's outbound queue. Cheap to clone: the session and the room actor each hold one.
#[derive(Debug, Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

/// Why a session is told to stop from outside, through its outbox (no timer or shutdown
/// future of its own: an idle session's task stays small).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The server is shutting down.
    Shutdown,
    /// Its deadline ([`Outbox::set_deadline`]) passed.
    Deadline,
}

/// Why a [`Flusher`] stopped: the connection was killed, or a write failed (which kills it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Killed;

impl Outbox {
    /// A queue bounded to `max_items` items and (roughly) `max_bytes` bytes, with no socket:
    /// everything is queued for the session to write (a TLS connection, which only its
    /// session can encrypt).
    pub fn new(max_items: usize, max_bytes: usize) -> Outbox {
        Outbox::build(max_items, max_bytes, None)
    }

    /// The queue of the connection `socket`, which it then owns: the session reads and
    /// flushes through [`Outbox::socket`], and [`Outbox::try_push`] writes to it directly
    /// while nothing is queued.
    pub fn with_socket(max_items: usize, max_bytes: usize, socket: TcpStream) -> Outbox {
        Outbox::build(max_items, max_bytes, Some(socket))
    }

    fn build(max_items: usize, max_bytes: usize, socket: Option<TcpStream>) -> Outbox {
        Outbox {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                waker: AtomicWaker::new(),
                killed: AtomicBool::new(false),
                closing: AtomicBool::new(false),
                stop: AtomicU8::new(0),
                deadline_ms: AtomicU64::new(u64::MAX),
                max_items,
                max_bytes,
                socket,
            }),
        }
    }

    /// The connection, for an outbox made [`Outbox::with_socket`].
    pub fn socket(&self) -> Option<&TcpStream> {
        self.shared.socket.as_ref()
    }

    /// Queues `item` without waiting. Returns false when the queue is full (in items or bytes)
    /// or the connection is closing; the caller then drops the session. An item larger than
    /// the byte bound is accepted into an empty queue, so a long reply still gets through.
    ///
    /// With nothing queued or being written, the item is written to the socket at once,
    /// without waking the session: a delivery to a reader that keeps up costs one send, as in
    /// a single-threaded IRC daemon. Only what the socket does not take is queued, and the
    /// session writes it when the socket drains.
    pub fn try_push(&self, item: Bytes) -> bool {
        self.enqueue(item, true)
    }

    /// Queues one of the session's own replies. Never refused for the bounds: the session
    /// reads no further request while the queue is full ([`Outbox::is_full`]), so its replies
    /// exceed them by at most one request's worth. False if the connection was killed.
    pub fn push(&self, item: Bytes) -> bool {
        self.enqueue(item, false)
    }

    fn enqueue(&self, mut item: Bytes, bounded: bool) -> bool {
        let s = &self.shared;
        if s.is_killed() {
            return false;
        }
        {
            let mut q = s.lock();
            let full = q.items.len() >= s.max_items
                || (q.bytes != 0 && q.bytes + item.len() > s.max_bytes);
            if bounded && full {
                return false;
            }
            if let Some(socket) = s.socket.as_ref().filter(|_| bounded)
                && q.items.is_empty()
                && !q.in_hand
            {
                // Under the lock: the flusher cannot take a batch meanwhile, so the stream's
                // order holds. An error is left for the flusher to meet.
                match socket.try_write(&item) {
                    Ok(n) if n == item.len() => return true,
                    Ok(n) => item.advance(n),
                    Err(_) => {}
                }
            }
            q.bytes += item.len();
            q.items.push_back(item);
        }
        s.waker.wake();
        true
    }

    /// Items queued and not yet taken by the flusher.
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue is at or over either bound.
    pub fn is_full(&self) -> bool {
        let q = self.shared.lock();
        q.items.len() >= self.shared.max_items || q.bytes >= self.shared.max_bytes
    }

    /// Closes the connection once what is queued has been written: the session's flusher
    /// reports it as ended (see [`Outbox::is_closing`]).
    pub fn close_after_flush(&self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.waker.wake();
    }

    /// Whether [`Outbox::close_after_flush`] was called.
    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }

    /// Sets when the session's time is up, in milliseconds on the daemon's clock; a sweep
    /// ([`Outbox::stop_if_due`]) tells it [`Stop::Deadline`] once the clock passes it.
    pub fn set_deadline(&self, at_ms: u64) {
        self.shared.deadline_ms.store(at_ms, Ordering::Relaxed);
    }

    /// Tells the session [`Stop::Deadline`] if its deadline is at or before `now_ms`.
    pub fn stop_if_due(&self, now_ms: u64) {
        if self.shared.deadline_ms.load(Ordering::Relaxed) <= now_ms {
            self.stop(Stop::Deadline);
        }
    }

    /// Tells the session to stop (the first reason told is the one it sees).
    pub fn stop(&self, why: Stop) {
        let code = match why {
            Stop::Shutdown => 1,
            Stop::Deadline => 2,
        };
        if self
            .shared
            .stop
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.shared.waker.wake();
        }
    }

    /// Resolves once the session is told to stop. A plain poll registering the task with the
    /// outbox's waker (the flusher registers the same task there), so it costs one pointer.
    pub fn stopped(&self) -> impl Future<Output = Stop> + '_ {
        poll_fn(|cx| {
            self.shared.waker.register(cx.waker());
            match self.shared.stop.load(Ordering::Acquire) {
                0 => Poll::Pending,
                1 => Poll::Ready(Stop::Shutdown),
                _ => Poll::Ready(Stop::Deadline),
            }
        })
    }

    /// Closes the connection at once, without flushing what is queued.
    pub fn kill(&self) {
        self.shared.killed.store(true, Ordering::Release);
        self.shared.waker.wake();
    }
}

/// The writing end of an [`Outbox`], owned by the session task. It holds the batch being
/// written (nothing while idle), and its futures are plain polls with no state of their own,
/// so they are cancel-safe (a write cut short by another `select!` arm resumes where it
/// stopped) and add nothing to the size of an idle session.
#[derive(Debug, Default)]
pub struct Flusher {
    /// Taken from the queue, not yet fully written; the first may be partly written.
    /// Boxed: an idle session (nothing in hand) keeps one pointer for it in its task.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes instead of 32 in every idle session's task; allocated only while writing"
    )]
    batch: Option<Box<VecDeque<Bytes>>>,
}

impl Flusher {
    /// A flusher with nothing in hand.
    pub fn new() -> Flusher {
        Flusher::default()
    }

    /// Whether it holds items not yet fully written.
    fn in_hand(&self) -> bool {
        self.batch.as_ref().is_some_and(|b| !b.is_empty())
    }

    /// Writes whatever is queued, as it is queued, until the connection is killed or a write
    /// fails (which kills it): then `Err`. With `until_drained`, it returns `Ok` as soon as it
    /// has written something and the queue is empty again. Cancel-safe.
    pub fn flush_when_ready<'a, W: AsyncWrite + Unpin>(
        &'a mut self,
        outbox: &'a Outbox,
        w: &'a mut W,
        until_drained: bool,
    ) -> impl Future<Output = Result<(), Killed>> + 'a {
        // A plain poll, not an `async fn`: every idle session holds this future.
        poll_fn(move |cx| {
            loop {
                let s = &outbox.shared;
                s.waker.register(cx.waker());
                if s.is_killed() {
                    self.batch = None;
                    return Poll::Ready(Err(Killed));
                }
                if !self.in_hand() && s.lock().items.is_empty() {
                    if s.closing.load(Ordering::Acquire) {
                        return Poll::Ready(Err(Killed)); // everything written: close
                    }
                    return Poll::Pending; // woken by the next push, kill or close
                }
                match self.poll_flush(cx, outbox, w) {
                    Poll::Ready(Ok(())) if !until_drained => continue,
                    other => return other,
                }
            }
        })
    }

    /// Writes everything queued (at once if nothing is). `Err` once the connection is killed
    /// or a write fails (which kills it). Cancel-safe.
    pub async fn flush<W: AsyncWrite + Unpin>(
        &mut self,
        outbox: &Outbox,
        w: &mut W,
    ) -> Result<(), Killed> {
        poll_fn(|cx| {
            outbox.shared.waker.register(cx.waker());
            self.poll_flush(cx, outbox, w)
        })
        .await
    }

    /// Writes until the queue is empty (`Ready(Ok)`), the socket is full (`Pending`, woken
    /// when it drains), or the connection is killed (`Ready(Err)`). The caller has
    /// registered for the outbox's wake-ups, so a kill interrupts a blocked write.
    fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        outbox: &Outbox,
        w: &mut W,
    ) -> Poll<Result<(), Killed>> {
        let s = &outbox.shared;
        loop {
            if s.is_killed() {
                self.batch = None;
                return Poll::Ready(Err(Killed));
            }
            if !self.in_hand() {
                self.take(s);
                if !self.in_hand() {
                    // Idle: keep no buffers while waiting.
                    self.batch = None;
                    return Poll::Ready(Ok(()));
                }
            }
            match self.poll_write_batch(cx, w) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(n)) if n > 0 => self.advance(n),
                Poll::Ready(_) => {
                    outbox.kill();
                    self.batch = None;
                    return Poll::Ready(Err(Killed));
                }
            }
        }
    }

    /// One write of as much of the batch as the socket takes: a plain write for one item, a
    /// vectored one for several.
    fn poll_write_batch<W: AsyncWrite + Unpin>(
        &self,
        cx: &mut Context<'_>,
        w: &mut W,
    ) -> Poll<std::io::Result<usize>> {
        let Some(batch) = self.batch.as_deref() else {
            return Poll::Ready(Ok(0));
        };
        if let (Some(one), 1) = (batch.front(), batch.len()) {
            return Pin::new(w).poll_write(cx, one);
        }
        let mut slices = [IoSlice::new(&[]); WRITE_BATCH_ITEMS];
        let mut n = 0;
        for (slot, item) in slices.iter_mut().zip(batch) {
            *slot = IoSlice::new(item);
            n += 1;
        }
        Pin::new(w).poll_write_vectored(cx, &slices[..n])
    }

    /// Moves up to a batch's worth of items from the queue into hand.
    fn take(&mut self, s: &Shared) {
        let mut q = s.lock();
        q.in_hand = !q.items.is_empty();
        let mut bytes = 0;
        while let Some(item) = q.items.pop_front() {
            bytes += item.len();
            let batch = self.batch.get_or_insert_with(Box::default);
            batch.push_back(item);
            if batch.len() >= WRITE_BATCH_ITEMS || bytes >= WRITE_BATCH_BYTES {
                break;
            }
        }
        q.bytes -= bytes;
        if q.items.is_empty() {
            // An idle connection keeps no queue memory (the greeting alone left 128 bytes).
            q.items = VecDeque::new();
        }
    }

    /// Drops the first `n` bytes of the batch in hand.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(batch) = self.batch.as_mut() else {
                return;
            };
            let Some(first) = batch.front_mut() else {
                return;
            };
            if n < first.len() {
                first.advance(n);
                return;
            }
            n -= first.len();
            batch.pop_front();
        }
    }
}

/// The writing side of a connection shared through an [`Outbox`]: writes wait for the socket
/// to be writable, then write what it takes.
#[derive(Debug, Clone, Copy)]
pub struct SocketWriter<'a>(pub &'a TcpStream);

impl SocketWriter<'_> {
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&TcpStream) -> std::io::Result<usize>,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match write(self.0) {
                // Readiness was stale: tokio cleared it, so the next poll waits.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }
}

impl AsyncWrite for SocketWriter<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_io(cx, |s| s.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_io(cx, |s| s.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends FIN: the client reads what was written, then end of stream.
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(socket2::SockRef::from(self.0).shutdown(std::net::Shutdown::Write))
    }
}

/// An outbox's own socket as a writer (and, for the session, as the source it reads): owns a
/// handle on the outbox, so a session's future holds no borrow of it. Errs with
/// `NotConnected` for an outbox without a socket.
#[derive(Debug, Clone)]
pub struct SocketOf(pub Outbox);

impl SocketOf {
    /// The socket, or `NotConnected`.
    pub fn socket(&self) -> std::io::Result<&TcpStream> {
        self.0
            .socket()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))
    }
}

impl AsyncWrite for SocketOf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let socket = self.socket()?;
        Pin::new(&mut SocketWriter(socket)).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let socket = self.socket()?;
        Pin::new(&mut SocketWriter(socket)).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let socket = self.socket()?;
        Pin::new(&mut SocketWriter(socket)).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_items_and_bytes() {
        let o = Outbox::new(3, 10);
        assert!(o.try_push(Bytes::from_static(b"0123456789abc"))); // empty queue: accepted
        assert!(!o.try_push(Bytes::from_static(b"x"))); // over bytes
        assert!(o.is_full());
        let o = Outbox::new(2, 100);
        assert!(o.try_push(Bytes::from_static(b"a")));
        assert!(!o.is_full());
        assert!(o.try_push(Bytes::from_static(b"b")));
        assert!(!o.try_push(Bytes::from_static(b"c"))); // over items
        assert!(o.is_full());
        assert!(o.push(Bytes::from_static(b"own"))); // the session's own reply: not refused
        assert_eq!(o.len(), 3);
        o.kill();
        assert!(!o.try_push(Bytes::from_static(b"d")));
        assert!(!o.push(Bytes::from_static(b"e")));
    }

    #[tokio::test]
    async fn writes_in_order() {
        let o = Outbox::new(8, 1000);
        assert!(o.try_push(Bytes::from_static(b"a\r\n")));
        assert!(o.push(Bytes::from_static(b"b\r\n")));
        let o2 = o.clone();
        assert!(o2.try_push(Bytes::from_static(b"c\r\n")));
        let mut out = Vec::new();
        let mut f = Flusher::new();
        assert_eq!(f.flush_when_ready(&o, &mut out, true).await, Ok(()));
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
        assert!(o.is_empty());
        assert_eq!(f.flush(&o, &mut out).await, Ok(())); // nothing queued: at once
    }

    #[tokio::test]
    async fn a_partial_write_resumes_after_cancellation() {
        let o = Outbox::new(8, 1000);
        assert!(o.push(Bytes::from_static(b"0123456789\r\n")));
        assert!(o.push(Bytes::from_static(b"abcdefghij\r\n")));
        let (mut wtx, mut wrx) = tokio::io::duplex(5);
        let mut f = Flusher::new();
        // The pipe takes 5 bytes, then the write waits: cancel it there.
        let cut =
            tokio::time::timeout(std::time::Duration::from_millis(50), f.flush(&o, &mut wtx)).await;
        assert!(cut.is_err());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut wrx, &mut got)
                .await
                .unwrap();
            got
        });
        assert_eq!(f.flush(&o, &mut wtx).await, Ok(()));
        drop(wtx);
        assert_eq!(reader.await.unwrap(), b"0123456789\r\nabcdefghij\r\n");
    }

    #[tokio::test]
    async fn kill_stops_a_blocked_write() {
        let o = Outbox::new(8, 1000);
        assert!(o.push(Bytes::from(vec![b'x'; 100])));
        let (mut wtx, _wrx) = tokio::io::duplex(10); // never read
        let killer = o.clone();
        let stop = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            killer.kill();
        });
        let mut f = Flusher::new();
        assert_eq!(f.flush_when_ready(&o, &mut wtx, true).await, Err(Killed));
        stop.await.unwrap();
        assert!(!o.try_push(Bytes::from_static(b"late")));
    }

    /// A connected pair on loopback: (the server side, the client side).
    async fn tcp_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (accepted.unwrap().0, client.unwrap())
    }

    #[tokio::test]
    async fn an_idle_connection_is_written_at_once_without_queueing() {
        let (server, mut client) = tcp_pair().await;
        let o = Outbox::with_socket(8, 1000, server);
        assert!(o.try_push(Bytes::from_static(b"MSG one\r\n")));
        assert!(o.is_empty(), "written, not queued");
        // No flusher runs: the bytes are already on the wire.
        let mut got = [0u8; 9];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut got)
            .await
            .unwrap();
        assert_eq!(&got, b"MSG one\r\n");
        // The session's own replies are queued for its flusher, and a delivery after them
        // waits its turn behind them.
        assert!(o.push(Bytes::from_static(b"OK a\r\n")));
        assert!(o.try_push(Bytes::from_static(b"MSG two\r\n")));
        assert_eq!(o.len(), 2);
        let socket = o.socket().unwrap();
        let mut f = Flusher::new();
        let flushed = f.flush(&o, &mut SocketWriter(socket)).await;
        assert_eq!(flushed, Ok(()));
        let mut got = [0u8; 15];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut got)
            .await
            .unwrap();
        assert_eq!(&got, b"OK a\r\nMSG two\r\n");
    }

    /// A reader that stops reading fills the socket: what it did not take is queued, in
    /// order, nothing is written around what the flusher holds, and the flusher finishes it
    /// all once the reader reads again.
    #[tokio::test]
    async fn a_full_socket_queues_the_rest_in_order() {
        let (server, mut client) = tcp_pair().await;
        let o = Outbox::with_socket(10_000, 1 << 30, server);
        let mut sent = Vec::new();
        let mut i = 0u32;
        while o.is_empty() {
            let item = Bytes::from(format!("{i:08} {}\r\n", "x".repeat(4000)));
            sent.extend_from_slice(&item);
            assert!(o.try_push(item));
            i += 1;
        }
        // The flusher takes the queue in hand and blocks on the full socket.
        let mut f = Flusher::new();
        let socket = o.socket().unwrap();
        let cut = std::time::Duration::from_millis(50);
        let blocked = tokio::time::timeout(cut, f.flush(&o, &mut SocketWriter(socket))).await;
        assert!(blocked.is_err());
        assert!(o.is_empty());
        // The reader takes everything written so far, so the socket has room again.
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(Ok(n @ 1..)) =
            tokio::time::timeout(cut, tokio::io::AsyncReadExt::read(&mut client, &mut buf)).await
        {
            got.extend_from_slice(&buf[..n]);
        }
        // The queue is empty but the flusher holds unwritten items: this goes behind them,
        // not onto the wire ahead of them.
        let item = Bytes::from(format!("{i:08} last\r\n"));
        sent.extend_from_slice(&item);
        assert!(o.try_push(item));
        assert_eq!(o.len(), 1);
        let reader = tokio::spawn(async move {
            let mut rest = vec![0u8; sent.len() - got.len()];
            tokio::io::AsyncReadExt::read_exact(&mut client, &mut rest)
                .await
                .unwrap();
            got.extend_from_slice(&rest);
            assert!(got == sent, "bytes out of order");
        });
        assert_eq!(f.flush(&o, &mut SocketWriter(socket)).await, Ok(()));
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn waits_for_something_to_write() {
        let o = Outbox::new(8, 1000);
        let pusher = o.clone();
        let later = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert!(pusher.try_push(Bytes::from_static(b"late\r\n")));
        });
        let mut out = Vec::new();
        let mut f = Flusher::new();
        assert_eq!(f.flush_when_ready(&o, &mut out, true).await, Ok(()));
        assert_eq!(out, b"late\r\n");
        later.await.unwrap();
    }
}

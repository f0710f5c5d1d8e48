//! Every live session's outbox, so the server reaches them all without each session holding a
//! timer or a shutdown future of its own (an idle connection's task stays small): a sweep every
//! [`SWEEP`] tells the sessions whose deadline passed to stop, and shutdown tells every one.

use crate::SessionId;
use crate::rooms::outbox::{Outbox, Stop};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How often deadlines are checked: a timeout ends within this much after it is due.
pub const SWEEP: Duration = Duration::from_millis(250);

/// The live sessions.
#[derive(Debug, Default)]
pub struct Live {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    outboxes: HashMap<SessionId, Outbox>,
    /// Shutdown began: no session enters any more.
    closed: bool,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a session's outbox; false once shutdown has begun (the session then stops at
    /// once: it was not told).
    pub fn enter(&self, id: SessionId, outbox: &Outbox) -> bool {
        let mut inner = self.lock();
        if inner.closed {
            return false;
        }
        inner.outboxes.insert(id, outbox.clone());
        true
    }

    /// Forgets a session that ended.
    pub fn leave(&self, id: SessionId) {
        self.lock().outboxes.remove(&id);
    }

    /// Tells the sessions whose deadline is at or before `now_ms` to stop.
    pub fn sweep(&self, now_ms: u64) {
        for outbox in self.lock().outboxes.values() {
            outbox.stop_if_due(now_ms);
        }
    }

    /// Tells every session the server is shutting down, and lets no new one in.
    pub fn stop_all(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        for outbox in inner.outboxes.values() {
            outbox.stop(Stop::Shutdown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_stop_the_due_and_shutdown_stops_everyone_and_closes_the_door() {
        let live = Live::default();
        let (a, b) = (Outbox::new(8, 1024), Outbox::new(8, 1024));
        assert!(live.enter(1, &a) && live.enter(2, &b));
        a.set_deadline(1_000);
        b.set_deadline(5_000);
        let told = |o: &Outbox| {
            let waker = futures_util::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            let mut f = std::pin::pin!(o.stopped());
            match f.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(why) => Some(why),
                std::task::Poll::Pending => None,
            }
        };
        live.sweep(999);
        assert_eq!((told(&a), told(&b)), (None, None));
        live.sweep(1_000);
        assert_eq!((told(&a), told(&b)), (Some(Stop::Deadline), None));
        live.stop_all();
        // The first reason told stays.
        assert_eq!(
            (told(&a), told(&b)),
            (Some(Stop::Deadline), Some(Stop::Shutdown))
        );
        assert!(
            !live.enter(3, &Outbox::new(8, 1024)),
            "no entry after shutdown"
        );
        live.leave(1);
        live.leave(2);
        assert!(live.lock().outboxes.is_empty());
    }
}

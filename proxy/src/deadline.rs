//! A timer kept for waits that repeat: the upstream's answer to each request of a
//! connection, the tick of a connection's idle clock.
//!
//! A fresh tokio [`Sleep`] per wait is filed into the runtime's timer wheel on its first
//! poll and taken out again when dropped, each under the wheel's lock. A kept `Sleep` moved
//! to a later deadline stays filed: tokio stores the new deadline with one atomic operation
//! and re-files the timer when the wheel reaches the old one. And a poll of a timer that
//! has not fired changes nothing, so [`Deadline::poll_expired`] goes through a
//! [`WakeGate`] and skips it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

use crate::wake_gate::WakeGate;

/// A reusable deadline; see the module doc.
#[derive(Debug)]
pub struct Deadline {
    sleep: Pin<Box<Sleep>>,
    /// Polls `sleep` only after its waker fired or it was moved in a way that may have left
    /// it without one.
    gate: WakeGate,
}

impl Deadline {
    /// A deadline at `at`. Must be called within a tokio runtime with time enabled.
    pub fn new(at: Instant) -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(at)),
            gate: WakeGate::new(),
        }
    }

    /// Moves the deadline. A later one (the usual case) keeps the timer filed and its waker.
    pub fn reset(&mut self, at: Instant) {
        // A timer that fired opened the gate as it did, so the next wait polls it and gives
        // it a waker again. An earlier deadline re-files the timer: polled again too.
        if at < self.sleep.deadline() {
            self.gate.open();
        }
        self.sleep.as_mut().reset(at);
    }

    /// Ready once the deadline has passed; until then the task of `cx` is woken when it
    /// passes.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let sleep = &mut self.sleep;
        self.gate.poll(cx, |cx| sleep.as_mut().poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};

    /// Counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker and the count of its wakes.
    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn wakes(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    /// `secs` after `start`: lets the paused clock run there and the timer driver fire what
    /// is due.
    async fn advance_to(start: Instant, secs: u64) {
        let at = start + Duration::from_secs(secs);
        tokio::time::advance(at.saturating_duration_since(Instant::now())).await;
        tokio::task::yield_now().await;
    }

    /// A deadline `secs` from now that a waiter has polled once; the start, the deadline,
    /// the waiter's waker and the count of its wakes.
    fn waited_on(secs: u64) -> (Instant, Deadline, Waker, Arc<Count>) {
        let start = Instant::now();
        let mut d = Deadline::new(start + Duration::from_secs(secs));
        let (count, w) = waker();
        assert!(d.poll_expired(&mut Context::from_waker(&w)).is_pending());
        (start, d, w, count)
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_later_wakes_its_waiter_at_the_new_time_only() {
        let (start, mut d, w, count) = waited_on(10);
        let mut cx = Context::from_waker(&w);
        d.reset(start + Duration::from_secs(30));
        assert!(d.poll_expired(&mut cx).is_pending());
        advance_to(start, 20).await;
        assert_eq!(wakes(&count), 0, "the old deadline wakes no one");
        assert!(d.poll_expired(&mut cx).is_pending());
        advance_to(start, 31).await;
        assert_eq!(wakes(&count), 1, "the new deadline wakes the waiter");
        assert!(d.poll_expired(&mut cx).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fired_deadline_reset_later_wakes_again() {
        let (start, mut d, w, count) = waited_on(1);
        let mut cx = Context::from_waker(&w);
        advance_to(start, 2).await;
        assert_eq!(wakes(&count), 1);
        // Reset before the fired timer is polled: it gave its waker away when it fired.
        d.reset(start + Duration::from_secs(5));
        assert!(d.poll_expired(&mut cx).is_pending());
        advance_to(start, 6).await;
        assert_eq!(
            wakes(&count),
            2,
            "a fired timer that is reset must take the waker again"
        );
        assert!(d.poll_expired(&mut cx).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_waited_on_by_another_task_wakes_that_task() {
        let (start, mut d, _, first) = waited_on(5);
        let (second, w2) = waker();
        assert!(d.poll_expired(&mut Context::from_waker(&w2)).is_pending());
        advance_to(start, 6).await;
        assert_eq!(wakes(&first), 0);
        assert_eq!(wakes(&second), 1, "the last waiter is woken");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_earlier_fires_at_the_earlier_time() {
        let (start, mut d, w, count) = waited_on(30);
        let mut cx = Context::from_waker(&w);
        d.reset(start + Duration::from_secs(3));
        assert!(d.poll_expired(&mut cx).is_pending());
        advance_to(start, 4).await;
        assert_eq!(wakes(&count), 1);
        assert!(d.poll_expired(&mut cx).is_ready());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_multi_threaded_runtime_a_moved_deadline_still_fires() {
        let mut d = Deadline::new(Instant::now() + Duration::from_millis(50));
        let (_count, w) = waker();
        assert!(d.poll_expired(&mut Context::from_waker(&w)).is_pending());
        // Moved later while the timer may be firing on the other thread.
        d.reset(Instant::now() + Duration::from_millis(60));
        let waited = std::future::poll_fn(|cx| d.poll_expired(cx));
        tokio::time::timeout(Duration::from_secs(10), waited)
            .await
            .expect("the deadline fires");
    }
}

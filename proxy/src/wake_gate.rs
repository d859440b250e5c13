//! Polling a future only when polling it can change something.
//!
//! Some futures cost a lot to poll while they wait, and are polled by a task that runs
//! often: tokio-util's `cancelled()` takes two locks per poll; a tokio `Sleep` re-registers
//! its waker and counts against the task's budget. A [`WakeGate`] polls such a future with
//! a waker of its own, and polls it again only after that waker fired or its owner opened
//! the gate (after changing the future in a way that may have left it without a waker).
//! Every other poll registers the task's waker and reads a flag: two atomic operations.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// See the module doc. Safe on any runtime: a wake between two polls is never lost.
pub struct WakeGate {
    flag: Arc<Flag>,
    /// `flag` as a waker, made once: the waker the gated future is polled with.
    waker: Waker,
}

/// Set when the gated future's waker fires; wakes the task that polls the gate.
struct Flag {
    open: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.open.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl WakeGate {
    /// Open: the first poll polls the future, which registers the gate's waker.
    pub fn new() -> Self {
        let flag = Arc::new(Flag {
            open: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// Makes the next [`WakeGate::poll`] poll the future: for an owner that changed it.
    pub fn open(&self) {
        self.flag.open.store(true, Ordering::Release);
    }

    /// Polls the gated future (`poll`, given the gate's waker) if the gate is open, else
    /// `Pending`; either way the task of `cx` is woken when the future's waker fires. After
    /// `Ready` the gate stays open, so a future that stays ready reads ready again.
    pub fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        // Registered before the flag is read: a wake in between wakes this task again.
        self.flag.task.register(cx.waker());
        if !self.flag.open.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let polled = poll(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            self.open();
        }
        polled
    }

    /// Whether the next poll polls the future.
    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        self.flag.open.load(Ordering::Acquire)
    }
}

impl Default for WakeGate {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for WakeGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeGate")
            .field("open", &self.flag.open.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    #[test]
    fn the_future_is_polled_again_only_after_its_waker_fired_or_the_gate_was_opened() {
        let gate = WakeGate::new();
        let mut cx = Context::from_waker(Waker::noop());
        let polls = Cell::new(0);
        let given = RefCell::new(None);
        let poll = |cx: &mut Context<'_>| {
            polls.set(polls.get() + 1);
            *given.borrow_mut() = Some(cx.waker().clone());
            Poll::<()>::Pending
        };
        assert!(gate.poll(&mut cx, poll).is_pending());
        assert!(gate.poll(&mut cx, poll).is_pending());
        assert_eq!(
            polls.get(),
            1,
            "nothing woke the future: the second poll skipped it"
        );
        let waker = given.take().expect("the future got the gate's waker");
        waker.wake();
        assert!(gate.poll(&mut cx, poll).is_pending());
        assert_eq!(polls.get(), 2, "its waker fired: polled again");
        gate.open();
        assert!(gate.poll(&mut cx, poll).is_pending());
        assert_eq!(polls.get(), 3, "the gate was opened: polled again");
    }

    #[test]
    fn a_ready_future_reads_ready_on_every_poll() {
        let gate = WakeGate::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(gate.poll(&mut cx, |_| Poll::Ready(())).is_ready());
        assert!(gate.poll(&mut cx, |_| Poll::Ready(())).is_ready());
    }
}

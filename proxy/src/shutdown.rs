//! Waiting for shutdown from a task that runs often, without a lock each time it runs.
//!
//! tokio-util's `cancelled()` future takes two locks every time it is polled while it
//! waits: the token's (to read whether it is cancelled) and its notifier's (to check the
//! waker). A connection's task polls its shutdown branch next to the connection, every time
//! it runs (several times per request), and every connection of every worker shares the
//! token. [`Cancelled`] polls that future through a [`WakeGate`]: again only once its
//! waker fired; every other poll is two atomic operations.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::wake_gate::WakeGate;

/// Completes when the token is cancelled; see the module doc.
pub struct Cancelled {
    wait: Pin<Box<WaitForCancellationFutureOwned>>,
    gate: WakeGate,
}

impl Cancelled {
    pub fn new(token: CancellationToken) -> Self {
        Self {
            wait: Box::pin(token.cancelled_owned()),
            gate: WakeGate::new(),
        }
    }
}

impl Future for Cancelled {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let wait = &mut this.wait;
        this.gate.poll(cx, |cx| wait.as_mut().poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Polls `cancelled` once, with this test task's waker.
    async fn poll_once(cancelled: &mut Cancelled) -> Poll<()> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *cancelled).poll(cx))).await
    }

    #[tokio::test]
    async fn completes_when_the_token_is_cancelled_while_it_waits() {
        let token = CancellationToken::new();
        let mut cancelled = Cancelled::new(token.clone());
        // Polled many times before the cancel, as a connection's task polls it.
        for _ in 0..3 {
            assert!(poll_once(&mut cancelled).await.is_pending());
        }
        let cancel = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            token.cancel();
        });
        tokio::time::timeout(Duration::from_secs(10), cancelled)
            .await
            .expect("a cancel wakes the waiting task");
        cancel.await.unwrap();
    }

    #[tokio::test]
    async fn completes_at_once_when_the_token_was_cancelled_before() {
        let token = CancellationToken::new();
        token.cancel();
        let mut cancelled = Cancelled::new(token);
        assert!(poll_once(&mut cancelled).await.is_ready());
    }

    #[tokio::test]
    async fn a_child_token_cancelled_with_its_parent_completes() {
        let parent = CancellationToken::new();
        let mut cancelled = Cancelled::new(parent.child_token());
        assert!(poll_once(&mut cancelled).await.is_pending());
        parent.cancel();
        assert!(poll_once(&mut cancelled).await.is_ready());
    }

    #[tokio::test]
    async fn polls_after_the_first_do_not_poll_the_token() {
        let token = CancellationToken::new();
        let mut cancelled = Cancelled::new(token.clone());
        assert!(poll_once(&mut cancelled).await.is_pending());
        assert!(
            !cancelled.gate.is_open(),
            "nothing woke the token's future: the next poll skips it"
        );
        assert!(poll_once(&mut cancelled).await.is_pending());
        token.cancel();
        assert!(cancelled.gate.is_open(), "the cancel sets the flag");
        assert!(poll_once(&mut cancelled).await.is_ready());
    }
}

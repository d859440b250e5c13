//! HTTP/2 streams polled by their connection's task instead of a tokio task each.
//!
//! hyper's HTTP/2 server hands every stream it accepts (the service future, then the
//! response body it sends) to an executor. With tokio's, each stream is a task: registered
//! with the runtime, scheduled and polled on its own every time it wakes, and then, to send
//! what it produced, waking the connection's task for a second poll. Here [`StreamExec`]
//! collects the streams a connection starts while [`WithStreams`] polls it, and
//! [`WithStreams`] polls them next to the connection, in the connection's task: a stream
//! that wakes wakes that task, and what it sends goes out with the same poll.
//!
//! The streams of one connection therefore run on one thread, with the connection, like
//! everything else of the connection (`crate::workers`). They end with it: when the
//! connection is over (the client went away, or every stream finished after a graceful
//! shutdown), no stream has anyone left to answer. A panic in a stream (a bug: nothing
//! here panics on input) ends its connection, where it used to end only its task.

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    /// Where [`StreamExec`] puts the streams started on this thread while [`WithStreams`]
    /// polls its connection (or its streams); `None` at any other time.
    static STARTED: RefCell<Option<Vec<Stream>>> = const { RefCell::new(None) };
}

/// hyper's executor for HTTP/2 streams: hands each stream to the [`WithStreams`] polling
/// the connection that started it. Called outside such a poll, it spawns a tokio task, as
/// hyper-util's `TokioExecutor` does.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamExec;

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let fut: Stream = Box::pin(fut);
        let outside = STARTED.with_borrow_mut(|started| match started {
            Some(started) => {
                started.push(fut);
                None
            }
            None => Some(fut),
        });
        if let Some(fut) = outside {
            tokio::spawn(fut);
        }
    }
}

/// A connection whose executor is [`StreamExec`], with the streams it started: polling it
/// polls both. It ends when the connection does; streams still running then are dropped.
pub struct WithStreams<C> {
    conn: Pin<Box<C>>,
    streams: FuturesUnordered<Stream>,
    /// The streams started during one poll; kept to reuse its allocation.
    started: Vec<Stream>,
}

impl<C: Future> WithStreams<C> {
    pub fn new(conn: Pin<Box<C>>) -> Self {
        Self {
            conn,
            streams: FuturesUnordered::new(),
            started: Vec::new(),
        }
    }

    /// The connection, e.g. to ask it for a graceful shutdown.
    pub fn conn(&mut self) -> Pin<&mut C> {
        self.conn.as_mut()
    }

    /// Polls every stream that woke, and those started meanwhile, until none is ready.
    fn poll_streams(&mut self, cx: &mut Context<'_>) {
        loop {
            self.streams.extend(self.started.drain(..));
            let streams = &mut self.streams;
            collect_started(&mut self.started, || {
                while let Poll::Ready(Some(())) = streams.poll_next_unpin(cx) {}
            });
            if self.started.is_empty() {
                return;
            }
        }
    }
}

impl<C: Future> Future for WithStreams<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        // Streams first: what they produced is sent by this poll of the connection.
        this.poll_streams(cx);
        let conn = &mut this.conn;
        let polled = collect_started(&mut this.started, || conn.as_mut().poll(cx));
        if polled.is_pending() {
            // The streams the connection just accepted start now: their requests go
            // upstream before the task sleeps.
            this.poll_streams(cx);
        }
        polled
    }
}

/// Runs `poll` with [`StreamExec`] putting the streams it starts into `started`.
fn collect_started<T>(started: &mut Vec<Stream>, poll: impl FnOnce() -> T) -> T {
    /// Takes the collected streams back and restores what was collecting before, even if
    /// `poll` panics, so that no later [`StreamExec::execute`] on this thread puts a stream
    /// where nobody polls it.
    struct Collecting<'a> {
        started: &'a mut Vec<Stream>,
        outer: Option<Vec<Stream>>,
    }
    impl Drop for Collecting<'_> {
        fn drop(&mut self) {
            if let Some(started) = STARTED.replace(self.outer.take()) {
                *self.started = started;
            }
        }
    }
    let outer = STARTED.replace(Some(std::mem::take(started)));
    let _collecting = Collecting { started, outer };
    poll()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A connection stand-in that starts `n` streams on its first poll and ends once they
    /// all ran; each stream notes the task it ran in.
    struct Starts {
        n: usize,
        ran_in: Arc<Mutex<Vec<Option<tokio::task::Id>>>>,
        started: bool,
    }

    impl Future for Starts {
        type Output = Option<tokio::task::Id>;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            if !self.started {
                self.started = true;
                for _ in 0..self.n {
                    let ran_in = self.ran_in.clone();
                    let waker = cx.waker().clone();
                    StreamExec.execute(async move {
                        // Each stream waits once before it finishes, as one waiting for its
                        // upstream would.
                        tokio::task::yield_now().await;
                        ran_in.lock().unwrap().push(tokio::task::try_id());
                        waker.wake();
                    });
                }
            }
            if self.ran_in.lock().unwrap().len() == self.n {
                Poll::Ready(tokio::task::try_id())
            } else {
                Poll::Pending
            }
        }
    }

    #[tokio::test]
    async fn streams_started_by_the_connection_run_in_its_task() {
        let ran_in = Arc::new(Mutex::new(Vec::new()));
        let conn = WithStreams::new(Box::pin(Starts {
            n: 3,
            ran_in: ran_in.clone(),
            started: false,
        }));
        let conn_task = tokio::time::timeout(Duration::from_secs(10), tokio::spawn(conn))
            .await
            .expect("the streams ran")
            .expect("the connection did not panic");
        assert!(conn_task.is_some());
        assert_eq!(
            *ran_in.lock().unwrap(),
            [conn_task; 3],
            "every stream ran in the connection's task, none in a task of its own"
        );
    }

    #[test]
    fn a_nested_collection_leaves_the_outer_one_its_streams() {
        let (mut outer, mut inner) = (Vec::new(), Vec::new());
        collect_started(&mut outer, || {
            StreamExec.execute(async {});
            collect_started(&mut inner, || StreamExec.execute(async {}));
            StreamExec.execute(async {});
        });
        assert_eq!((outer.len(), inner.len()), (2, 1));
        assert!(STARTED.take().is_none(), "nothing collects afterwards");
    }

    #[tokio::test]
    async fn a_stream_started_outside_a_connection_poll_is_a_task() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        StreamExec.execute(async move {
            let _ = tx.send(tokio::task::try_id());
        });
        let ran_in = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("the stream ran")
            .expect("the stream sent");
        assert!(ran_in.is_some(), "the stream ran as a task");
    }

    #[test]
    fn a_stream_starts_in_the_poll_that_accepts_it_and_ends_with_the_connection() {
        struct CountsDrop(Arc<AtomicUsize>);
        impl Drop for CountsDrop {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let polls = Arc::new(AtomicUsize::new(0));
        let mut first = true;
        let (stream_guard, stream_polls) = (dropped.clone(), polls.clone());
        let mut conn = WithStreams::new(Box::pin(std::future::poll_fn(move |_| {
            if std::mem::take(&mut first) {
                let guard = CountsDrop(stream_guard.clone());
                let polls = stream_polls.clone();
                StreamExec.execute(std::future::poll_fn(move |_| {
                    let _guard = &guard;
                    polls.fetch_add(1, Ordering::Relaxed);
                    Poll::<()>::Pending
                }));
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut conn).poll(&mut cx).is_pending());
        assert_eq!(conn.streams.len(), 1, "the stream was started");
        assert_eq!(
            polls.load(Ordering::Relaxed),
            1,
            "the stream was polled in the poll that accepted it, before the task sleeps"
        );
        assert_eq!(dropped.load(Ordering::Relaxed), 0, "the stream is running");
        assert!(Pin::new(&mut conn).poll(&mut cx).is_ready());
        drop(conn);
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            1,
            "the stream was dropped with its connection"
        );
    }
}

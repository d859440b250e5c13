//! Polling a future only when polling it can change something.
//!
//! Some futures cost a lot to poll while they wait, and are polled by a task that runs
//! often: tokio-util's `cancelled()` takes two locks per poll; a tokio `Sleep` re-registers
//! its waker and counts against the task's budget. A [`WakeGate`] polls such a future with
//! a waker of its own, and polls it again only after that waker fired or its owner opened
//! the gate (after changing the future in a way that may have left it without a waker).
//! Every other poll registers the task's waker and reads a flag: two atomic operations.
//!
//! [`GatedRead`] puts a socket's reads behind a gate. hyper tries to read a connection
//! several times per request (after the request, after the response, to notice a close
//! while idle), and every try that finds nothing to read goes through tokio's readiness
//! check, which takes the socket's waiter lock to store the waker again.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

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

/// A byte stream whose reads are tried again only once the last one that found nothing
/// has been woken: by the socket becoming readable (or closed, or failing), or by tokio's
/// budget handing the turn back. Writes pass straight through. Wrap the socket itself,
/// below any TLS: what TLS has already decrypted is read without asking the socket.
#[derive(Debug)]
pub struct GatedRead<T> {
    inner: T,
    gate: WakeGate,
}

impl<T> GatedRead<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            gate: WakeGate::new(),
        }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: std::os::fd::AsFd> std::os::fd::AsFd for GatedRead<T> {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GatedRead<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let inner = &mut this.inner;
        this.gate
            .poll(cx, |cx| Pin::new(&mut *inner).poll_read(cx, buf))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GatedRead<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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

    /// A reader that counts the reads that reach it.
    struct Counting<T> {
        inner: T,
        reads: usize,
    }

    impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads += 1;
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    /// One poll of `reader.poll_read`: whether it read, and what.
    async fn poll_once<R: AsyncRead + Unpin>(reader: &mut R) -> Poll<Vec<u8>> {
        std::future::poll_fn(|cx| {
            let mut bytes = [0u8; 64];
            let mut buf = ReadBuf::new(&mut bytes);
            let polled = Pin::new(&mut *reader)
                .poll_read(cx, &mut buf)
                .map(|r| r.map(|()| buf.filled().to_vec()).unwrap());
            Poll::Ready(polled)
        })
        .await
    }

    #[tokio::test]
    async fn a_read_that_found_nothing_is_tried_again_only_once_the_socket_woke_it() {
        use std::time::Duration;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio::net::{TcpListener, TcpStream};

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut reader = GatedRead::new(Counting {
            inner: server,
            reads: 0,
        });

        assert!(poll_once(&mut reader).await.is_pending());
        assert!(poll_once(&mut reader).await.is_pending());
        assert!(poll_once(&mut reader).await.is_pending());
        assert_eq!(
            reader.get_ref().reads,
            1,
            "nothing woke the first read that found nothing: the socket was not asked again"
        );

        client.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), reader.read_exact(&mut got))
            .await
            .expect("the socket's readiness woke the gated read")
            .unwrap();
        assert_eq!(&got, b"hello");

        drop(client);
        let eof = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut got))
            .await
            .expect("the peer's close woke the gated read")
            .unwrap();
        assert_eq!(eof, 0, "the peer's close reads as the end of the stream");
    }

    #[test]
    fn a_ready_future_reads_ready_on_every_poll() {
        let gate = WakeGate::new();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(gate.poll(&mut cx, |_| Poll::Ready(())).is_ready());
        assert!(gate.poll(&mut cx, |_| Poll::Ready(())).is_ready());
    }
}

//! Closes connections that have been idle too long: no bytes either way and no request in
//! flight. Cheap on the hot path: reads and writes only set a flag; the clock is consulted
//! once per half-period, when the timer fires.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests in flight on one connection; while any is, the connection is not idle.
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

impl InFlight {
    /// Marks a request in flight until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(self.clone())
    }

    fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

pub struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An I/O stream that fails reads with `TimedOut` once it has been idle for between
/// `idle` and 1.5 × `idle`.
pub struct IdleTimeout<S> {
    inner: S,
    clock: IdleClock,
}

/// When the stream last moved, in half periods.
struct IdleClock {
    timer: Pin<Box<Sleep>>,
    half_period: Duration,
    quiet_half_periods: u8,
    progressed: bool,
    in_flight: Arc<InFlight>,
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, idle: Duration, in_flight: Arc<InFlight>) -> Self {
        let half_period = idle / 2;
        Self {
            inner,
            clock: IdleClock {
                timer: Box::pin(tokio::time::sleep(half_period)),
                half_period,
                quiet_half_periods: 0,
                progressed: false,
                in_flight,
            },
        }
    }
}

impl IdleClock {
    /// What a read that would block returns: `TimedOut` once the stream was idle too long.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if self.expired(cx) {
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle too long",
            )))
        } else {
            Poll::Pending
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.timer.as_mut().poll(cx).is_ready() {
            if self.progressed || self.in_flight.any() {
                self.progressed = false;
                self.quiet_half_periods = 0;
            } else {
                self.quiet_half_periods += 1;
                if self.quiet_half_periods >= 2 {
                    return true;
                }
            }
            let next = Instant::now() + self.half_period;
            self.timer.as_mut().reset(next);
        }
        false
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.clock.progressed = true;
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.clock.pending(cx),
        }
    }
}

impl<S: AsyncBufRead + Unpin> AsyncBufRead for IdleTimeout<S> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_fill_buf(cx) {
            Poll::Ready(r) => {
                if matches!(&r, Ok(b) if !b.is_empty()) {
                    this.clock.progressed = true;
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.clock.pending(cx),
        }
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.inner).consume(amt)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.progressed = true;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.clock.progressed = true;
        }
        r
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    #[tokio::test(start_paused = true)]
    async fn idle_connection_times_out_but_not_while_a_request_is_in_flight() {
        let (client, server) = duplex(64);
        let in_flight = Arc::new(InFlight::default());
        let mut io = IdleTimeout::new(server, Duration::from_secs(60), in_flight.clone());
        let mut client = client;
        client.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        io.read_exact(&mut buf).await.unwrap();

        let guard = in_flight.enter();
        let waited = tokio::time::timeout(Duration::from_secs(300), io.read(&mut buf)).await;
        assert!(waited.is_err(), "no timeout while a request is in flight");
        drop(guard);

        let started = Instant::now();
        let err = io
            .read(&mut buf)
            .await
            .expect_err("idle connection must time out");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let idle = started.elapsed();
        assert!(
            idle >= Duration::from_secs(60) && idle <= Duration::from_secs(90),
            "closed after {idle:?}"
        );
    }
}

//! Closes connections that have been idle too long: no bytes either way (HTTP/2: no
//! stream; its PINGs and other control frames are not activity) and no request in flight;
//! on HTTP/1.1, connections whose request head does not arrive within the header timeout
//! of its first byte (slowloris); and connections whose response bytes make no progress
//! for the send timeout (a client that stopped reading, an HTTP/2 window kept shut).
//! Cheap on the hot path: reads, writes and response bodies only set flags; the clock is
//! consulted once per tick, when the one timer of the connection fires. No timer is
//! created per request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

mod in_flight;
pub use in_flight::{InFlight, InFlightGuard, UnreadBody};

/// Why the clock ended a connection: the error inside the `TimedOut` I/O error it fails
/// reads and writes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Expired {
    #[error("connection idle too long")]
    Idle,
    #[error("request headers took too long")]
    Header,
    #[error("the client took no response bytes for send_timeout")]
    Send,
}

impl Expired {
    /// The clock's reason, if `e` (or what it wraps) is its `TimedOut` error.
    pub fn of(e: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut cause = Some(e);
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<io::Error>()
                && let Some(expired) = io.get_ref().and_then(|i| i.downcast_ref::<Self>())
            {
                return Some(*expired);
            }
            cause = c.source();
        }
        None
    }
}

/// An I/O stream that fails reads with `TimedOut` once it has been idle for between `idle`
/// and `idle` + one tick, or (with a header timeout) once a request head has taken between
/// `header` and `header` + one tick since its first byte. A tick is half the shorter of
/// the two.
pub struct IdleTimeout<S> {
    inner: S,
    clock: IdleClock,
}

/// How long the stream has been quiet, and how long the current request head has taken,
/// in ticks.
struct IdleClock {
    /// The next tick; a read that would block waits on it.
    timer: Pin<Box<Sleep>>,
    tick: Duration,
    /// Quiet ticks that make the connection idle.
    idle_ticks: u32,
    quiet_ticks: u32,
    progressed: bool,
    in_flight: Arc<InFlight>,
    /// Ticks a request head may take; `None`: no header timeout (HTTP/2).
    head_limit: Option<u32>,
    /// Ticks since the current request head's first byte; counts while
    /// `in_flight.head_pending` says a head is arriving.
    head_ticks: u32,
    /// Whether bytes read or written count as activity: not on HTTP/2, where a client can
    /// keep a connection busy with PINGs alone; there only streams do.
    bytes_are_activity: bool,
    /// Quiet ticks of the response side that close the connection.
    send_ticks: u32,
    send_quiet_ticks: u32,
    /// Bytes were written since the last tick.
    wrote: bool,
}

/// The timeouts one connection is held to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle: Duration,
    /// The time a request head may take from its first byte (HTTP/1.1), or `None`.
    pub header: Option<Duration>,
    pub send: Duration,
    /// See [`IdleClock`]: false on HTTP/2.
    pub bytes_are_activity: bool,
}

/// Ticks that cover `span`, at least one.
fn ticks(span: Duration, tick: Duration) -> u32 {
    let n = span.as_nanos().div_ceil(tick.as_nanos().max(1));
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, limits: Limits, in_flight: Arc<InFlight>) -> Self {
        let shortest = limits
            .header
            .map_or(limits.idle, |h| h.min(limits.idle))
            .min(limits.send);
        let tick = (shortest / 2).max(Duration::from_millis(1));
        Self {
            inner,
            clock: IdleClock {
                timer: Box::pin(tokio::time::sleep(tick)),
                tick,
                idle_ticks: ticks(limits.idle, tick),
                quiet_ticks: 0,
                progressed: false,
                in_flight,
                head_limit: limits.header.map(|h| ticks(h, tick)),
                head_ticks: 0,
                bytes_are_activity: limits.bytes_are_activity,
                send_ticks: ticks(limits.send, tick),
                send_quiet_ticks: 0,
                wrote: false,
            },
        }
    }
}

impl IdleClock {
    /// What a read that would block returns: `TimedOut` once the stream was idle too long
    /// or a request head took too long.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.expired(cx) {
            Some(why) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why))),
            None => Poll::Pending,
        }
    }

    /// Bytes arrived. With a header timeout and no request in flight, they start a request
    /// head unless one is already arriving.
    fn read_progress(&mut self) {
        self.progressed |= self.bytes_are_activity;
        if self.head_limit.is_some()
            && !self.in_flight.any()
            && !self.in_flight.head_pending.load(Ordering::Relaxed)
            && !self.in_flight.upgraded.load(Ordering::Relaxed)
        {
            self.in_flight.head_pending.store(true, Ordering::Relaxed);
            self.head_ticks = 0;
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> Option<Expired> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let touched = self.in_flight.touched.swap(false, Ordering::Relaxed);
            if self.progressed || touched || self.in_flight.any() {
                self.progressed = false;
                self.quiet_ticks = 0;
            } else {
                self.quiet_ticks += 1;
                if self.quiet_ticks >= self.idle_ticks {
                    return Some(Expired::Idle);
                }
            }
            if self.send_stalled() {
                return Some(Expired::Send);
            }
            // `head_pending` is cleared when the head's request enters flight.
            if let Some(limit) = self.head_limit {
                if !self.in_flight.head_pending.load(Ordering::Relaxed) {
                    self.head_ticks = 0;
                } else if self.head_ticks >= limit {
                    return Some(Expired::Header);
                } else {
                    self.head_ticks += 1;
                }
            }
            let next = Instant::now() + self.tick;
            self.timer.as_mut().reset(next);
        }
        None
    }

    /// One tick of the response side: whether bytes have waited for the client, without
    /// it taking any, for `send_ticks`.
    fn send_stalled(&mut self) -> bool {
        let sent = self.in_flight.sent.swap(false, Ordering::Relaxed) || self.wrote;
        self.wrote = false;
        let waiting = self.in_flight.write_blocked.load(Ordering::Relaxed)
            || self.in_flight.waiting_for_client.load(Ordering::Relaxed) > 0;
        if waiting && !sent {
            self.send_quiet_ticks += 1;
        } else {
            self.send_quiet_ticks = 0;
        }
        self.send_quiet_ticks >= self.send_ticks
    }

    /// What a write did: bytes taken are progress (and activity, where bytes are); a
    /// write that would block waits on the clock, which may end the connection.
    fn written<T>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<T>>,
        n: impl Fn(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                self.in_flight.write_blocked.store(true, Ordering::Relaxed);
                self.pending(cx)
            }
            Poll::Ready(Ok(v)) => {
                self.in_flight.write_blocked.store(false, Ordering::Relaxed);
                if n(&v) > 0 {
                    self.wrote = true;
                    self.progressed |= self.bytes_are_activity;
                }
                Poll::Ready(Ok(v))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
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
                    self.clock.read_progress();
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
                    this.clock.read_progress();
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.clock.written(cx, r, |n| *n)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.clock.written(cx, r, |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        // A flush that ends a blocked write moved bytes; one with nothing to do did not.
        let was_blocked = this.clock.in_flight.write_blocked.load(Ordering::Relaxed);
        this.clock.written(cx, r, |_| usize::from(was_blocked))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;

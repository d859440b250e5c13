//! Closes connections that have been idle too long: no bytes either way and no request in
//! flight; and, on HTTP/1.1, connections whose request head does not arrive within the
//! header timeout of its first byte (slowloris). Cheap on the hot path: reads and writes
//! only set flags; the clock is consulted once per tick, when the one timer of the
//! connection fires. No timer is created per request.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests in flight on one connection; while any is, the connection is not idle.
#[derive(Debug, Default)]
pub struct InFlight {
    active: AtomicUsize,
    /// Set by the clock when bytes of a new request head arrive, cleared when the head is
    /// complete (a request enters flight).
    head_pending: AtomicBool,
    /// The connection was upgraded (WebSocket): what it carries now are not requests.
    upgraded: AtomicBool,
}

impl InFlight {
    /// Marks a request in flight until the guard is dropped; its head has arrived.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.head_pending.store(false, Ordering::Relaxed);
        InFlightGuard(self.clone())
    }

    /// From now on the connection carries an upgraded protocol: no more request heads to
    /// time, only idleness.
    pub fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    fn any(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }
}

pub struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
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
}

/// Ticks that cover `span`, at least one.
fn ticks(span: Duration, tick: Duration) -> u32 {
    let n = span.as_nanos().div_ceil(tick.as_nanos().max(1));
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

impl<S> IdleTimeout<S> {
    /// `header`: the time a request head may take from its first byte (HTTP/1.1), or
    /// `None`.
    pub fn new(
        inner: S,
        idle: Duration,
        header: Option<Duration>,
        in_flight: Arc<InFlight>,
    ) -> Self {
        let shortest = header.map_or(idle, |h| h.min(idle));
        let tick = (shortest / 2).max(Duration::from_millis(1));
        Self {
            inner,
            clock: IdleClock {
                timer: Box::pin(tokio::time::sleep(tick)),
                tick,
                idle_ticks: ticks(idle, tick),
                quiet_ticks: 0,
                progressed: false,
                in_flight,
                head_limit: header.map(|h| ticks(h, tick)),
                head_ticks: 0,
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
        self.progressed = true;
        if self.head_limit.is_some()
            && !self.in_flight.any()
            && !self.in_flight.head_pending.load(Ordering::Relaxed)
            && !self.in_flight.upgraded.load(Ordering::Relaxed)
        {
            self.in_flight.head_pending.store(true, Ordering::Relaxed);
            self.head_ticks = 0;
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> Option<&'static str> {
        while self.timer.as_mut().poll(cx).is_ready() {
            if self.progressed || self.in_flight.any() {
                self.progressed = false;
                self.quiet_ticks = 0;
            } else {
                self.quiet_ticks += 1;
                if self.quiet_ticks >= self.idle_ticks {
                    return Some("connection idle too long");
                }
            }
            // `head_pending` is cleared when the head's request enters flight.
            if let Some(limit) = self.head_limit
                && self.in_flight.head_pending.load(Ordering::Relaxed)
            {
                if self.head_ticks >= limit {
                    return Some("request headers took too long");
                }
                self.head_ticks += 1;
            }
            let next = Instant::now() + self.tick;
            self.timer.as_mut().reset(next);
        }
        None
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
        let mut io = IdleTimeout::new(server, Duration::from_secs(60), None, in_flight.clone());
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

    /// An HTTP/1.1 connection's stream: idle_timeout 60 s, header_timeout 10 s.
    fn http1() -> (
        tokio::io::DuplexStream,
        IdleTimeout<tokio::io::DuplexStream>,
        Arc<InFlight>,
    ) {
        let (client, server) = duplex(64);
        let in_flight = Arc::new(InFlight::default());
        let io = IdleTimeout::new(
            server,
            Duration::from_secs(60),
            Some(Duration::from_secs(10)),
            in_flight.clone(),
        );
        (client, io, in_flight)
    }

    /// Reads until the stream fails, which must be a timeout; returns how long it took.
    async fn time_until_timeout<S: AsyncRead + Unpin>(io: &mut S) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let timed_out = async {
            loop {
                match io.read(&mut buf).await {
                    Ok(0) => panic!("the peer closed first"),
                    Ok(_) => {}
                    Err(e) => {
                        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                        return;
                    }
                }
            }
        };
        // Bounded: a clock that never fires would otherwise wait forever (paused time only
        // jumps to timers that exist).
        tokio::time::timeout(Duration::from_secs(3600), timed_out)
            .await
            .expect("the connection times out within an hour");
        started.elapsed()
    }

    /// A one-byte request head from the client, read by the server: its request enters
    /// flight until the guard is dropped.
    async fn one_head(
        client: &mut tokio::io::DuplexStream,
        io: &mut IdleTimeout<tokio::io::DuplexStream>,
        in_flight: &Arc<InFlight>,
    ) -> InFlightGuard {
        let mut buf = [0u8; 1];
        client.write_all(b"x").await.unwrap();
        io.read_exact(&mut buf).await.unwrap();
        in_flight.enter()
    }

    /// Writes one byte every `gap`, `count` times, then stays open.
    fn trickle(mut client: tokio::io::DuplexStream, gap: Duration, count: usize) {
        tokio::spawn(async move {
            for _ in 0..count {
                if client.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(gap).await;
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_head_trickling_in_is_cut_at_the_header_timeout() {
        let (client, mut io, _in_flight) = http1();
        trickle(client, secs(1), 1000);
        let took = time_until_timeout(&mut io).await;
        assert!(
            took >= secs(10) && took <= secs(16),
            "a head still arriving after header_timeout is cut, bytes or not: {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_only_the_idle_timeout_applies() {
        let (mut client, mut io, in_flight) = http1();
        // The head is complete: its request runs for 20 s, then the connection waits.
        let guard = one_head(&mut client, &mut io, &in_flight).await;
        tokio::time::sleep(secs(20)).await;
        drop(guard);
        let took = time_until_timeout(&mut io).await;
        assert!(
            took >= secs(60) && took <= secs(66),
            "a keep-alive connection waits idle_timeout for its next request, not header_timeout: {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn each_request_head_gets_its_own_header_timeout() {
        let (mut client, mut io, in_flight) = http1();
        // Requests every 7 s for a minute: each head arrives at once.
        for _ in 0..9 {
            drop(one_head(&mut client, &mut io, &in_flight).await);
            tokio::time::sleep(secs(7)).await;
        }
        // Then a head that never completes.
        trickle(client, secs(1), 1000);
        let took = time_until_timeout(&mut io).await;
        assert!(
            took >= secs(10) && took <= secs(16),
            "the unfinished head is cut after header_timeout of its own: {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_upgraded_connection_has_no_header_timeout() {
        let (client, mut io, in_flight) = http1();
        in_flight.upgraded();
        trickle(client, secs(1), 100);
        let took = time_until_timeout(&mut io).await;
        assert!(
            took >= secs(160),
            "WebSocket traffic keeps it open; only silence (idle_timeout) ends it: {took:?}"
        );
    }
}

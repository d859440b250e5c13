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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

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

/// Requests in flight on one connection; while any is, the connection is not idle.
#[derive(Debug, Default)]
pub struct InFlight {
    active: AtomicUsize,
    /// Set by the clock when bytes of a new request head arrive, cleared when the head is
    /// complete (a request enters flight).
    head_pending: AtomicBool,
    /// The connection was upgraded (WebSocket): what it carries now are not requests.
    upgraded: AtomicBool,
    /// Response bodies that have a frame ready for the client (or a head not yet taken),
    /// waiting for the client's side to take it.
    waiting_for_client: AtomicUsize,
    /// Set when the client's side takes response bytes; the clock clears it each tick.
    sent: AtomicBool,
    /// Set when a request starts or ends: activity even where bytes are not (HTTP/2), so
    /// that idleness counts from the end of the last request.
    touched: AtomicBool,
}

impl InFlight {
    /// Marks a request in flight until the guard is dropped; its head has arrived.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.touched.store(true, Ordering::Relaxed);
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

impl InFlightGuard {
    /// A response body starts or stops waiting for the client to take its next bytes.
    pub fn waiting_for_client(&self, waiting: bool) {
        if waiting {
            self.0.waiting_for_client.fetch_add(1, Ordering::Relaxed);
        } else {
            self.0.waiting_for_client.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The client's side took response bytes.
    pub fn sent(&self) {
        self.0.sent.store(true, Ordering::Relaxed);
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0.touched.store(true, Ordering::Relaxed);
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
    /// A write is waiting for the client to make room.
    write_blocked: bool,
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
                write_blocked: false,
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
            if let Some(limit) = self.head_limit
                && self.in_flight.head_pending.load(Ordering::Relaxed)
            {
                if self.head_ticks >= limit {
                    return Some(Expired::Header);
                }
                self.head_ticks += 1;
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
        let waiting =
            self.write_blocked || self.in_flight.waiting_for_client.load(Ordering::Relaxed) > 0;
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
                self.write_blocked = true;
                self.pending(cx)
            }
            Poll::Ready(Ok(v)) => {
                self.write_blocked = false;
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
        let was_blocked = this.clock.write_blocked;
        this.clock.written(cx, r, |_| usize::from(was_blocked))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    /// idle_timeout 60 s, send_timeout 30 s.
    fn limits(header: Option<Duration>, bytes_are_activity: bool) -> Limits {
        Limits {
            idle: secs(60),
            header,
            send: secs(30),
            bytes_are_activity,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_times_out_but_not_while_a_request_is_in_flight() {
        let (client, server) = duplex(64);
        let in_flight = Arc::new(InFlight::default());
        let mut io = IdleTimeout::new(server, limits(None, true), in_flight.clone());
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
        let io = IdleTimeout::new(server, limits(Some(secs(10)), true), in_flight.clone());
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

    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_cut_at_the_send_timeout() {
        let (client, server) = duplex(64);
        let in_flight = Arc::new(InFlight::default());
        let mut io = IdleTimeout::new(server, limits(None, true), in_flight.clone());
        let _busy = in_flight.enter();
        let started = Instant::now();
        let chunk = [b'x'; 64];
        let err = tokio::time::timeout(secs(3600), async {
            loop {
                if let Err(e) = io.write(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .expect("the write fails within an hour");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= secs(30) && took <= secs(46),
            "a write blocked on a client that reads nothing ends at send_timeout: {took:?}"
        );
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_the_client_does_not_take_is_cut_even_with_no_write_pending() {
        // HTTP/2 with the client's window shut: nothing to write, the body waits.
        let (_client, server) = duplex(64);
        let in_flight = Arc::new(InFlight::default());
        let mut io = IdleTimeout::new(server, limits(None, false), in_flight.clone());
        let busy = in_flight.enter();
        busy.waiting_for_client(true);
        let took = time_until_timeout(&mut io).await;
        assert!(
            took >= secs(30) && took <= secs(46),
            "a response waiting for the client is cut at send_timeout: {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_the_client_keeps_taking_is_never_cut() {
        let (_client, server) = duplex(64);
        let in_flight = Arc::new(InFlight::default());
        let mut io = IdleTimeout::new(server, limits(None, false), in_flight.clone());
        let busy = in_flight.enter();
        busy.waiting_for_client(true);
        let mut buf = [0u8; 1];
        let taking = async {
            loop {
                tokio::time::sleep(secs(5)).await;
                busy.sent();
            }
        };
        tokio::select! {
            r = io.read(&mut buf) => panic!("the connection ended: {r:?}"),
            _ = tokio::time::sleep(secs(600)) => {}
            _ = taking => {}
        }
    }

    #[tokio::test(start_paused = true)]
    async fn on_http2_bytes_alone_do_not_keep_a_connection_open() {
        // PINGs every second and no stream: idle all the same.
        let (client, server) = duplex(64);
        let mut io = IdleTimeout::new(server, limits(None, false), Arc::new(InFlight::default()));
        trickle(client, secs(1), 1000);
        let took = time_until_timeout(&mut io).await;
        assert!(
            took >= secs(60) && took <= secs(76),
            "control frames are not activity: closed at idle_timeout: {took:?}"
        );
    }
}

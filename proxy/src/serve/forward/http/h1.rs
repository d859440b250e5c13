//! HTTP/1.1 client connections between requests. A round of requests is served by a
//! hyper connection until the client is between requests (its last response sent and
//! taken, its request bodies read, nothing of a next request arrived) and the round is
//! at least `ROUND` old; there the stream is taken back from hyper, which frees its read
//! and write buffers (8 KiB each) and its state, and waits alone for the client's next
//! bytes, which a new round's hyper connection reads. An idle keep-alive connection (what
//! every browser leaves behind) so holds what one that never sent a request holds, and
//! its `ConnCtx`. A 101 upgrade takes the stream back too, to splice it to the upstream's.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper::server::conn::http1::{self, Parts};
use hyper::service::HttpService;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::{ConnCtx, HttpListener, first_bytes};
use crate::serve::forward::body::ProxyBody;
use crate::serve::forward::upgrade::splice;
use crate::serve::idle::{IdleTimeout, InFlight};

type Io<S> = TokioIo<Rewound<IdleTimeout<S>>>;

/// The shortest round. A client that keeps requesting is between requests after every
/// response, for microseconds: releasing hyper's state there would make each request pay
/// for a new hyper connection and its buffers. A round this long is ended at the client's
/// next pause, so a busy connection makes a new one a few times a second at most, and an
/// idle one gives its buffers back this long after its round began.
const ROUND: Duration = Duration::from_millis(100);

/// How one hyper connection over the client's stream ended.
enum Ended<S, Svc> {
    /// The client is between requests: the stream and the service, to serve its next.
    Released(Parts<Io<S>, Svc>),
    /// A 101 was sent: the stream now carries the upgraded protocol.
    Upgraded(Parts<Io<S>, Svc>),
    /// hyper closed the connection (the client's or hyper's doing, or the drain), or it
    /// failed.
    Closed(Result<(), hyper::Error>),
}

/// Serves an HTTP/1.1 connection, round after round, until it ends: between rounds it
/// holds no HTTP state but `ctx`. One wait for the drain for the whole connection:
/// registering one takes a lock.
pub(super) async fn serve<S, Svc>(
    listener: &Arc<HttpListener>,
    mut stream: Rewound<IdleTimeout<S>>,
    ctx: &ConnCtx,
    mut service: Svc,
    shutdown: &CancellationToken,
) where
    S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
    Svc: HttpService<Incoming, ResBody = ProxyBody> + Unpin,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    Svc::Future: Unpin,
{
    let mut cancelled = std::pin::pin!(shutdown.cancelled());
    // A drain that begins later reaches a round through `cancelled`.
    let mut draining = shutdown.is_cancelled();
    loop {
        // Boxed: what a round holds is freed when the client goes idle.
        let round = round(listener, stream, ctx, service, draining, cancelled.as_mut());
        (stream, service) = match Box::pin(round).await {
            Some(idle) => idle,
            None => return,
        };
        draining = false;
        if !next_request(&mut stream, cancelled.as_mut()).await {
            return;
        }
    }
}

/// Serves the client's requests with a new hyper connection until the client is between
/// requests (then the stream and the service, hyper's state freed) or the connection is
/// over (closed, failed, or upgraded and spliced to its end). `draining`: the drain has
/// begun; the request the client is sending is served, then the connection closes
/// (`Connection: close`).
async fn round<S, Svc>(
    listener: &Arc<HttpListener>,
    stream: Rewound<IdleTimeout<S>>,
    ctx: &ConnCtx,
    service: Svc,
    draining: bool,
    cancelled: Pin<&mut WaitForCancellationFuture<'_>>,
) -> Option<(Rewound<IdleTimeout<S>>, Svc)>
where
    S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
    Svc: HttpService<Incoming, ResBody = ProxyBody> + Unpin,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    Svc::Future: Unpin,
{
    let http = if draining {
        &listener.http1_last
    } else {
        &listener.http1
    };
    match run(http, stream, service, &ctx.in_flight, cancelled).await {
        Ended::Closed(Ok(())) => None,
        Ended::Closed(Err(e)) => {
            listener.ended_badly(&e, false);
            None
        }
        Ended::Upgraded(parts) => {
            let client = Rewound {
                prefix: parts.read_buf,
                inner: parts.io.into_inner(),
            };
            let upstream = ctx.upgrade.lock().ok().and_then(|mut u| u.take());
            if let Some(upstream) = upstream {
                splice(client, upstream, &listener.name).await;
            }
            None
        }
        Ended::Released(parts) => {
            tracing::trace!(
                listener = %listener.name,
                read_ahead = parts.read_buf.len(),
                "between requests: the HTTP/1.1 connection's state given back"
            );
            let mut stream = parts.io.into_inner();
            if !parts.read_buf.is_empty() {
                // The start of a pipelined request hyper had read.
                ctx.in_flight.head_started();
                stream.prefix = parts.read_buf;
            }
            Some((stream, parts.service))
        }
    }
}

/// Waits, between requests, for the client's next bytes: whether they came. On the drain
/// the connection closes at once, as hyper closes an idle one; the client's own close,
/// and `idle_timeout`, end it too.
async fn next_request<S>(
    stream: &mut Rewound<IdleTimeout<S>>,
    cancelled: Pin<&mut WaitForCancellationFuture<'_>>,
) -> bool
where
    S: AsyncBufRead + AsyncWrite + Unpin,
{
    tokio::select! {
        biased;
        talked = first_bytes(stream) => matches!(talked, Ok(true)),
        () = cancelled => {
            let _ = stream.shutdown().await;
            false
        }
    }
}

/// Runs one hyper connection until it ends, the client is between requests once the round
/// is `ROUND` old, or the drain asks it to finish (in-flight requests complete, then it
/// closes). The connection is made here, in the round's (boxed) state: one allocation per
/// round, and no copy.
async fn run<S, Svc>(
    http: &http1::Builder,
    stream: Rewound<IdleTimeout<S>>,
    service: Svc,
    in_flight: &InFlight,
    mut cancelled: Pin<&mut WaitForCancellationFuture<'_>>,
) -> Ended<S, Svc>
where
    S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
    Svc: HttpService<Incoming, ResBody = ProxyBody> + Unpin,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    Svc::Future: Unpin,
{
    let mut conn = http.serve_connection(TokioIo::new(stream), service);
    // Polled only once the client is between requests: the timer is registered once per
    // round, not per request.
    let mut round_over = std::pin::pin!(tokio::time::sleep(ROUND));
    let mut draining = false;
    let closed = std::future::poll_fn(|cx| {
        loop {
            if let Poll::Ready(r) = Pin::new(&mut conn).poll(cx) {
                return Poll::Ready(Some(r));
            }
            if draining {
                return Poll::Pending;
            }
            if cancelled.as_mut().poll(cx).is_ready() {
                Pin::new(&mut conn).graceful_shutdown();
                draining = true;
                continue;
            }
            // hyper is idle: its `graceful_shutdown` now ends the connection at once
            // without writing a byte.
            return if in_flight.between_requests() && round_over.as_mut().poll(cx).is_ready() {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
    })
    .await;
    match closed {
        // hyper hands a 101's connection over without closing it.
        Some(Ok(())) if in_flight.is_upgraded() => Ended::Upgraded(conn.into_parts()),
        Some(r) => Ended::Closed(r),
        None => {
            Pin::new(&mut conn).graceful_shutdown();
            match std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await {
                Ok(()) => Ended::Released(conn.into_parts()),
                Err(e) => Ended::Closed(Err(e)),
            }
        }
    }
}

/// The client's stream, with the bytes hyper had read and not used put back in front.
pub(super) struct Rewound<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewound<S> {
    pub(super) fn new(inner: S) -> Self {
        Self {
            prefix: Bytes::new(),
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncBufRead + Unpin> AsyncBufRead for Rewound<S> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            Pin::new(&mut this.inner).poll_fill_buf(cx)
        } else {
            Poll::Ready(Ok(&this.prefix))
        }
    }

    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        if self.prefix.is_empty() {
            Pin::new(&mut self.inner).consume(amt);
        } else {
            self.prefix.advance(amt);
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
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

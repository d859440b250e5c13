//! Keep-alive HTTP/1.1 connections to one upstream, reused across requests and clients.
//!
//! hyper-util's pooled client costs about 8,000 instructions per request on the proxy's
//! hot path (profiled with callgrind, see `benches/RESULTS.md`): it hashes a pool key, takes
//! a mutex shared by every thread, and spawns a task per response to wait until the
//! connection can be reused. This pool belongs to one upstream (no key), keeps a stack of
//! idle connections per worker thread (`crate::workers::current`; only that worker takes
//! its mutex), and takes a connection back when the response body has ended, when it is
//! known to be reusable: no task, no waiting.
//!
//! An idle connection is reused for at most [`IDLE_TIMEOUT`] after its last response, and
//! one the upstream closed meanwhile is noticed and dropped before use. A request that a
//! reused connection could not even start sending (the upstream closed it at that moment)
//! is sent once more on a new connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tower_service::Service;

use super::http::UpstreamBody;
use crate::wake_gate::GatedRead;

/// How long an idle upstream connection may be reused; below common upstream keep-alive
/// timeouts (nginx 75 s) so the upstream never closes one under a request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// How long a connection given back after a complete exchange may take to be ready for the
/// next request; hyper gets there within microseconds unless the connection is stuck.
const READY_WAIT: Duration = Duration::from_secs(1);

/// Idle connections kept per worker thread and upstream; beyond, a finished connection is
/// closed. Above the concurrency one upstream sees on one thread in normal use.
const MAX_IDLE_PER_THREAD: usize = 256;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request did not get a response from the upstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// TCP connect or TLS handshake failed (or timed out).
    #[error("cannot connect: {0}")]
    Connect(BoxError),
    /// The HTTP/1.1 exchange failed (the upstream closed or sent something invalid).
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

struct Idle {
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
}

/// The idle HTTP/1.1 connections of one upstream.
pub struct H1Pool {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority` of the upstream, what the connector connects to.
    connect_to: Uri,
    idle: Box<[Mutex<Vec<Idle>>]>,
}

/// A connection whose response is on its way: give it back with [`H1Pool::put_back`]
/// once the response body has ended.
pub struct Lease {
    sender: http1::SendRequest<UpstreamBody>,
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool")
            .field("connect_to", &self.connect_to)
            .finish_non_exhaustive()
    }
}

/// Starts HTTP/1.1 on `io`, its connection driven by a task of its own.
async fn handshake<I>(io: I) -> Result<http1::SendRequest<UpstreamBody>, PoolError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

impl H1Pool {
    /// A pool with one idle stack for each of `workers` worker threads.
    pub fn new(connector: HttpsConnector<HttpConnector>, connect_to: Uri, workers: usize) -> Self {
        Self {
            connector,
            connect_to,
            idle: (0..workers.max(1))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
        }
    }

    /// This worker's stack.
    fn stack(&self) -> &Mutex<Vec<Idle>> {
        &self.idle[crate::workers::current() % self.idle.len()]
    }

    /// The most recently used idle connection that is still open and fresh.
    fn take_idle(&self) -> Option<http1::SendRequest<UpstreamBody>> {
        let mut stack = self.stack().lock().unwrap_or_else(|e| e.into_inner());
        while let Some(idle) = stack.pop() {
            if !idle.sender.is_closed() && idle.since.elapsed() < IDLE_TIMEOUT {
                return Some(idle.sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<http1::SendRequest<UpstreamBody>, PoolError> {
        let io = self
            .connector
            .clone()
            .call(self.connect_to.clone())
            .await
            .map_err(PoolError::Connect)?;
        match io {
            // hyper tries reads that find nothing several times per request (`GatedRead`).
            MaybeHttpsStream::Http(tcp) => {
                handshake(TokioIo::new(GatedRead::new(tcp.into_inner()))).await
            }
            // Gated below TLS or not at all: what TLS decrypted is read without the socket.
            tls @ MaybeHttpsStream::Https(_) => handshake(tls).await,
        }
    }

    /// Sends `req` on an idle connection, or a new one. `req`'s URI is sent as it is: give
    /// it in origin form (path and query).
    pub async fn send(
        &self,
        mut req: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        while let Some(mut sender) = self.take_idle() {
            // Put back only once both bodies ended: readiness is usually there already, or
            // a moment away. One still not ready is closing, or stuck writing to an
            // upstream that stopped reading: it is dropped.
            if !sender.is_ready()
                && !matches!(
                    tokio::time::timeout(READY_WAIT, sender.ready()).await,
                    Ok(Ok(()))
                )
            {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, Lease { sender })),
                Err(mut e) => match e.take_message() {
                    // Never written: the upstream closed this one; try the next.
                    Some(r) => req = r,
                    None => return Err(PoolError::Http(e.into_error())),
                },
            }
        }
        // Boxed: connecting (TCP, perhaps TLS) is the rare path, and its state is most of
        // this future's size, which every request would otherwise carry and move.
        let mut sender = Box::pin(self.connect()).await?;
        let resp = sender.send_request(req).await?;
        Ok((resp, Lease { sender }))
    }

    /// Takes a connection back after its response body ended (and its request body was
    /// sent). Expired and closed connections are dropped on the way.
    pub fn put_back(&self, lease: Lease) {
        if lease.sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut stack = self.stack().lock().unwrap_or_else(|e| e.into_inner());
        // The bottom of the stack is the longest idle.
        let expired = stack
            .iter()
            .take_while(|i| now.saturating_duration_since(i.since) >= IDLE_TIMEOUT)
            .count();
        stack.drain(..expired);
        if stack.len() < MAX_IDLE_PER_THREAD {
            stack.push(Idle {
                sender: lease.sender,
                since: now,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// A future that counts its polls.
    struct Counted<F> {
        inner: Pin<Box<F>>,
        polls: Arc<AtomicUsize>,
    }

    impl<F: Future> Future for Counted<F> {
        type Output = F::Output;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            self.inner.as_mut().poll(cx)
        }
    }

    /// An upstream that answers one request with `hello` and keeps the connection open.
    async fn one_answer_upstream() -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                .await
                .unwrap();
            // Open until the client closes: a kept-alive upstream connection.
            let _ = sock.read(&mut buf).await;
        });
        addr
    }

    /// Every response of a pooled connection wakes its task once more than it needs, once
    /// per request, unless hyper's body channel forgets the sender's waker when the sender
    /// is dropped: the fix `vendor/hyper` carries (see `vendor/README.md`).
    #[tokio::test]
    async fn an_upstream_connection_sleeps_once_its_response_body_is_read() {
        let addr = one_answer_upstream().await;
        let io = TokioIo::new(TcpStream::connect(addr).await.unwrap());
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
            .await
            .unwrap();
        let polls = Arc::new(AtomicUsize::new(0));
        tokio::spawn(Counted {
            inner: Box::pin(conn),
            polls: polls.clone(),
        });
        let req = http::Request::get("/")
            .header(http::header::HOST, "upstream")
            .body(Empty::new())
            .unwrap();
        let resp = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let resp = sender.send_request(req).await.unwrap();
            resp.into_body().collect().await.unwrap().to_bytes()
        })
        .await
        .expect("the upstream answered");
        assert_eq!(resp, "hello");
        let after_body = polls.load(Ordering::Relaxed);
        // Anything that woke the connection now (nothing should) gets its poll meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(
            polls.load(Ordering::Relaxed),
            after_body,
            "an idle upstream connection is not polled after its response body was read"
        );
        drop(sender);
    }
}

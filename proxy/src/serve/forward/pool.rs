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
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::http::UpstreamBody;

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
        handshake(io).await
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

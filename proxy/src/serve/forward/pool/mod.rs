//! The connections to one HTTP upstream, per worker thread.
//!
//! Every request goes upstream on a connection of the worker that serves its client, so a
//! connection and everything it causes stay on one thread (`crate::serve::workers`). Each
//! worker keeps, per upstream:
//! - a stack of idle HTTP/1.1 connections, the most recently used on top. A connection is
//!   taken for one exchange and given back when the response body (and the request body)
//!   ended; it is reused for at most the idle timeout after that, and closed when it passes
//!   it even if no request comes (a timer task per worker runs while the stack is not empty).
//! - at most one HTTP/2 connection, when the upstream chose `h2` by ALPN (or was configured
//!   for it): every request of the worker is a stream on it while it is open.
//!
//! A request that a reused HTTP/1.1 connection could not even start sending (the upstream
//! closed it at that moment) is sent once more on another connection.
//!
//! An upstream sent a PROXY protocol header (`upstream_proxy_protocol`) learns the client's
//! address once per connection, so its connections belong to one client connection
//! ([`Private`]): kept the same way, in a home of their own that ends with the client's
//! connection.
//!
//! # Layout
//! - `upload.rs`: the request body on its way, and what the exchange learns from it.
//! - `private.rs`: a client connection's own connections, opened with the header.

mod private;
mod upload;

pub use private::{Private, SendsHeader};
pub use upload::{Upload, UpstreamBody};

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower_service::Service;

/// How long a connection given back after a complete exchange may take to be ready for the
/// next request; hyper gets there within microseconds unless the connection is stuck.
const READY_WAIT: Duration = Duration::from_secs(1);

/// Idle connections kept per worker thread and upstream; beyond, a finished connection is
/// closed. Above the concurrency one upstream sees on one thread in normal use.
const MAX_IDLE_PER_WORKER: usize = 256;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request did not get a response from the upstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// TCP connect or TLS handshake failed (or timed out).
    #[error("cannot connect: {0}")]
    Connect(BoxError),
    /// The HTTP exchange failed (the upstream closed or sent something invalid).
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

struct Idle {
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
}

/// One worker's connections to the upstream (or one client's, see [`Private`]).
#[derive(Default)]
struct WorkerConns {
    idle: Vec<Idle>,
    h2: Option<http2::SendRequest<UpstreamBody>>,
    /// A task closes idle connections as they expire while this is set.
    reaping: bool,
}

/// The connections to one upstream; see the module doc.
pub struct UpstreamPool {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority` of the upstream, what the connector connects to.
    connect_to: Uri,
    /// Plain `http://` upstreams configured for HTTP/2 (prior knowledge).
    h2_prior_knowledge: bool,
    idle_timeout: Duration,
    workers: Conns,
    /// How connections that start with a PROXY protocol header are opened.
    sends_header: Option<SendsHeader>,
}

/// Homes for connections: one per worker thread, or the one of a [`Private`].
type Conns = Arc<[Mutex<WorkerConns>]>;

/// Where a request's connections are kept and given back to.
struct Home<'a> {
    conns: &'a Conns,
    index: usize,
}

impl Home<'_> {
    /// Only the tasks of one worker (or one client connection) take this lock.
    fn lock(&self) -> MutexGuard<'_, WorkerConns> {
        self.conns[self.index]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently used idle connection that is still open and fresh.
    fn take_idle(&self, idle_timeout: Duration) -> Option<http1::SendRequest<UpstreamBody>> {
        let mut mine = self.lock();
        while let Some(idle) = mine.idle.pop() {
            if !idle.sender.is_closed() && idle.since.elapsed() < idle_timeout {
                return Some(idle.sender);
            }
        }
        None
    }

    /// The HTTP/2 connection, while it is open.
    fn h2(&self) -> Option<http2::SendRequest<UpstreamBody>> {
        let mut mine = self.lock();
        match &mine.h2 {
            Some(s) if !s.is_closed() => Some(s.clone()),
            Some(_) => {
                mine.h2 = None;
                None
            }
            None => None,
        }
    }
}

/// An HTTP/1.1 connection whose response is on its way: give it back with
/// [`UpstreamPool::put_back`] once the response body has ended. (An HTTP/2 stream needs
/// nothing given back.)
pub struct Lease {
    sender: http1::SendRequest<UpstreamBody>,
    /// The client connection's own home, for a [`Private`] connection.
    private: Option<Conns>,
}

impl std::fmt::Debug for UpstreamPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamPool")
            .field("connect_to", &self.connect_to)
            .finish_non_exhaustive()
    }
}

/// What a new connection speaks.
enum Connected {
    Http1(http1::SendRequest<UpstreamBody>),
    Http2(http2::SendRequest<UpstreamBody>),
}

impl UpstreamPool {
    /// A pool with connections for each of `workers` worker threads; with `sends_header`,
    /// every connection is a client's own and starts with a PROXY protocol header.
    pub fn new(
        connector: HttpsConnector<HttpConnector>,
        connect_to: Uri,
        h2_prior_knowledge: bool,
        idle_timeout: Duration,
        workers: usize,
        sends_header: Option<SendsHeader>,
    ) -> Self {
        Self {
            connector,
            connect_to,
            h2_prior_knowledge,
            idle_timeout,
            workers: (0..workers.max(1))
                .map(|_| Mutex::default())
                .collect::<Vec<_>>()
                .into(),
            sends_header,
        }
    }

    /// Whether connections start with a PROXY protocol header: each client connection
    /// then needs its [`Private`].
    pub fn sends_header(&self) -> bool {
        self.sends_header.is_some()
    }

    /// The client connection's own home, else the current worker's.
    fn home<'a>(&'a self, private: Option<&'a Private>) -> Home<'a> {
        match private {
            Some(p) => Home {
                conns: &p.conns,
                index: 0,
            },
            None => Home {
                conns: &self.workers,
                index: crate::serve::workers::current() % self.workers.len(),
            },
        }
    }

    async fn connect(
        &self,
        home: &Home<'_>,
        private: Option<&Private>,
    ) -> Result<Connected, PoolError> {
        let io = match (&self.sends_header, private) {
            (Some(sends), Some(private)) => sends.connect(&self.connect_to, private).await,
            _ => self.connector.clone().call(self.connect_to.clone()).await,
        }
        .map_err(PoolError::Connect)?;
        let h2 = match &io {
            MaybeHttpsStream::Https(tls) => tls.inner().get_ref().1.alpn_protocol() == Some(b"h2"),
            MaybeHttpsStream::Http(_) => self.h2_prior_knowledge,
        };
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended with an error");
                }
            });
            home.lock().h2 = Some(sender.clone());
            return Ok(Connected::Http2(sender));
        }
        let (sender, conn) = http1::handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(Connected::Http1(sender))
    }

    /// `req` as HTTP/2 sends it: the URI absolute, naming the upstream.
    fn for_h2(&self, mut req: Request<UpstreamBody>) -> Request<UpstreamBody> {
        let mut parts = self.connect_to.clone().into_parts();
        parts.path_and_query = Some(path_and_query(req.uri()));
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        req
    }

    /// Sends `req` on this worker's HTTP/2 connection, an idle HTTP/1.1 one, or a new one,
    /// with its URI in the form the connection's protocol takes (HTTP/1.1 origin form, as
    /// clients send it, or absolute for HTTP/2). The lease is `None` for HTTP/2. With
    /// `private` (the pool [`sends_header`](Self::sends_header)), the connections are that
    /// client connection's own instead of the worker's.
    pub async fn send(
        &self,
        mut req: Request<UpstreamBody>,
        private: Option<&Private>,
    ) -> Result<(Response<Incoming>, Option<Lease>), PoolError> {
        let home = self.home(private);
        let lease = |sender| Lease {
            sender,
            private: private.map(|p| p.conns.clone()),
        };
        if let Some(mut sender) = home.h2() {
            sender.ready().await?;
            return Ok((sender.send_request(self.for_h2(req)).await?, None));
        }
        if req.uri().scheme().is_some() || req.uri().path_and_query().is_none() {
            *req.uri_mut() = Uri::from(path_and_query(req.uri()));
        }
        while let Some(mut sender) = home.take_idle(self.idle_timeout) {
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
                Ok(resp) => return Ok((resp, Some(lease(sender)))),
                Err(mut e) => match e.take_message() {
                    // Never written: the upstream closed this one; try the next.
                    Some(r) => req = r,
                    None => return Err(PoolError::Http(e.into_error())),
                },
            }
        }
        // Boxed: connecting (TCP, perhaps TLS) is the rare path, and its state is most of
        // this future's size, which every request would otherwise carry and move.
        match Box::pin(self.connect(&home, private)).await? {
            Connected::Http1(mut sender) => {
                let resp = sender.send_request(req).await?;
                Ok((resp, Some(lease(sender))))
            }
            Connected::Http2(mut sender) => {
                Ok((sender.send_request(self.for_h2(req)).await?, None))
            }
        }
    }

    /// Takes a connection back after its response body ended (and its request body was
    /// sent). Closed connections are dropped.
    pub fn put_back(&self, lease: Lease) {
        if lease.sender.is_closed() {
            return;
        }
        let home = match &lease.private {
            Some(conns) => Home { conns, index: 0 },
            None => self.home(None),
        };
        let mut mine = home.lock();
        if mine.idle.len() >= MAX_IDLE_PER_WORKER {
            return;
        }
        mine.idle.push(Idle {
            sender: lease.sender,
            since: Instant::now(),
        });
        // A body dropped as its runtime shuts down has no runtime left to reap on.
        if !mine.reaping
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            mine.reaping = true;
            runtime.spawn(reap(
                Arc::downgrade(home.conns),
                home.index,
                self.idle_timeout,
            ));
        }
    }
}

/// The path and query of `uri`, `/` when it has none (`OPTIONS *` aside, every request
/// has one).
fn path_and_query(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// Closes a worker's idle connections as they pass `idle_timeout`, until none is left or
/// the pool is gone (a reload replaced it: its connections close as it is dropped; or the
/// client connection of a [`Private`] ended).
async fn reap(workers: Weak<[Mutex<WorkerConns>]>, index: usize, idle_timeout: Duration) {
    loop {
        let next = {
            let Some(workers) = workers.upgrade() else {
                return;
            };
            let mut mine = workers[index].lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            // The bottom of the stack is the longest idle.
            let expired = mine
                .idle
                .iter()
                .take_while(|i| now.saturating_duration_since(i.since) >= idle_timeout)
                .count();
            // Dropping the sender lets hyper's connection task close the socket.
            mine.idle.drain(..expired);
            match mine.idle.first() {
                Some(oldest) => oldest.since + idle_timeout,
                None => {
                    mine.reaping = false;
                    return;
                }
            }
        };
        tokio::time::sleep_until(next.into()).await;
    }
}

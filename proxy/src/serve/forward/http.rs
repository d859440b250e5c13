//! HTTP mode: hyper serves HTTP/1.1 and HTTP/2 to the client; requests go to the upstream
//! over keep-alive HTTP/1.1 connections from [`super::pool`] (or hyper-util's client when the
//! upstream may speak HTTP/2). Bodies stream both ways; 101 upgrades (WebSocket) are
//! spliced end to end.

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Listener;
use crate::idle::{IdleTimeout, InFlight, InFlightGuard};
use crate::listener::ConnectionSlot;
use crate::metrics::ListenerMetrics;
use crate::routes::{HttpUpstream, Routes, Target};

use super::pool::{Lease, PoolError};

/// The body Gatehouse answers with: the upstream's, streamed, or a short one of its own.
/// When metrics or the access log are on, it counts the bytes it passes and records the
/// request when the body ends (or the client goes away).
pub struct ProxyBody {
    inner: Either<Incoming, Full<Bytes>>,
    completion: Option<Completion>,
    /// The request counts as in flight (no idle timeout) until its response body ends.
    busy: Option<InFlightGuard>,
    /// The upstream connection, given back to its pool when the body has ended.
    lease: Option<Returnable>,
}

/// An upstream connection that can serve another request once this exchange is over.
struct Returnable {
    lease: Lease,
    target: Arc<Target>,
    /// The request body's progress; `None` when it had none.
    upload: Option<Arc<Upload>>,
}

impl Returnable {
    fn put_back(self) {
        let uploaded = self.upload.is_none_or(|u| u.done.load(Ordering::Relaxed));
        if let (true, Some(HttpUpstream::Http1(pool))) = (uploaded, &self.target.http) {
            pool.put_back(self.lease);
        }
    }
}

/// How far a request body has gone upstream.
#[derive(Default)]
struct Upload {
    /// Frames passed: the upstream timeout runs from the last one.
    frames: AtomicU64,
    /// The whole body was passed.
    done: AtomicBool,
}

/// A request body on its way upstream; counts the frames it passes so the upstream
/// timeout can tell a long upload from a silent upstream, and notes its end so the
/// connection is reused only after a complete exchange.
pub struct UpstreamBody {
    inner: Incoming,
    progress: Option<Arc<Upload>>,
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Some(p) = &self.progress {
            match &polled {
                Poll::Ready(Some(Ok(_))) => {
                    p.frames.fetch_add(1, Ordering::Relaxed);
                }
                Poll::Ready(None) => p.done.store(true, Ordering::Relaxed),
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// What is recorded when a response body is done.
struct Completion {
    start: Instant,
    status: StatusCode,
    bytes: u64,
    metrics: &'static ListenerMetrics,
    access: Option<Box<AccessEntry>>,
}

/// The fields of an access log line known when the response starts.
struct AccessEntry {
    listener: Arc<str>,
    sni: Option<Arc<str>>,
    method: Method,
    path: String,
    upstream: Arc<Target>,
}

impl Completion {
    fn finish(self) {
        let elapsed = self.start.elapsed();
        self.metrics.request(self.status, elapsed.as_secs_f64());
        if let Some(a) = self.access {
            tracing::info!(
                target: "access",
                listener = %a.listener,
                sni = a.sni.as_deref().unwrap_or("-"),
                method = %a.method,
                path = %a.path,
                status = self.status.as_u16(),
                upstream = %a.upstream.upstream,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                bytes = self.bytes,
                "request"
            );
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // hyper does not poll a body that says it is over (empty, or all its bytes read).
        if let Some(l) = self.lease.take()
            && hyper::body::Body::is_end_stream(&self.inner)
        {
            l.put_back();
        }
        if let Some(c) = self.completion.take() {
            c.finish();
        }
    }
}

impl ProxyBody {
    /// The response is over: record it and let the idle timer run.
    fn end(&mut self) {
        if let Some(c) = self.completion.take() {
            c.finish();
        }
        self.busy = None;
    }
}

impl hyper::body::Body for ProxyBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(c), Some(data)) = (self.completion.as_mut(), frame.data_ref()) {
                    c.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(l) = self.lease.take() {
                    l.put_back();
                }
                self.end();
            }
            Poll::Ready(Some(Err(_))) => {
                self.lease = None;
                self.end();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// What every connection of one HTTP listener shares. Built once at startup.
pub struct HttpListener {
    pub name: Arc<str>,
    metrics: &'static ListenerMetrics,
    /// One log line per request.
    pub access_log: bool,
    /// For clients that negotiated `http/1.1` (or no ALPN).
    http1: http1::Builder,
    /// For clients that negotiated `h2`; each stream is a task on the connection's worker.
    http2: http2::Builder<TokioExecutor>,
    upstream_timeout: Duration,
    idle_timeout: Duration,
    header_timeout: Duration,
    tracker: TaskTracker,
}

impl HttpListener {
    pub fn new(
        listener: &Listener,
        tracker: TaskTracker,
        metrics: &'static ListenerMetrics,
        access_log: bool,
    ) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            // `header_timeout` is enforced by `IdleTimeout`, without a timer per request.
            .header_read_timeout(None)
            // Larger request headers get 431 from hyper.
            .max_header_size(listener.max_header_size)
            .max_buf_size(listener.max_header_size.max(8192));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            // No keep-alive pings: they would count as activity; `IdleTimeout` closes
            // quiet (and dead) connections instead.
            .max_header_list_size(u32::try_from(listener.max_header_size).unwrap_or(u32::MAX));
        Self {
            name: listener.name.as_str().into(),
            metrics,
            access_log,
            http1,
            http2,
            upstream_timeout: listener.upstream_timeout,
            idle_timeout: listener.idle_timeout,
            header_timeout: listener.header_timeout,
            tracker,
        }
    }

    /// Serves one TLS connection until the client is done or shutdown drains it; `h2` is
    /// whether the client negotiated HTTP/2 by ALPN.
    pub async fn serve<S>(
        self: &Arc<Self>,
        stream: S,
        h2: bool,
        conn: Conn,
        shutdown: CancellationToken,
    ) where
        S: AsyncBufRead + AsyncWrite + Unpin + Send + 'static,
    {
        let in_flight = Arc::new(InFlight::default());
        // HTTP/1.1 request heads get `header_timeout` from their first byte (slowloris);
        // hyper's own header timer is off: it cost a timer per request, and it ran while
        // waiting for the next request, which is `idle_timeout`'s job.
        let header_timeout = (!h2).then_some(self.header_timeout);
        let mut stream =
            IdleTimeout::new(stream, self.idle_timeout, header_timeout, in_flight.clone());
        // hyper's connection state (an 8 KiB read and an 8 KiB write buffer for HTTP/1.1) is
        // built when the client starts talking: a client that only connected costs its TLS
        // state alone. Silence here ends as anywhere: `idle_timeout`.
        let first = std::future::poll_fn(|cx| {
            Pin::new(&mut stream)
                .poll_fill_buf(cx)
                .map_ok(|b| !b.is_empty())
        });
        tokio::select! {
            r = first => match r {
                Ok(true) => {}
                // Closed, or idle too long, before a request.
                _ => return,
            },
            _ = shutdown.cancelled() => return,
        }
        let conn_ctx = Arc::new(ConnCtx {
            in_flight,
            listener: self.clone(),
            peer: HeaderValue::from_str(&conn.peer.to_canonical().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            conn,
            authority: OnceLock::new(),
        });
        // Boxed: hyper moves the future (into each HTTP/2 stream, into the connection per
        // HTTP/1.1 request); a pointer moves cheaper than the whole exchange's state.
        let service = hyper::service::service_fn(move |req| {
            let ctx = conn_ctx.clone();
            Box::pin(async move {
                let busy = ctx.in_flight.enter();
                Ok::<_, Infallible>(ctx.forward(req, busy).await)
            })
        });
        // The protocol is known from ALPN: no sniffing of the first bytes, and each
        // connection is boxed at its own protocol's size.
        let io = TokioIo::new(stream);
        let result = if h2 {
            let conn = Box::pin(self.http2.serve_connection(io, service));
            drain_on(conn, shutdown, |c| c.as_mut().graceful_shutdown()).await
        } else {
            let conn = Box::pin(self.http1.serve_connection(io, service).with_upgrades());
            drain_on(conn, shutdown, |c| c.as_mut().graceful_shutdown()).await
        };
        if let Err(e) = result {
            tracing::debug!(listener = %self.name, error = %e, "connection ended with an error");
        }
    }
}

/// Runs a connection to its end; on `shutdown`, asks it to finish gracefully (in-flight
/// requests complete, HTTP/2 clients get GOAWAY) and waits for that.
async fn drain_on<C: Future + Unpin>(
    mut conn: C,
    shutdown: CancellationToken,
    graceful: impl FnOnce(&mut C),
) -> C::Output {
    tokio::select! {
        res = &mut conn => res,
        _ = shutdown.cancelled() => {
            graceful(&mut conn);
            conn.await
        }
    }
}

/// What the listener knows of one accepted connection.
pub struct Conn {
    pub peer: IpAddr,
    /// The TLS server name, kept when the access log or SNI routes need it.
    pub sni: Option<Arc<str>>,
    /// The upstream chosen by the server name.
    pub target: Arc<Target>,
    /// The listener's routes, to notice requests meant for another upstream.
    pub routes: Routes,
    /// Released when the connection and anything it was upgraded to are gone.
    pub slot: Arc<ConnectionSlot>,
}

struct ConnCtx {
    listener: Arc<HttpListener>,
    /// Requests being answered; the idle timer does not run while there are any.
    in_flight: Arc<InFlight>,
    /// The client's address, rendered once per connection.
    peer: HeaderValue,
    conn: Conn,
    /// The `Host` header made from the `:authority` of the connection's first HTTP/2
    /// request: its later requests nearly always name the same one and share this value
    /// instead of copying the name into a new buffer each.
    authority: OnceLock<HeaderValue>,
}

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), and `Upgrade`, which
/// is passed on only with a granted or requested upgrade.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Which of [`HOP_BY_HOP`] a message carries, one bit each: one pass over the names present
/// instead of a hashed lookup per hop-by-hop name.
fn hop_by_hop_present(headers: &HeaderMap) -> u16 {
    headers.keys().fold(0, |mask, name| {
        match HOP_BY_HOP.iter().position(|h| h == name) {
            Some(i) => mask | 1 << i,
            None => mask,
        }
    })
}
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The tokens of the `Connection` header, trimmed, empty ones skipped.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether a `Connection` token names a header (anything but `keep-alive`, `close` and
/// `upgrade`).
fn names_a_header(token: &str) -> bool {
    !["keep-alive", "close", "upgrade"]
        .iter()
        .any(|s| token.eq_ignore_ascii_case(s))
}

/// Removes hop-by-hop headers, including those the Connection header names. Returns the
/// `Upgrade` value when the message asks for (or grants) an upgrade.
fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let present = hop_by_hop_present(headers);
    if present == 0 {
        // Most messages: HTTP/2 has none, HTTP/1.1 requests rarely any.
        return None;
    }
    // Bit 0 is `Connection`; usually `keep-alive` (or close/upgrade), naming no header.
    let (asks_upgrade, names_others) = if present & 1 != 0 {
        connection_tokens(headers).fold((false, false), |(upgrade, names), t| {
            (
                upgrade || t.eq_ignore_ascii_case("upgrade"),
                names || names_a_header(t),
            )
        })
    } else {
        (false, false)
    };
    let upgrade = if asks_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    if names_others {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter(|t| names_a_header(t))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & 1 << i != 0 {
            headers.remove(name);
        }
    }
    if let Some(proto) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto.clone());
    }
    upgrade
}

/// An answer Gatehouse gives itself instead of the upstream's.
struct Refusal(StatusCode, &'static str);

fn plain(status: StatusCode, text: &'static str) -> Response<Either<Incoming, Full<Bytes>>> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl ConnCtx {
    /// Forwards one request and wraps the answer so it is counted and logged when done.
    async fn forward(&self, req: Request<Incoming>, busy: InFlightGuard) -> Response<ProxyBody> {
        let listener = &self.listener;
        let recording = listener.metrics.enabled() || listener.access_log;
        let start = recording.then(Instant::now);
        let access = listener.access_log.then(|| {
            Box::new(AccessEntry {
                listener: listener.name.clone(),
                sni: self.conn.sni.clone(),
                method: req.method().clone(),
                path: req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .to_owned(),
                upstream: self.conn.target.clone(),
            })
        });
        let (resp, lease) = self.exchange(req).await;
        let completion = start.map(|start| Completion {
            start,
            status: resp.status(),
            bytes: 0,
            metrics: listener.metrics,
            access,
        });
        resp.map(|inner| ProxyBody {
            inner,
            completion,
            busy: Some(busy),
            lease,
        })
    }

    /// `authority` as a `Host` value: the connection's kept one when it names the same,
    /// else a new one, kept if it is the connection's first.
    fn authority_header(&self, authority: &str) -> Option<HeaderValue> {
        let kept = self.authority.get();
        if let Some(kept) = kept.filter(|k| k.as_bytes() == authority.as_bytes()) {
            return Some(kept.clone());
        }
        let value = HeaderValue::from_str(authority).ok()?;
        if kept.is_none() {
            let _ = self.authority.set(value.clone());
        }
        Some(value)
    }

    /// Whether the request names a host that the listener routes to another upstream than
    /// this connection's (a browser reusing a connection for another name its certificate
    /// covers): such a request must not reach this upstream.
    fn misdirected(&self, host: Option<&HeaderValue>) -> bool {
        let (Some(sni), Some(host)) = (&self.conn.sni, host.and_then(|h| h.to_str().ok())) else {
            return false;
        };
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        if name.eq_ignore_ascii_case(sni) {
            return false;
        }
        let routes = self.conn.routes.load();
        routes.has_routes()
            && !Arc::ptr_eq(
                routes.pick(Some(&name.to_ascii_lowercase())),
                routes.pick(Some(sni)),
            )
    }

    /// The upstream's response (or Gatehouse's own), and the connection to give back to the
    /// pool once the response body has ended.
    async fn exchange(
        &self,
        req: Request<Incoming>,
    ) -> (Response<Either<Incoming, Full<Bytes>>>, Option<Returnable>) {
        match self.try_exchange(req).await {
            Ok((resp, lease)) => (resp.map(Either::Left), lease),
            Err(Refusal(status, text)) => (plain(status, text), None),
        }
    }

    async fn try_exchange(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<(Response<Incoming>, Option<Returnable>), Refusal> {
        let target = &self.conn.target;
        let upstream = &target.upstream;
        let listener = &self.listener;
        let (host, from_authority) = match req.headers().get(header::HOST) {
            Some(h) => (Some(h.clone()), false),
            None => (
                req.uri()
                    .authority()
                    .and_then(|a| self.authority_header(a.as_str())),
                true,
            ),
        };
        if self.misdirected(host.as_ref()) {
            return Err(Refusal(
                StatusCode::MISDIRECTED_REQUEST,
                "421 Misdirected Request: open a new connection for this host\n",
            ));
        }
        let Some(http) = &target.http else {
            return Err(Refusal(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: no HTTP upstream\n",
            ));
        };
        let is_http1 = req.version() <= Version::HTTP_11;
        let headers = req.headers_mut();
        let upgrade = strip_hop_by_hop(headers).filter(|_| is_http1);
        match &host {
            Some(host) => {
                if from_authority {
                    // HTTP/2 carries it as :authority; the upstream speaks HTTP/1.1.
                    headers.insert(header::HOST, host.clone());
                }
                headers.insert(X_FORWARDED_HOST, host.clone());
            }
            None => {
                if let Ok(h) = HeaderValue::from_str(upstream.authority.as_str()) {
                    headers.insert(header::HOST, h);
                }
            }
        }
        // One hashed lookup whether or not the client sent the header.
        match headers.entry(X_FORWARDED_FOR) {
            Entry::Occupied(mut hops) => {
                // Every earlier hop, in order, then the client.
                let mut v = Vec::new();
                for prev in hops.iter() {
                    v.extend_from_slice(prev.as_bytes());
                    v.extend_from_slice(b", ");
                }
                v.extend_from_slice(self.peer.as_bytes());
                if let Ok(v) = HeaderValue::from_bytes(&v) {
                    hops.insert(v);
                }
            }
            Entry::Vacant(none) => {
                none.insert(self.peer.clone());
            }
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        *req.version_mut() = Version::HTTP_11;
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));

        // The upstream has `upstream_timeout` to answer after the last request bytes it
        // received: a long upload is not cut while its body is still flowing.
        let upload =
            (!hyper::body::Body::is_end_stream(req.body())).then(|| Arc::new(Upload::default()));
        let progress = upload.clone();
        let (mut resp, lease) = match http {
            HttpUpstream::Http1(pool) => {
                // Origin form, as HTTP/1.1 clients send it (kept as is, not rebuilt).
                if req.uri().scheme().is_some() || req.uri().path_and_query().is_none() {
                    let path = req
                        .uri()
                        .path_and_query()
                        .cloned()
                        .unwrap_or_else(|| PathAndQuery::from_static("/"));
                    *req.uri_mut() = Uri::from(path);
                }
                let req = req.map(|inner| UpstreamBody { inner, progress });
                let answer = std::pin::pin!(pool.send(req));
                match self.in_time(answer, upload.as_deref()).await? {
                    Ok((resp, lease)) => (resp, Some(lease)),
                    Err(PoolError::Connect(e)) => return Err(self.unavailable(&*e, true)),
                    Err(PoolError::Http(e)) => return Err(self.unavailable(&e, false)),
                }
            }
            HttpUpstream::Pooled(client) => {
                let path = req
                    .uri()
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/"));
                *req.uri_mut() = Uri::builder()
                    .scheme(upstream.scheme())
                    .authority(upstream.authority.clone())
                    .path_and_query(path)
                    .build()
                    .map_err(|_| Refusal(StatusCode::BAD_REQUEST, "bad request target\n"))?;
                let req = req.map(|inner| UpstreamBody { inner, progress });
                let answer = std::pin::pin!(client.request(req));
                match self.in_time(answer, upload.as_deref()).await? {
                    Ok(resp) => (resp, None),
                    Err(e) => return Err(self.unavailable(&e, e.is_connect())),
                }
            }
        };
        let granted = strip_hop_by_hop(resp.headers_mut());
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let (Some(client_side), Some(_)) = (client_upgrade, granted) else {
                listener.metrics.upstream_error("protocol");
                tracing::warn!(listener = %listener.name, upstream = %upstream, "upstream switched protocols unasked: 502");
                return Err(Refusal(
                    StatusCode::BAD_GATEWAY,
                    "502 Bad Gateway: the upstream sent an unexpected upgrade\n",
                ));
            };
            let upstream_side = hyper::upgrade::on(&mut resp);
            self.in_flight.upgraded();
            let name = listener.name.clone();
            // The upgraded stream keeps the connection's slot (max_connections,
            // connections_active) until it ends.
            let slot = self.conn.slot.clone();
            listener.tracker.spawn(async move {
                let _slot = slot;
                match tokio::try_join!(client_side, upstream_side) {
                    Ok((c, u)) => {
                        let mut c = TokioIo::new(c);
                        let mut u = TokioIo::new(u);
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                    Err(e) => {
                        tracing::debug!(listener = %name, error = %e, "upgrade failed")
                    }
                }
            });
            // The connection now carries the upgraded stream: it is not reused.
            return Ok((resp, None));
        }
        let lease = lease.map(|lease| Returnable {
            lease,
            target: target.clone(),
            upload,
        });
        Ok((resp, lease))
    }

    /// Waits for the upstream's answer for `upstream_timeout` after the last request body
    /// frame it was given; 504 when it stays silent.
    /// The answer is pinned by the caller: this future holds a pointer to it, not a copy.
    async fn in_time<F: Future>(
        &self,
        mut answer: Pin<&mut F>,
        upload: Option<&Upload>,
    ) -> Result<F::Output, Refusal> {
        let listener = &self.listener;
        let timeout = listener.upstream_timeout;
        let mut timer = std::pin::pin!(tokio::time::sleep(timeout));
        let mut seen = 0;
        let answered = std::future::poll_fn(|cx| {
            loop {
                if let Poll::Ready(r) = answer.as_mut().poll(cx) {
                    return Poll::Ready(Some(r));
                }
                std::task::ready!(timer.as_mut().poll(cx));
                match upload.map(|u| u.frames.load(Ordering::Relaxed)) {
                    // The body is still flowing: the upstream's time starts again.
                    Some(frames) if frames != seen => {
                        seen = frames;
                        timer.as_mut().reset(tokio::time::Instant::now() + timeout);
                    }
                    _ => return Poll::Ready(None),
                }
            }
        });
        let answered = answered.await;
        if let Some(r) = answered {
            return Ok(r);
        }
        listener.metrics.upstream_error("timeout");
        tracing::warn!(listener = %listener.name, upstream = %self.conn.target.upstream, timeout = ?timeout, "upstream timed out: 504");
        Err(Refusal(
            StatusCode::GATEWAY_TIMEOUT,
            "504 Gateway Timeout: the upstream did not answer in time\n",
        ))
    }

    /// Counts and logs an upstream failure; the 502 to answer with.
    fn unavailable(&self, e: &(dyn std::error::Error + 'static), connect: bool) -> Refusal {
        let listener = &self.listener;
        let upstream = &self.conn.target.upstream;
        if let Some(tls) = crate::upstream_tls::rustls_error(e)
            && crate::upstream_tls::is_verify_failure(tls)
        {
            listener.metrics.upstream_error("tls_verify");
            tracing::warn!(listener = %listener.name, upstream = %upstream, error = %tls, "upstream certificate not trusted: 502");
            return Refusal(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the upstream's certificate is not trusted\n",
            );
        }
        listener
            .metrics
            .upstream_error(if connect { "connect" } else { "protocol" });
        let cause = e.source().map(|s| s.to_string()).unwrap_or_default();
        tracing::warn!(listener = %listener.name, upstream = %upstream, error = %e, cause = %cause, "upstream unavailable: 502");
        Refusal(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: the upstream is unavailable\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "hop"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("content-type", "text/plain"),
        ]);
        assert_eq!(strip_hop_by_hop(&mut h), None);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type"], "only end-to-end headers stay");
    }

    #[test]
    fn an_upgrade_keeps_connection_upgrade_and_the_protocol() {
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("host", "portal.test"),
        ]);
        assert_eq!(
            strip_hop_by_hop(&mut h),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["host"], "portal.test");
    }

    #[test]
    fn an_upgrade_header_without_connection_upgrade_is_dropped() {
        let mut h = headers(&[("upgrade", "h2c"), ("accept", "*/*")]);
        assert_eq!(strip_hop_by_hop(&mut h), None);
        assert!(!h.contains_key("upgrade"));
        assert_eq!(h.len(), 1);
    }
}

//! HTTP mode: hyper serves HTTP/1.1 and HTTP/2 to the client; each request goes to the
//! upstream on a connection of [`super::pool`] (HTTP/1.1 or HTTP/2, as the upstream
//! speaks). Bodies stream both ways; 101 upgrades (WebSocket) are spliced end to end.
//!
//! # Layout
//! - `h1`: HTTP/1.1 connections in rounds of requests, hyper's state freed between them.
//! - `blame`: whose fault a failed exchange or connection was (client or upstream).

use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncBufRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use super::ConnectionSlot;
use super::body::{AccessEntry, Completion, ProxyBody, Returnable};
use super::headers::{host_name, request_host, set_forwarded, strip_hop_by_hop};
use super::pool::{PoolError, Private, Upload, UpstreamBody};
use super::routes::{Routes, Target};
use crate::config::Listener;
use crate::ops::metrics::ListenerMetrics;
mod blame;
mod h1;

use crate::serve::client_auth::{self, ClientIdentity};
use crate::serve::idle::{IdleTimeout, InFlight, InFlightGuard, Limits};
use crate::serve::within_drain_grace;
use h1::Rewound;

/// What every connection of one HTTP listener shares. Built once at startup.
pub struct HttpListener {
    pub name: Arc<str>,
    metrics: &'static ListenerMetrics,
    /// One log line per request.
    pub access_log: bool,
    /// For clients that negotiated `http/1.1` (or no ALPN).
    http1: http1::Builder,
    /// The same, without keep-alive: for a client that starts a request during the drain.
    http1_last: http1::Builder,
    /// For clients that negotiated `h2`; each stream is a task on the connection's worker.
    http2: http2::Builder<TokioExecutor>,
    upstream_timeout: Duration,
    idle_timeout: Duration,
    header_timeout: Duration,
    send_timeout: Duration,
}

impl HttpListener {
    pub fn new(listener: &Listener, metrics: &'static ListenerMetrics, access_log: bool) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            // `header_timeout` is enforced by `IdleTimeout`, without a timer per request.
            .header_read_timeout(None)
            // Larger request headers get 431 from hyper.
            .max_header_size(listener.max_header_size)
            .max_buf_size(listener.max_header_size.max(8192));
        let mut http1_last = http1.clone();
        http1_last.keep_alive(false);
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
            http1_last,
            http2,
            upstream_timeout: listener.upstream_timeout,
            idle_timeout: listener.idle_timeout,
            header_timeout: listener.header_timeout,
            send_timeout: listener.send_timeout,
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
        let limits = Limits {
            idle: self.idle_timeout,
            header: (!h2).then_some(self.header_timeout),
            send: self.send_timeout,
            bytes_are_activity: !h2,
        };
        let mut stream = Rewound::new(IdleTimeout::new(stream, limits, in_flight.clone()));
        // hyper's connection state (an 8 KiB read and an 8 KiB write buffer for HTTP/1.1) is
        // built when the client starts talking: a client that only connected costs its TLS
        // state alone. Silence here ends as anywhere: `idle_timeout`.
        // Accepted just before the drain began, its client is sending its request now: it
        // gets a short grace to do so, and an answer rather than a closed connection.
        let talked = within_drain_grace(first_bytes(&mut stream), &shutdown).await;
        if !matches!(talked, Some(Ok(true))) {
            // Closed, idle too long, or silent through the drain's grace.
            return;
        }
        let conn_ctx = Arc::new(ConnCtx {
            in_flight,
            listener: self.clone(),
            peer: HeaderValue::from_str(&conn.peer.to_canonical().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            conn,
            upgrade: Mutex::new(None),
        });
        let ctx = conn_ctx.clone();
        // Boxed: hyper moves the future (into each HTTP/2 stream, into the connection per
        // HTTP/1.1 request); a pointer moves cheaper than the whole exchange's state.
        let service = hyper::service::service_fn(move |req| {
            let ctx = conn_ctx.clone();
            Box::pin(async move {
                let busy = ctx.in_flight.enter();
                Ok::<_, Infallible>(ctx.forward(req, busy).await)
            })
        });
        // The protocol is known from ALPN: no sniffing of the first bytes. Each hyper
        // connection is boxed at its own protocol's size.
        if h2 {
            let mut conn = Box::pin(self.http2.serve_connection(TokioIo::new(stream), service));
            // On the drain, in-flight streams complete and the client gets GOAWAY.
            let result = tokio::select! {
                res = &mut conn => res,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                self.ended_badly(&e, true);
            }
            return;
        }
        h1::serve(self, stream, &ctx, service, &shutdown).await
    }
}

/// Waits for the client's first bytes without taking them: whether any came (false: the
/// client closed).
fn first_bytes<S: AsyncBufRead + Unpin>(
    stream: &mut S,
) -> impl Future<Output = std::io::Result<bool>> + '_ {
    std::future::poll_fn(move |cx| {
        Pin::new(&mut *stream)
            .poll_fill_buf(cx)
            .map_ok(|b| !b.is_empty())
    })
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
    /// Held: released when the connection, and the stream it was upgraded to, are gone.
    pub _slot: Arc<ConnectionSlot>,
    /// The client's certificate, on a listener with `client_auth`.
    pub client: ClientIdentity,
    /// This connection's own upstream connections, when the upstream is sent a PROXY
    /// protocol header naming the client.
    pub private: Option<Private>,
}

struct ConnCtx {
    listener: Arc<HttpListener>,
    /// Requests being answered; the idle timer does not run while there are any.
    in_flight: Arc<InFlight>,
    /// The client's address, rendered once per connection.
    peer: HeaderValue,
    conn: Conn,
    /// The upstream's side of a 101 upgrade, for the connection to splice once hyper has
    /// sent the 101 and handed the client's stream back.
    upgrade: Mutex<Option<OnUpgrade>>,
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
                sni: self.conn.sni.clone(),
                method: req.method().clone(),
                path: req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .to_owned(),
            })
        });
        let (resp, lease) = self.exchange(req).await;
        let completion = start.map(|start| Completion {
            start,
            status: resp.status(),
            bytes: 0,
            access,
        });
        let (parts, inner) = resp.into_parts();
        let mut body = ProxyBody {
            inner,
            completion,
            busy: Some(busy),
            waiting: false,
            lease,
            listener: listener.name.clone(),
            target: self.conn.target.clone(),
            metrics: listener.metrics,
            upstream_timeout: listener.upstream_timeout,
            stall: None,
        };
        // The head waits for the client from now on.
        body.set_waiting(true);
        Response::from_parts(parts, body)
    }

    /// Whether the request names a host that the listener routes to another upstream than
    /// this connection's (a browser reusing a connection for another name its certificate
    /// covers): such a request must not reach this upstream.
    fn misdirected(&self, host: Option<&HeaderValue>) -> bool {
        let (Some(sni), Some(host)) = (&self.conn.sni, host.and_then(|h| h.to_str().ok())) else {
            return false;
        };
        let name = host_name(host);
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

    /// A 101 from the upstream: the client's connection now carries the upgraded stream
    /// (spliced by `h1::round`, in the connection's task and its slot), and the upstream's
    /// is not reused. Unless the client asked for it and the upstream granted it: a 502.
    fn switch_protocols(
        &self,
        resp: &mut Response<Incoming>,
        asked_and_granted: bool,
    ) -> Result<(), Refusal> {
        if !asked_and_granted {
            let listener = &self.listener;
            listener.metrics.upstream_error("protocol");
            tracing::warn!(listener = %listener.name, upstream = %self.conn.target.upstream, "upstream switched protocols unasked: 502");
            return Err(Refusal(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the upstream sent an unexpected upgrade\n",
            ));
        }
        if let Ok(mut slot) = self.upgrade.lock() {
            *slot = Some(hyper::upgrade::on(resp));
        }
        self.in_flight.upgraded();
        Ok(())
    }

    async fn try_exchange(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<(Response<Incoming>, Option<Returnable>), Refusal> {
        let target = &self.conn.target;
        let upstream = &target.upstream;
        let h2 = req.version() == Version::HTTP_2;
        let (host, from_authority) = match request_host(req.uri(), req.headers(), h2) {
            Ok(Some((host, from_authority))) => (Some(host), from_authority),
            Ok(None) => (None, false),
            Err(bad) => {
                self.listener.metrics.client_error("host");
                return Err(Refusal(StatusCode::BAD_REQUEST, bad.answer()));
            }
        };
        if self.misdirected(host.as_ref()) {
            return Err(Refusal(
                StatusCode::MISDIRECTED_REQUEST,
                "421 Misdirected Request: open a new connection for this host\n",
            ));
        }
        let Some(pool) = &target.http else {
            return Err(Refusal(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: no HTTP upstream\n",
            ));
        };
        let is_http1 = req.version() <= Version::HTTP_11;
        let headers = req.headers_mut();
        let upgrade = strip_hop_by_hop(headers).filter(|_| is_http1);
        set_forwarded(
            headers,
            &self.peer,
            host.as_ref().map(|h| (h, from_authority)),
            upstream.authority.as_str(),
        );
        client_auth::set_headers(headers, &self.conn.client);
        *req.version_mut() = Version::HTTP_11;
        let unread = (is_http1 && !hyper::body::Body::is_end_stream(req.body()))
            .then(|| self.in_flight.body_opened());
        // The upstream has `upstream_timeout` to answer after the last request bytes it
        // received: a long upload is not cut while its body is still flowing.
        let upload =
            (!hyper::body::Body::is_end_stream(req.body())).then(|| Arc::new(Upload::default()));
        let progress = upload.clone();
        let req = req.map(|inner| UpstreamBody {
            inner,
            progress,
            unread,
        });
        let answer = std::pin::pin!(pool.send(req, self.conn.private.as_ref()));
        let (mut resp, lease) = match self.in_time(answer, upload.as_deref()).await? {
            Ok(answered) => answered,
            Err(PoolError::Connect(e)) => return Err(self.unavailable(&*e, true)),
            Err(PoolError::Http(_)) if upload.as_ref().is_some_and(|u| u.failed()) => {
                return Err(self.bad_body());
            }
            Err(PoolError::Http(e)) => return Err(self.unavailable(&e, false)),
        };
        let granted = strip_hop_by_hop(resp.headers_mut());
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            self.switch_protocols(&mut resp, upgrade.is_some() && granted.is_some())?;
            return Ok((resp, None));
        }
        let lease = lease.map(|lease| Returnable {
            lease,
            target: target.clone(),
            upload,
        });
        Ok((resp, lease))
    }
}

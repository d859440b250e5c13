//! Upstreams for the proxy tests, on `127.0.0.1:0`, each on the shared test runtime:
//! an HTTP server that reports what it received (and can be slow, hang, count or stream),
//! a WebSocket echo, a TCP echo that answers after the client half-closes, and a port that
//! refuses connections. Their TLS variants are in `upstream/tls.rs`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

mod tls;
pub use tls::{TlsUpstreamSpec, https_upstream, tls_echo_after_eof};

/// The runtime test upstreams and async test clients run on.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime")
    })
}

/// Runs `serve` for every connection accepted on a new `127.0.0.1:0` listener.
pub(crate) fn spawn_server<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    rt().block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(serve(tcp));
            }
        });
        addr
    })
}

/// Longest an upstream ever sleeps, so no test can hang on it.
const MAX_SLEEP: Duration = Duration::from_secs(30);

type Body = BoxBody<Bytes, hyper::Error>;

fn full(text: String) -> Body {
    Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

/// An HTTP/1.1 upstream named `name`. Paths:
/// - `/slow/MS`: answers after MS milliseconds;
/// - `/hang`: answers only after 30 s;
/// - `/count`: reads the whole body and answers `count=N`;
/// - `/download/N`: streams N zero bytes;
/// - `Upgrade: websocket`: a WebSocket echo;
/// - anything else: `upstream=NAME`, `peer=PORT` (the proxy's end of this connection), the
///   method, path, version and every header.
pub fn http_upstream(name: &'static str) -> SocketAddr {
    spawn_server(move |tcp| async move {
        let peer = tcp.peer_addr().map_or(0, |a| a.port());
        let service = hyper::service::service_fn(move |req| handle(name, peer, req));
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades()
            .await;
    })
}

/// What an upstream has seen so far, for tests that wait for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Connections accepted.
    pub connections: usize,
    /// Requests received (their heads).
    pub requests: usize,
    /// Connections the other side (the proxy) closed, or that ended.
    pub closed: usize,
}

/// [`Seen`], updated by an upstream's tasks and waited on by a test.
#[derive(Default)]
pub struct Watch {
    seen: Mutex<Seen>,
    changed: Condvar,
}

impl Watch {
    pub(crate) fn update(&self, f: impl FnOnce(&mut Seen)) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut seen);
        self.changed.notify_all();
    }

    pub fn now(&self) -> Seen {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` until `until` holds; what was seen then, or `None`.
    pub fn wait(&self, until: impl Fn(&Seen) -> bool, timeout: Duration) -> Option<Seen> {
        let deadline = Instant::now() + timeout;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        while !until(&seen) {
            let left = deadline.checked_duration_since(Instant::now())?;
            seen = self
                .changed
                .wait_timeout(seen, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Some(*seen)
    }
}

/// [`http_upstream`] that reports its connections and requests to the returned [`Watch`].
pub fn http_upstream_watched(name: &'static str) -> (SocketAddr, Arc<Watch>) {
    let watch = Arc::new(Watch::default());
    let w = watch.clone();
    let addr = spawn_server(move |tcp| {
        let w = w.clone();
        async move {
            w.update(|s| s.connections += 1);
            let peer = tcp.peer_addr().map_or(0, |a| a.port());
            let requests = w.clone();
            let service = hyper::service::service_fn(move |req| {
                requests.update(|s| s.requests += 1);
                handle(name, peer, req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await;
            w.update(|s| s.closed += 1);
        }
    });
    (addr, watch)
}

/// [`http_upstream`] that closes a keep-alive connection after `idle` without a request,
/// as nginx does after `keepalive_timeout`.
pub fn http_upstream_closing_idle_after(name: &'static str, idle: Duration) -> SocketAddr {
    spawn_server(move |tcp| async move {
        let peer = tcp.peer_addr().map_or(0, |a| a.port());
        let service = hyper::service::service_fn(move |req| handle(name, peer, req));
        let _ = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(idle)
            .serve_connection(TokioIo::new(tcp), service)
            .await;
    })
}

async fn handle(
    name: &'static str,
    peer: u16,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if let Some(key) = req.headers().get("sec-websocket-key").cloned() {
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(io) = upgrade.await {
                let mut ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() || ws.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        });
        let resp = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
            .body(full(String::new()))
            .expect("101");
        return Ok(resp);
    }
    if let Some(ms) = path
        .strip_prefix("/slow/")
        .and_then(|m| m.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms).min(MAX_SLEEP)).await;
        return Ok(Response::new(full(format!("upstream={name}\nslow={ms}\n"))));
    }
    if let Some((n, ms)) = path
        .strip_prefix("/drip/")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(n, ms)| Some((n.parse::<u64>().ok()?, ms.parse::<u64>().ok()?)))
    {
        // N chunks, MS milliseconds apart: a stream with silent gaps (SSE, long polls).
        let gap = Duration::from_millis(ms).min(MAX_SLEEP);
        let stream = futures_util::stream::unfold(0u64, move |i| async move {
            if i >= n.min(100) {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            Some((
                Ok::<_, hyper::Error>(Frame::data(Bytes::from(format!("chunk {i}\n")))),
                i + 1,
            ))
        });
        return Ok(Response::new(BoxBody::new(StreamBody::new(stream))));
    }
    if path == "/hang" {
        tokio::time::sleep(MAX_SLEEP).await;
        return Ok(Response::new(full("too late\n".into())));
    }
    if path == "/count" {
        let mut body = req.into_body();
        let mut count: u64 = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => count += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
                Err(_) => break,
            }
        }
        return Ok(Response::new(full(format!("count={count}\n"))));
    }
    if let Some(n) = path
        .strip_prefix("/download/")
        .and_then(|m| m.parse::<u64>().ok())
    {
        const CHUNK: usize = 64 * 1024;
        let chunks = n / CHUNK as u64;
        let rest = (n % CHUNK as u64) as usize;
        let stream = futures_util::stream::iter(
            (0..chunks)
                .map(|_| CHUNK)
                .chain((rest > 0).then_some(rest))
                .map(|len| Ok::<_, hyper::Error>(Frame::data(Bytes::from(vec![0u8; len])))),
        );
        let resp = Response::builder()
            .header("content-length", n.to_string())
            .body(BoxBody::new(StreamBody::new(stream)))
            .expect("download");
        return Ok(resp);
    }
    let mut text = format!(
        "upstream={name}\npeer={peer}\nmethod={}\npath={}\nversion={:?}\n",
        req.method(),
        req.uri(),
        req.version()
    );
    for (k, v) in req.headers() {
        text.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("<binary>")));
    }
    Ok(Response::new(full(text)))
}

async fn echo_after_eof<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S) {
    let mut data = Vec::new();
    let read = tokio::time::timeout(MAX_SLEEP, stream.read_to_end(&mut data)).await;
    if matches!(read, Ok(Ok(_))) {
        let mut reply = format!("got {} bytes: ", data.len()).into_bytes();
        reply.extend_from_slice(&data);
        let _ = stream.write_all(&reply).await;
        let _ = stream.shutdown().await;
    }
}

/// A TCP upstream that reads until the client half-closes, then answers
/// `got N bytes: <data>` and closes.
pub fn tcp_echo_after_eof() -> SocketAddr {
    spawn_server(echo_after_eof)
}

/// An address nothing listens on, reserved while the value lives: a socket bound to it
/// that never listens, so connections to it are refused and no server of a test running
/// in parallel is given the port. (Binding, then closing, left the port free; a test
/// once reached another test's upstream there and got 200 where it expected 502.)
pub struct Refused {
    addr: SocketAddr,
    _bound: tokio::net::TcpSocket,
}

impl Refused {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
}

pub fn refused_addr() -> Refused {
    // No SO_REUSEADDR: no other socket can bind this port while it is held.
    let bound = tokio::net::TcpSocket::new_v4().expect("socket");
    bound
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    Refused {
        addr: bound.local_addr().expect("addr"),
        _bound: bound,
    }
}

//! One listener's accept loop: a connection permit before `accept`, a bounded handshake,
//! then HTTP or TCP forwarding, each connection on its own task. (The listening sockets
//! themselves: `sockets.rs`.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Listener, Protocol, TrustedProxies};
use crate::ops::metrics::ListenerMetrics;
use crate::serve::client_auth::ClientIdentity;
use crate::serve::forward::ConnectionSlot;
use crate::serve::forward::http::HttpListener;
use crate::serve::forward::routes::Routes;
use crate::serve::forward::tcp;
use crate::serve::idle::{IdleTimeout, InFlight, Limits};
use crate::serve::proxy_protocol::{self, ProxyHeaderError};
use crate::serve::tls::{self, ListenerTls};
use crate::serve::workers::Spread;

/// Pause after an accept error (EMFILE and friends) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Everything one listener's connections share.
pub struct ListenerState {
    pub config: Listener,
    pub tls: ListenerTls,
    pub routes: Routes,
    pub http: Option<Arc<HttpListener>>,
    pub metrics: &'static ListenerMetrics,
    pub accept_errors: AcceptErrors,
    /// The listening socket does not pass `TCP_NODELAY` on (one systemd passed).
    pub nodelay_per_connection: bool,
}

impl ListenerState {
    /// Counts a failed accept and logs it at most once a second for the listener, with
    /// how many failed since the last line: out of descriptors, accept fails every
    /// backoff, and one line each would flood the log.
    fn accept_failed(&self, e: &std::io::Error) {
        let kind = match e.raw_os_error().map(nix::errno::Errno::from_raw) {
            Some(nix::errno::Errno::EMFILE) => "open_files",
            Some(nix::errno::Errno::ENFILE) => "system_open_files",
            Some(nix::errno::Errno::ENOBUFS | nix::errno::Errno::ENOMEM) => "memory",
            _ => "other",
        };
        self.metrics.accept_error(kind);
        let errors = &self.accept_errors;
        let failed = errors.failed.fetch_add(1, Ordering::Relaxed) + 1;
        let second = errors.epoch.elapsed().as_secs() + 1;
        if errors.logged_at.swap(second, Ordering::Relaxed) != second {
            errors.failed.fetch_sub(failed, Ordering::Relaxed);
            let hint = if kind.ends_with("open_files") {
                "; raise the open-file limit (LimitNOFILE) or lower max_connections"
            } else {
                ""
            };
            tracing::warn!(listener = %self.config.name, error = %e, failed, "accept failed (retrying every 100 ms){hint}");
        }
    }

    /// Counts and reports a connection refused for its PROXY protocol header.
    fn proxy_header_refused(&self, peer: SocketAddr, e: &ProxyHeaderError) {
        self.metrics.handshake("proxy_protocol");
        crate::serve::warnings::warn(crate::serve::warnings::Kind::Handshake, || {
            format!("listener {}: connection from {peer}: {e}", self.config.name)
        });
    }

    /// Counts and reports a failed TLS handshake. A client that connects and says nothing
    /// (a TCP health check, a port scan) is routine; one that breaks the protocol is worth
    /// a (rate-limited) line.
    fn handshake_failed(&self, peer: SocketAddr, e: &tls::HandshakeError) {
        self.metrics.handshake(e.as_label());
        if matches!(e, tls::HandshakeError::Protocol(_)) {
            crate::serve::warnings::warn(crate::serve::warnings::Kind::Handshake, || {
                format!("listener {}: client {peer}: {e}", self.config.name)
            });
        } else {
            tracing::debug!(listener = %self.config.name, %peer, error = %e, "handshake failed");
        }
    }
}

/// Failed accepts since the last line logged about them.
pub struct AcceptErrors {
    epoch: std::time::Instant,
    /// The second (since `epoch`, from 1) of the last line.
    logged_at: AtomicU64,
    failed: AtomicU64,
}

impl Default for AcceptErrors {
    fn default() -> Self {
        Self {
            epoch: std::time::Instant::now(),
            logged_at: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }
}

/// Accepts on this worker's handle of the listening socket until `shutdown`, then drops
/// it; new connections are refused once every worker's handle is gone. `permits` is the
/// listener's `max_connections`, shared by its workers. Each connection runs on the
/// worker `spread` picks: this one, or one with fewer open connections.
pub async fn accept_loop(
    socket: std::net::TcpListener,
    state: Arc<ListenerState>,
    permits: Arc<Semaphore>,
    (spread, tracker): (Arc<Spread>, TaskTracker),
    shutdown: CancellationToken,
) {
    let socket = match TcpListener::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(listener = %state.config.name, error = %e, "cannot accept on this worker");
            return;
        }
    };
    let me = crate::serve::workers::current();
    // The connections hold a child of the listener's token: its lock (taken when a
    // connection clones it or waits on it) is shared with this worker's connections only
    // (and the few it handed to another worker).
    let shutdown = shutdown.child_token();
    let stop = shutdown.clone();
    let mut stop = std::pin::pin!(stop.cancelled());
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.as_mut() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = socket.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    state.accept_failed(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.as_mut() => break,
        };
        let (worker, open) = spread.pick(me);
        let state = state.clone();
        let shutdown = shutdown.clone();
        let serve = move |tcp| async move {
            let slot = Arc::new(ConnectionSlot::new(
                permit,
                state.metrics.connection(),
                open,
            ));
            connection(tcp, peer, &state, slot, shutdown).await;
        };
        if worker == me {
            tracker.spawn(serve(tcp));
            continue;
        }
        // Registered again with the other worker's event loop (two `epoll_ctl`s); the
        // handshake has not begun.
        match tcp.into_std() {
            Ok(tcp) => {
                spread.handle(worker).spawn(tracker.track_future(async move {
                    match TcpStream::from_std(tcp) {
                        Ok(tcp) => serve(tcp).await,
                        Err(e) => tracing::debug!(%peer, error = %e, "cannot move a connection to another worker"),
                    }
                }));
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot move a connection to another worker")
            }
        }
    }
    tracing::info!(listener = %state.config.name, "stopped accepting");
}

async fn connection(
    mut tcp: TcpStream,
    mut peer: SocketAddr,
    state: &ListenerState,
    slot: Arc<ConnectionSlot>,
    shutdown: CancellationToken,
) {
    // Inherited from the listening socket on Linux (`listen`), unless systemd made it.
    if state.nodelay_per_connection || cfg!(not(target_os = "linux")) {
        let _ = tcp.set_nodelay(true);
    }
    let deadline = Instant::now() + state.config.handshake_timeout;
    if let Some(trusted) = &state.config.proxy_protocol {
        let received = proxied_client(&mut tcp, peer, trusted, deadline);
        let received = super::within_drain_grace(received, &shutdown)
            .await
            .unwrap_or_else(|| Err(ProxyHeaderError::Invalid("none before the drain".into())));
        match received {
            Ok(client) => peer = client,
            Err(e) => return state.proxy_header_refused(peer, &e),
        }
    }
    // Boxed: the handshake's state is freed once it is done instead of sizing this task,
    // which lives as long as the connection (memory per idle connection).
    let handshake = Box::pin(tls::handshake(tcp, &state.tls, deadline));
    let handshake = super::within_drain_grace(handshake, &shutdown).await;
    let stream = match handshake.unwrap_or(Err(tls::HandshakeError::Timeout)) {
        Ok(s) => s,
        Err(e) => return state.handshake_failed(peer, &e),
    };
    state.metrics.handshake("ok");
    // On the heap, once: moving the TLS state (1.2 KB) through the forwarders' futures
    // would leave a copy of it in each one's state (memory per idle connection).
    let stream = Box::new(stream);
    let sni = stream.get_ref().1.server_name();
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let routes = state.routes.load();
    let target = routes.pick(sni).clone();
    match (state.config.protocol, &state.http) {
        (Protocol::Http, Some(http)) => {
            // The name is kept only when something needs it per request.
            let sni = if http.access_log || routes.has_routes() {
                sni.map(Arc::from)
            } else {
                None
            };
            drop(routes);
            let conn = crate::serve::forward::http::Conn {
                peer: peer.ip(),
                sni,
                private: target.private_for(peer, || stream.get_ref().0.local_addr()),
                target,
                routes: state.routes.clone(),
                _slot: slot,
                client: ClientIdentity::of(stream.get_ref().1, state.config.client_auth.is_some()),
            };
            http.serve(stream, h2, conn, shutdown).await
        }
        // Boxed: its upstream TLS handshake state would otherwise size every connection's
        // task, HTTP ones included. `local`: where the client connected, for a PROXY
        // protocol header to the upstream.
        _ => {
            let local = stream.get_ref().0.local_addr().unwrap_or(peer);
            let client = tcp_client(stream, state.config.send_timeout);
            let timeout = state.config.upstream_connect_timeout;
            let piped = Box::pin(tcp::forward(client, &target, timeout, (peer, local))).await;
            if let Err(e) = piped {
                state.metrics.upstream_error(e.as_label());
                tracing::warn!(listener = %state.config.name, %peer, error = %e, "tcp upstream unavailable");
            }
        }
    }
}

/// The client a trusted load balancer names in the PROXY protocol header that starts the
/// connection (the balancer itself for its own health checks), read within the handshake
/// time.
async fn proxied_client(
    tcp: &mut TcpStream,
    peer: SocketAddr,
    trusted: &TrustedProxies,
    deadline: Instant,
) -> Result<SocketAddr, ProxyHeaderError> {
    if !trusted.contains(peer.ip()) {
        return Err(ProxyHeaderError::Untrusted(peer.ip()));
    }
    match tokio::time::timeout_at(deadline, proxy_protocol::receive(tcp)).await {
        Ok(received) => Ok(received?.unwrap_or(peer)),
        Err(_) => Err(ProxyHeaderError::Invalid(
            "none within handshake_timeout".into(),
        )),
    }
}

/// A TCP-mode client stream: no idle timeout (a stream lasts as long as both sides keep
/// it), but a client that takes no bytes for `send_timeout` while some wait for it is cut,
/// and its upstream connection with it.
fn tcp_client<S>(stream: S, send_timeout: Duration) -> IdleTimeout<S> {
    let limits = Limits {
        idle: Duration::MAX,
        header: None,
        send: send_timeout,
        bytes_are_activity: true,
    };
    IdleTimeout::new(stream, limits, Arc::new(InFlight::default()))
}

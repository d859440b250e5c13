//! One listener's accept loop: a connection permit before `accept`, a bounded handshake,
//! then HTTP or TCP forwarding, each connection on its own task, on the least busy worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntGauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Listener, Protocol};
use crate::forward::http::HttpListener;
use crate::forward::tcp;
use crate::metrics::{ConnectionGuard, ListenerMetrics};
use crate::routes::Routes;
use crate::tls::{self, ListenerTls};

/// Pause after an accept error (EMFILE and friends) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Everything one listener's connections share.
pub struct ListenerState {
    pub config: Listener,
    pub tls: ListenerTls,
    pub routes: Routes,
    pub http: Option<Arc<HttpListener>>,
    pub metrics: &'static ListenerMetrics,
}

/// The worker threads connections are served on, and how many connections each serves
/// (every listener together).
///
/// Every worker accepts on its own handle of the listening socket, and whichever wakes
/// first takes what is queued: a burst of connections (a browser opening six, a client's
/// pool, wrk's 32) could land on one worker while the other idled, which cost keep-alive
/// runs of `benches/load/compare.sh` up to 40% of their requests/s. So a worker that accepts
/// a connection while it serves two or more connections than the least busy worker hands
/// the connection to that worker.
pub struct Spread {
    handles: Box<[Handle]>,
    /// Connections per worker, as exported by `gatehouse_worker_connections`.
    connections: Box<[IntGauge]>,
}

impl Spread {
    /// One handle and one gauge per worker.
    pub fn new(handles: &[Handle], connections: Box<[IntGauge]>) -> Self {
        assert_eq!(handles.len(), connections.len(), "a gauge per worker");
        Self {
            handles: handles.into(),
            connections,
        }
    }

    /// The worker to serve a connection worker `me` accepted: `me`, unless another serves
    /// at least two connections fewer. Handing over costs a move between event loops (two
    /// `epoll_ctl` and a wake-up), so connections that come and go evenly stay put.
    fn home(&self, me: usize) -> usize {
        let load = |w: usize| self.connections[w].get();
        let least = (0..self.connections.len())
            .min_by_key(|&w| load(w))
            .unwrap_or(me);
        if load(least) + 1 < load(me) {
            least
        } else {
            me
        }
    }

    /// Counts a connection on worker `w` until the guard is dropped.
    fn enter(&self, w: usize) -> WorkerGuard {
        let gauge = self.connections[w].clone();
        gauge.inc();
        WorkerGuard(gauge)
    }
}

/// A connection's place in its worker's count.
struct WorkerGuard(IntGauge);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Accepts on worker `me`'s handle of the listening socket until `shutdown`, then drops
/// it; new connections are refused once every worker's handle is gone. `permits` is the
/// listener's `max_connections`, shared by its workers. Each connection is served by the
/// worker [`Spread`] picks.
pub async fn accept_loop(
    socket: std::net::TcpListener,
    state: Arc<ListenerState>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    spread: Arc<Spread>,
    me: usize,
) {
    let socket = match TcpListener::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(listener = %state.config.name, error = %e, "cannot accept on this worker");
            return;
        }
    };
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = socket.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(listener = %state.config.name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let home = spread.home(me);
        let slot = ConnectionSlot {
            _permit: permit,
            _active: state.metrics.connection(),
            _worker: spread.enter(home),
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        if home == me {
            tracker.spawn(async move {
                connection(tcp, peer, &state, Arc::new(slot), shutdown).await;
            });
            continue;
        }
        // Registered with this worker's event loop by `accept`; moved to the other's.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::debug!(listener = %state.config.name, %peer, error = %e, "cannot hand the connection to another worker");
                continue;
            }
        };
        tracker.spawn_on(
            async move {
                match TcpStream::from_std(tcp) {
                    Ok(tcp) => connection(tcp, peer, &state, Arc::new(slot), shutdown).await,
                    Err(e) => {
                        tracing::debug!(listener = %state.config.name, %peer, error = %e, "cannot take over the connection")
                    }
                }
            },
            &spread.handles[home],
        );
    }
    tracing::info!(listener = %state.config.name, "stopped accepting");
}

/// A connection's share of the listener: its `max_connections` permit and its place in
/// `gatehouse_connections_active`. Held by the connection and by whatever it is upgraded
/// to (a WebSocket outlives the HTTP connection that carried its handshake).
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    _active: ConnectionGuard,
    _worker: WorkerGuard,
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    state: &ListenerState,
    slot: Arc<ConnectionSlot>,
    shutdown: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let deadline = Instant::now() + state.config.handshake_timeout;
    // Boxed: the handshake's state is freed once it is done instead of sizing this task,
    // which lives as long as the connection (memory per idle connection).
    let stream = match Box::pin(tls::handshake(tcp, &state.tls, deadline)).await {
        Ok(s) => s,
        Err(e) => {
            state.metrics.handshake(e.as_label());
            tracing::debug!(listener = %state.config.name, %peer, error = %e, "handshake failed");
            return;
        }
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
            let conn = crate::forward::http::Conn {
                peer: peer.ip(),
                sni,
                target,
                routes: state.routes.clone(),
                slot,
            };
            http.serve(stream, h2, conn, shutdown).await
        }
        // Boxed: its upstream TLS handshake state would otherwise size every connection's
        // task, HTTP ones included.
        _ => match Box::pin(tcp::forward(
            stream,
            &target,
            state.config.upstream_connect_timeout,
        ))
        .await
        {
            Ok(_) => {}
            Err(e) => {
                state.metrics.upstream_error(e.as_label());
                tracing::warn!(listener = %state.config.name, %peer, error = %e, "tcp upstream unavailable");
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(loads: &[i64]) -> Spread {
        let handles = vec![Handle::current(); loads.len()];
        let gauges = loads
            .iter()
            .map(|&n| {
                let g = IntGauge::new("worker_connections", "test").unwrap();
                g.set(n);
                g
            })
            .collect();
        Spread::new(&handles, gauges)
    }

    #[tokio::test]
    async fn a_connection_goes_to_a_worker_with_two_fewer_or_stays() {
        assert_eq!(spread(&[0, 0]).home(0), 0, "even: stays");
        assert_eq!(spread(&[1, 0]).home(0), 0, "one more: stays");
        assert_eq!(spread(&[2, 0]).home(0), 1, "two more: handed over");
        assert_eq!(spread(&[5, 4, 1]).home(1), 2, "to the least busy");
        assert_eq!(
            spread(&[0, 7]).home(0),
            0,
            "the least busy keeps what it accepts"
        );
    }

    #[tokio::test]
    async fn a_burst_accepted_by_one_worker_ends_up_spread_evenly() {
        let s = spread(&[0, 0]);
        let guards: Vec<WorkerGuard> = (0..32).map(|_| s.enter(s.home(0))).collect();
        let (a, b) = (s.connections[0].get(), s.connections[1].get());
        assert!(
            a.abs_diff(b) <= 2,
            "32 connections accepted by worker 0: {a} and {b}"
        );
        drop(guards);
        assert_eq!(
            (s.connections[0].get(), s.connections[1].get()),
            (0, 0),
            "each connection leaves its worker's count when it ends"
        );
    }
}

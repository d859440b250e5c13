//! Starting: load the config and every certificate, bind every listener and the admin
//! API, then start the workers and an accept loop per listener on each of them. Anything
//! wrong stops the start before a single connection is accepted.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use certstore::{SniResolver, Store, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Bound, Inner, Running, StartError, observe};
use crate::config::{Config, Listener, Protocol};
use crate::ops::admin::{self, ADMIN_ADDR_FILE};
use crate::ops::metrics::Metrics;
use crate::ops::report::log_report;
use crate::serve::client_auth::ClientVerifier;
use crate::serve::forward::http::HttpListener;
use crate::serve::forward::routes::{RouteTable, Routes};
use crate::serve::listener::{ListenerState, accept_loop};
use crate::serve::sockets::Inherited;
use crate::serve::tickets::FileTicketer;
use crate::serve::tls::{self, ListenerTls, TlsOptions};
use crate::serve::workers::{Spread, Workers};

/// A listener's TLS server configuration, its session ticket keys and its client
/// certificate verifier.
type ServerTls = (
    Arc<rustls::ServerConfig>,
    Option<Arc<FileTicketer>>,
    Option<Arc<ClientVerifier>>,
);

/// A listener bound but not yet accepting: one handle of its socket per worker.
struct Prepared {
    handles: Vec<std::net::TcpListener>,
    state: Arc<ListenerState>,
    routes: Routes,
    bound: Bound,
    tickets: Option<Arc<FileTicketer>>,
    client_auth: Option<Arc<ClientVerifier>>,
}

impl Running {
    /// Loads the configuration and every certificate, binds every listener and the admin
    /// API and starts serving. Fails, serving nothing, if anything is wrong.
    pub async fn start(config_path: &Path) -> Result<Self, StartError> {
        Self::start_with(config_path, Inherited::default()).await
    }

    /// [`Running::start`] with the listening sockets systemd passed: a listener bound to
    /// one of their addresses accepts on it instead of binding.
    pub async fn start_with(
        config_path: &Path,
        mut inherited: Inherited,
    ) -> Result<Self, StartError> {
        let config = Config::load(config_path)?;
        open_files(&config);
        let metrics = Metrics::new(config.metrics);
        let now = Timestamp::now();
        crate::certs::internal::ensure(&config, now)?;
        let (store, report) = Store::load(&config.store_config(), now)?;
        log_report(&report);
        metrics.observe_reload(report.is_clean(), now);
        metrics.observe_certificates(&store.snapshot());
        let token = match config.admin.as_ref().and_then(|a| a.token_file.as_ref()) {
            Some(path) => Some(admin::read_token(path)?),
            None => None,
        };
        let tracker = TaskTracker::new();
        let prepared = config
            .listeners
            .iter()
            .map(|l| prepare(l, &config, &store, &metrics, now, &mut inherited))
            .collect::<Result<Vec<_>, _>>()?;
        for addr in inherited.unused() {
            tracing::warn!(%addr, "systemd passed a listening socket no listener binds; it is left unused (match ListenStream= in the socket unit to the listeners' bind)");
        }
        let admin_socket = bind_admin(&config).await?;
        let admin_addr = admin_socket.as_ref().and_then(|s| s.local_addr().ok());
        write_runtime_files(&config, admin_addr)?;
        let routes: Vec<(String, Routes)> = prepared
            .iter()
            .map(|p| (p.bound.name.clone(), p.routes.clone()))
            .collect();
        let tickets = prepared.iter().filter_map(|p| p.tickets.clone()).collect();
        let client_verifiers = prepared
            .iter()
            .filter_map(|p| p.client_auth.clone())
            .collect();
        observe(&config, &store, &metrics, &routes);
        let workers = Workers::start(config.workers).map_err(|source| StartError::Workers {
            count: config.workers,
            source,
        })?;
        tracing::info!(
            workers = config.workers,
            "serving connections on worker threads"
        );
        let shutdown = CancellationToken::new();
        let spread = Arc::new(Spread::new(
            &workers,
            metrics.worker_connections(config.workers),
        ));
        let listeners = accept_on(prepared, &workers, (&spread, &tracker), &shutdown);
        let inner = Arc::new(Inner {
            config_path: config_path.to_owned(),
            store,
            pid_file: config.pid_file.clone(),
            config: Mutex::new(config),
            routes,
            tickets,
            client_verifiers,
            metrics,
            draining: AtomicBool::new(false),
            shutdown,
            admin_stop: CancellationToken::new(),
            tracker,
            admin_token: Arc::new(ArcSwapOption::from(token.map(Arc::new))),
            last_reload: Mutex::new(None),
        });
        if let (Some(socket), Some(addr)) = (admin_socket, admin_addr) {
            serve_admin(&inner, socket, addr)?;
        }
        Ok(Self {
            listeners,
            admin: admin_addr,
            inner,
            _workers: workers,
        })
    }
}

/// Starts an accept loop for each listener on each worker; the listeners' addresses.
fn accept_on(
    prepared: Vec<Prepared>,
    workers: &Workers,
    (spread, tracker): (&Arc<Spread>, &TaskTracker),
    shutdown: &CancellationToken,
) -> Vec<Bound> {
    let mut listeners = Vec::new();
    for p in prepared {
        // `max_connections` counts the listener's connections on every worker.
        let permits = Arc::new(Semaphore::new(p.state.config.max_connections));
        for (socket, worker) in p.handles.into_iter().zip(workers.handles()) {
            // Tracked with the connections: the drain waits for a loop that has just
            // accepted a connection to hand it over, rather than exit under it.
            worker.spawn(tracker.track_future(accept_loop(
                socket,
                p.state.clone(),
                permits.clone(),
                (spread.clone(), tracker.clone()),
                shutdown.clone(),
            )));
        }
        listeners.push(p.bound);
    }
    listeners
}

/// Starts the admin API (and the certificates page) on its bound socket, over HTTPS when
/// `[admin] certificate` names one.
fn serve_admin(
    inner: &Arc<Inner>,
    socket: TcpListener,
    addr: SocketAddr,
) -> Result<(), StartError> {
    let tls = admin_tls(&admin::Control::config(&**inner), &inner.store)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, "admin API listening, certificates page at {scheme}://{addr}/");
    tokio::spawn(admin::serve(
        socket,
        inner.clone(),
        inner.admin_token.clone(),
        tls,
        inner.admin_stop.clone(),
    ));
    Ok(())
}

/// Binds one listener and builds everything its connections share: TLS configuration,
/// routes with their upstream clients, the HTTP server settings, metric handles.
fn prepare(
    l: &Listener,
    config: &Config,
    store: &Store,
    metrics: &Metrics,
    now: Timestamp,
    inherited: &mut Inherited,
) -> Result<Prepared, StartError> {
    let bind_error = |source| StartError::Bind {
        listener: l.name.clone(),
        addr: l.bind,
        source,
    };
    let (socket, adopted) = listening_socket(l, inherited).map_err(bind_error)?;
    let addr = socket.local_addr().map_err(bind_error)?;
    // One handle of the socket per worker: each accepts on its own event loop.
    let handles = (0..config.workers)
        .map(|_| socket.try_clone())
        .collect::<Result<Vec<_>, _>>()
        .map_err(bind_error)?;
    let resolver = store
        .resolver(&l.name)
        .expect("the store was loaded with every listener");
    let (server_config, tickets, client_auth) = server_tls(l, &resolver)?;
    let table =
        RouteTable::build(l, &config.upstream_tls, config.workers, now).map_err(|source| {
            StartError::UpstreamTls {
                listener: l.name.clone(),
                source: Box::new(source),
            }
        })?;
    let routes: Routes = Arc::new(ArcSwap::from_pointee(table));
    let listener_metrics = metrics.listener(&l.name);
    let state = Arc::new(ListenerState {
        config: l.clone(),
        tls: ListenerTls {
            config: server_config,
            resolver,
            strict_sni: l.strict_sni,
        },
        routes: routes.clone(),
        http: (l.protocol == Protocol::Http)
            .then(|| Arc::new(HttpListener::new(l, listener_metrics, config.access_log))),
        metrics: listener_metrics,
        accept_errors: Default::default(),
        // Sockets Gatehouse made pass TCP_NODELAY on to what they accept; systemd's may not.
        nodelay_per_connection: adopted,
    });
    let cert_expiry: Vec<String> = l
        .certificates
        .iter()
        .filter_map(|n| store.snapshot().certificate(n).cloned())
        .map(|c| format!("{} (expires {})", c.name, c.leaf().not_after))
        .collect();
    tracing::info!(listener = %l.name, %addr, protocol = %l.protocol, upstream = %l.upstream, certificates = ?cert_expiry, "listening");
    Ok(Prepared {
        handles,
        state,
        routes,
        tickets,
        client_auth: client_auth.clone(),
        bound: Bound {
            name: l.name.clone(),
            addr,
        },
    })
}

/// A listener's TLS server configuration, with the session ticket keys and the client
/// certificate verifier it was built with.
fn server_tls(l: &Listener, resolver: &Arc<SniResolver>) -> Result<ServerTls, StartError> {
    let alpn = match l.protocol {
        Protocol::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        Protocol::Tcp => Vec::new(),
    };
    let tls_error = |source| StartError::Tls {
        listener: l.name.clone(),
        source,
    };
    let tickets = match &l.session_ticket_key_file {
        Some(path) => Some(FileTicketer::load(path).map_err(|e| tls_error(e.into()))?),
        None => None,
    };
    let client_auth = match &l.client_auth {
        Some(c) => Some(ClientVerifier::load(c).map_err(|e| tls_error(e.into()))?),
        None => None,
    };
    let options = TlsOptions {
        tls13_only: l.tls13_only,
        alpn,
        session_resumption: l.session_resumption,
        tickets: tickets.clone(),
        client_auth: client_auth.clone(),
    };
    let server_config = tls::server_config(resolver.clone(), &options).map_err(tls_error)?;
    Ok((server_config, tickets, client_auth))
}

/// Raises the open-file limit as far as allowed and warns when the listeners' limits do
/// not fit in it.
fn open_files(config: &Config) {
    let Some((before, after)) = crate::serve::open_files::raise_limit() else {
        return;
    };
    if after > before {
        tracing::info!("open-file limit raised from {before} to {after}");
    }
    if let Some(w) = crate::serve::open_files::warning(config, after) {
        tracing::warn!("{w}");
    }
}

/// The listener's socket: the one systemd passed for its address (and `true`), or one it
/// binds itself.
fn listening_socket(
    l: &Listener,
    inherited: &mut Inherited,
) -> std::io::Result<(std::net::TcpListener, bool)> {
    if let Some(socket) = inherited.take(l.bind) {
        socket.set_nonblocking(true)?;
        tracing::info!(listener = %l.name, addr = %l.bind, "accepting on the socket systemd passed");
        return Ok((socket, true));
    }
    Ok((crate::serve::sockets::listen(l.bind)?.into_std()?, false))
}

/// The admin API's TLS, with `[admin] certificate`: served from the store like a listener's
/// certificates, so reloads renew it.
fn admin_tls(
    config: &Config,
    store: &Store,
) -> Result<Option<tokio_rustls::TlsAcceptor>, StartError> {
    if config
        .admin
        .as_ref()
        .and_then(|a| a.certificate.as_ref())
        .is_none()
    {
        return Ok(None);
    }
    let Some(resolver) = store.resolver(crate::config::ADMIN_TLS) else {
        return Ok(None);
    };
    let options = TlsOptions {
        alpn: vec![b"http/1.1".to_vec()],
        ..TlsOptions::default()
    };
    let config = tls::server_config(resolver, &options).map_err(|source| StartError::Tls {
        listener: "admin".into(),
        source,
    })?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(config)))
}

async fn bind_admin(config: &Config) -> Result<Option<TcpListener>, StartError> {
    let Some(a) = &config.admin else {
        return Ok(None);
    };
    TcpListener::bind(a.listen)
        .await
        .map(Some)
        .map_err(|source| StartError::Bind {
            listener: "admin".into(),
            addr: a.listen,
            source,
        })
}

/// The admin address (so `gatehouse reload` finds a port-0 admin API) and the pid file.
fn write_runtime_files(config: &Config, admin: Option<SocketAddr>) -> Result<(), StartError> {
    let write = |path: &Path, text: String| {
        certstore::write_atomic(path, text.as_bytes(), certstore::FileMode::Public).map_err(
            |source| StartError::Write {
                path: path.to_owned(),
                source,
            },
        )
    };
    if let Some(addr) = admin {
        write(&config.state_dir.join(ADMIN_ADDR_FILE), format!("{addr}\n"))?;
    }
    if let Some(pid_file) = &config.pid_file {
        write(pid_file, format!("{}\n", std::process::id()))?;
    }
    Ok(())
}

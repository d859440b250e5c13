//! A running Gatehouse: binds every listener and the admin API, holds the certificate
//! store, reloads on request and drains on shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use certstore::{ReloadReport, Store, Timestamp};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin;
use crate::config::{Config, ConfigError, Protocol};
use crate::forward::http::HttpListener;
use crate::listener::{ListenerState, accept_loop};
use crate::metrics::Metrics;
use crate::routes::{RouteTable, Routes};
use crate::tls::{self, ListenerTls, TlsOptions};
use crate::workers::Workers;

/// The file in `state_dir` where a running instance writes its admin address, so that
/// `gatehouse reload` finds it even when the config says port 0.
pub const ADMIN_ADDR_FILE: &str = "admin.addr";

/// Why Gatehouse could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Certificates(#[from] certstore::InitialLoadError),
    #[error(
        "listener \"{listener}\": cannot bind {addr}: {source}; is another program using the port?"
    )]
    Bind {
        listener: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("listener \"{listener}\": {source}")]
    Tls {
        listener: String,
        #[source]
        source: tls::TlsSetupError,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("[admin] token_file {}: {detail}", path.display())]
    Token { path: PathBuf, detail: String },
    #[error("internal CA: {0}")]
    Internal(#[from] certstore::IssueError),
    #[error("cannot start {count} worker threads: {source}")]
    Workers {
        count: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("listener \"{listener}\": {source}")]
    UpstreamTls {
        listener: String,
        #[source]
        source: Box<crate::upstream_tls::UpstreamTlsError>,
    },
}

/// A listener as bound.
#[derive(Debug, Clone)]
pub struct Bound {
    pub name: String,
    pub addr: SocketAddr,
    pub protocol: Protocol,
}

/// A running instance. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub listeners: Vec<Bound>,
    /// Where the admin API listens, when it is on.
    pub admin: Option<SocketAddr>,
    inner: Arc<Inner>,
    /// Stopped (after the drain) when this is dropped.
    _workers: Workers,
}

pub(crate) struct Inner {
    config_path: PathBuf,
    store: Store,
    /// The configuration the listeners were bound with, with reloads applied.
    config: Mutex<Config>,
    routes: Vec<(String, Routes)>,
    pub(crate) metrics: Arc<Metrics>,
    /// True from the moment shutdown starts: `/healthz` answers 503.
    pub(crate) draining: AtomicBool,
    shutdown: CancellationToken,
    /// Stops the admin API once draining is over.
    admin_stop: CancellationToken,
    tracker: TaskTracker,
    pid_file: Option<PathBuf>,
}

/// What a reload did.
#[derive(Debug)]
pub struct Reloaded {
    pub report: ReloadReport,
    /// Changes that were not applied because they need a restart.
    pub needs_restart: Vec<String>,
    /// Upstream TLS settings that failed to load; those listeners keep their previous
    /// upstream clients.
    pub upstream_errors: Vec<String>,
}

impl Reloaded {
    /// Nothing kept a previous version.
    pub fn is_clean(&self) -> bool {
        self.report.is_clean() && self.upstream_errors.is_empty()
    }
}

/// Exports `gatehouse_upstream_insecure` and warns for every upstream that skips
/// verification (at startup and on every reload).
fn observe_upstreams(metrics: &Metrics, routes: &[(String, Routes)]) {
    let mut insecure = Vec::new();
    for (listener, table) in routes {
        for u in table.load().upstreams() {
            if u.options.insecure_skip_verify {
                tracing::warn!(listener = %listener, upstream = %u, "upstream_insecure_skip_verify: the upstream's certificate is NOT verified; anyone on the path can impersonate it");
                insecure.push((listener.clone(), u.original.clone()));
            }
        }
    }
    metrics.observe_insecure(&insecure);
}

impl Running {
    /// Loads the configuration and every certificate, binds every listener and the admin
    /// API and starts serving. Fails, serving nothing, if anything is wrong.
    pub async fn start(config_path: &Path) -> Result<Self, StartError> {
        let config = Config::load(config_path)?;
        let metrics = Metrics::new(config.metrics);
        let now = Timestamp::now();
        crate::internal::ensure(&config, now)?;
        let (store, report) = Store::load(&config.store_config(), now)?;
        log_report(&report);
        metrics.observe_reload(true, now);
        metrics.observe_certificates(&store.snapshot());
        let token = match config.admin.as_ref().and_then(|a| a.token_file.as_ref()) {
            Some(path) => Some(admin::read_token(path)?),
            None => None,
        };
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut bound = Vec::new();
        let mut sockets = Vec::new();
        let mut routes = Vec::new();
        for l in &config.listeners {
            let bind_error = |source| StartError::Bind {
                listener: l.name.clone(),
                addr: l.bind,
                source,
            };
            let socket = crate::listener::listen(l.bind).map_err(bind_error)?;
            let addr = socket.local_addr().map_err(bind_error)?;
            // One handle of the socket per worker: each accepts on its own event loop.
            let socket = socket.into_std().map_err(bind_error)?;
            let handles = (0..config.workers)
                .map(|_| socket.try_clone())
                .collect::<Result<Vec<_>, _>>()
                .map_err(bind_error)?;
            let resolver = store
                .resolver(&l.name)
                .expect("the store was loaded with every listener");
            let alpn = match l.protocol {
                Protocol::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                Protocol::Tcp => Vec::new(),
            };
            let options = TlsOptions {
                tls13_only: l.tls13_only,
                alpn,
                session_resumption: l.session_resumption,
            };
            let server_config =
                tls::server_config(resolver.clone(), &options).map_err(|source| {
                    StartError::Tls {
                        listener: l.name.clone(),
                        source,
                    }
                })?;
            let table = RouteTable::build(l, &config.upstream_tls, config.workers, now).map_err(
                |source| StartError::UpstreamTls {
                    listener: l.name.clone(),
                    source: Box::new(source),
                },
            )?;
            let listener_routes: Routes = Arc::new(ArcSwap::from_pointee(table));
            routes.push((l.name.clone(), listener_routes.clone()));
            let listener_metrics = metrics.listener(&l.name);
            let state = Arc::new(ListenerState {
                config: l.clone(),
                tls: ListenerTls {
                    config: server_config,
                    resolver,
                    strict_sni: l.strict_sni,
                },
                routes: listener_routes,
                http: (l.protocol == Protocol::Http).then(|| {
                    Arc::new(HttpListener::new(
                        l,
                        tracker.clone(),
                        listener_metrics,
                        config.access_log,
                    ))
                }),
                metrics: listener_metrics,
            });
            let cert_expiry: Vec<String> = l
                .certificates
                .iter()
                .filter_map(|n| store.snapshot().certificate(n).cloned())
                .map(|c| format!("{} (expires {})", c.name, c.leaf().not_after))
                .collect();
            tracing::info!(listener = %l.name, %addr, protocol = %l.protocol, upstream = %l.upstream, certificates = ?cert_expiry, "listening");
            bound.push(Bound {
                name: l.name.clone(),
                addr,
                protocol: l.protocol,
            });
            sockets.push((handles, state));
        }
        let admin_socket = match &config.admin {
            Some(a) => {
                Some(
                    TcpListener::bind(a.listen)
                        .await
                        .map_err(|source| StartError::Bind {
                            listener: "admin".into(),
                            addr: a.listen,
                            source,
                        })?,
                )
            }
            None => None,
        };
        let admin_addr = admin_socket.as_ref().and_then(|s| s.local_addr().ok());
        let write = |path: &Path, text: String| {
            certstore::write_atomic(path, text.as_bytes(), certstore::FileMode::Public).map_err(
                |source| StartError::Write {
                    path: path.to_owned(),
                    source,
                },
            )
        };
        if let Some(addr) = admin_addr {
            write(&config.state_dir.join(ADMIN_ADDR_FILE), format!("{addr}\n"))?;
        }
        if let Some(pid_file) = &config.pid_file {
            write(pid_file, format!("{}\n", std::process::id()))?;
        }
        observe_upstreams(&metrics, &routes);
        let workers = Workers::start(config.workers).map_err(|source| StartError::Workers {
            count: config.workers,
            source,
        })?;
        tracing::info!(
            workers = config.workers,
            "serving connections on worker threads"
        );
        for (handles, state) in sockets {
            // `max_connections` counts the listener's connections on every worker.
            let permits = Arc::new(Semaphore::new(state.config.max_connections));
            for (socket, worker) in handles.into_iter().zip(workers.handles()) {
                worker.spawn(accept_loop(
                    socket,
                    state.clone(),
                    permits.clone(),
                    tracker.clone(),
                    shutdown.clone(),
                ));
            }
        }
        let inner = Arc::new(Inner {
            config_path: config_path.to_owned(),
            store,
            pid_file: config.pid_file.clone(),
            config: Mutex::new(config),
            routes,
            metrics,
            draining: AtomicBool::new(false),
            shutdown,
            admin_stop: CancellationToken::new(),
            tracker,
        });
        if let (Some(socket), Some(addr)) = (admin_socket, admin_addr) {
            tracing::info!(%addr, "admin API listening");
            tokio::spawn(admin::serve(
                socket,
                inner.clone(),
                token,
                inner.admin_stop.clone(),
            ));
        }
        Ok(Self {
            listeners: bound,
            admin: admin_addr,
            inner,
            _workers: workers,
        })
    }

    /// The address a listener is bound to.
    pub fn addr(&self, listener: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|b| b.name == listener)
            .map(|b| b.addr)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// What SIGHUP does; see [`Inner::reload`].
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        self.inner.reload()
    }

    /// [`Running::reload`] on a blocking thread: it reads files and may issue keys, which
    /// must not stall the runtime's workers.
    pub async fn reload_async(&self) -> Result<Reloaded, ConfigError> {
        reload_blocking(self.inner.clone()).await
    }

    /// Stops accepting, lets in-flight requests and streams finish for up to `grace`,
    /// then returns (whatever is still open is dropped). The admin API answers `/healthz`
    /// with 503 meanwhile.
    pub async fn shutdown(self, grace: Duration) -> bool {
        let inner = &self.inner;
        inner.draining.store(true, Ordering::SeqCst);
        inner.shutdown.cancel();
        inner.tracker.close();
        let drained = tokio::time::timeout(grace, inner.tracker.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                ?grace,
                "shutdown timeout reached; closing remaining connections"
            );
        }
        inner.admin_stop.cancel();
        if let Some(pid_file) = &inner.pid_file {
            let _ = std::fs::remove_file(pid_file);
        }
        drained
    }

    /// The configured drain time.
    pub fn shutdown_timeout(&self) -> Duration {
        self.inner
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .shutdown_timeout
    }
}

impl Inner {
    /// Re-reads the configuration file and every certificate, and applies what can be
    /// applied without a restart. A file that no longer parses changes nothing.
    pub(crate) fn reload(&self) -> Result<Reloaded, ConfigError> {
        let new = Config::load(&self.config_path).inspect_err(|_| {
            self.metrics.observe_reload(false, Timestamp::now());
        })?;
        let mut current = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        let mut needs_restart = Vec::new();
        let mut applied = current.clone();
        applied.certificates = new.certificates.clone();
        applied.internal = new.internal.clone();
        // Top-level settings are read once, at start.
        for (key, changed) in [
            ("state_dir", new.state_dir != current.state_dir),
            ("pid_file", new.pid_file != current.pid_file),
            ("[admin]", new.admin != current.admin),
            ("log_format", new.log_format != current.log_format),
            ("access_log", new.access_log != current.access_log),
            ("metrics", new.metrics != current.metrics),
            (
                "shutdown_timeout",
                new.shutdown_timeout != current.shutdown_timeout,
            ),
            ("workers", new.workers != current.workers),
        ] {
            if changed {
                needs_restart.push(format!("{key} changed; needs a restart"));
            }
        }
        if new.state_dir != current.state_dir {
            // Internal certificates stay where the running instance keeps them.
            for c in applied.certificates.iter_mut() {
                if let Some(old) = current.certificates.iter().find(|o| o.name == c.name)
                    && current.internal.iter().any(|i| i.name == c.name)
                {
                    *c = old.clone();
                }
            }
            applied.internal = current.internal.clone();
        }
        for running in applied.listeners.iter_mut() {
            let Some(l) = new.listeners.iter().find(|l| l.name == running.name) else {
                needs_restart.push(format!(
                    "listener \"{}\" was removed from the config; it keeps serving until restart",
                    running.name
                ));
                continue;
            };
            if l.bind != running.bind {
                needs_restart.push(format!(
                    "listener \"{}\": bind {} -> {} needs a restart",
                    l.name, running.bind, l.bind
                ));
            }
            if l.protocol != running.protocol {
                needs_restart.push(format!(
                    "listener \"{}\": protocol {} -> {} needs a restart",
                    l.name, running.protocol, l.protocol
                ));
                continue;
            }
            let limits_changed = l.handshake_timeout != running.handshake_timeout
                || l.header_timeout != running.header_timeout
                || l.idle_timeout != running.idle_timeout
                || l.upstream_connect_timeout != running.upstream_connect_timeout
                || l.upstream_timeout != running.upstream_timeout
                || l.max_connections != running.max_connections
                || l.max_header_size != running.max_header_size;
            for (key, changed) in [
                ("strict_sni", l.strict_sni != running.strict_sni),
                ("min_tls_version", l.tls13_only != running.tls13_only),
                (
                    "session_resumption",
                    l.session_resumption != running.session_resumption,
                ),
                ("timeouts and limits", limits_changed),
            ] {
                if changed {
                    needs_restart.push(format!(
                        "listener \"{}\": {key} changed; needs a restart",
                        l.name
                    ));
                }
            }
            running.certificates = l.certificates.clone();
            running.upstream = l.upstream.clone();
            running.routes = l.routes.clone();
        }
        // A listener that keeps serving unchanged keeps its certificates, even when the new
        // file drops them: a reload never leaves a running listener with nothing to serve.
        for l in &applied.listeners {
            for name in &l.certificates {
                if applied.certificates.iter().any(|c| &c.name == name) {
                    continue;
                }
                if let Some(old) = current.certificates.iter().find(|c| &c.name == name) {
                    needs_restart.push(format!(
                        "certificate \"{name}\" was removed, but listener \"{}\" serves it until restart",
                        l.name
                    ));
                    applied.certificates.push(old.clone());
                    if let Some(i) = current.internal.iter().find(|i| &i.name == name) {
                        applied.internal.push(i.clone());
                    }
                }
            }
        }
        for l in &new.listeners {
            if !applied.listeners.iter().any(|r| r.name == l.name) {
                needs_restart.push(format!(
                    "listener \"{}\" is new; it starts on restart",
                    l.name
                ));
            }
        }
        let now = Timestamp::now();
        if let Err(e) = crate::internal::ensure(&applied, now) {
            tracing::error!("internal CA: {e}; internal certificates keep their previous version");
        }
        applied.upstream_tls = new.upstream_tls.clone();
        let report = self.store.reload_at(&applied.store_config(), now);
        let mut upstream_errors = Vec::new();
        for l in &applied.listeners {
            if let Some((_, routes)) = self.routes.iter().find(|(n, _)| n == &l.name) {
                match RouteTable::build(l, &applied.upstream_tls, applied.workers, now) {
                    Ok(table) => routes.store(Arc::new(table)),
                    Err(e) => {
                        tracing::error!(listener = %l.name, "{e}; the listener keeps its previous upstreams");
                        upstream_errors.push(format!("listener \"{}\": {e}", l.name));
                    }
                }
            }
        }
        observe_upstreams(&self.metrics, &self.routes);
        self.metrics
            .observe_reload(report.is_clean() && upstream_errors.is_empty(), now);
        self.metrics.observe_certificates(&self.store.snapshot());
        *current = applied;
        Ok(Reloaded {
            report,
            needs_restart,
            upstream_errors,
        })
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }
}

/// Runs a reload on tokio's blocking pool.
pub(crate) async fn reload_blocking(inner: Arc<Inner>) -> Result<Reloaded, ConfigError> {
    match tokio::task::spawn_blocking(move || inner.reload()).await {
        Ok(result) => result,
        // The reload panicked: a bug, but serving goes on with the previous snapshot.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Logs a certificate report, one line per certificate: errors for failures, warnings for
/// certificates with warnings (expiring within 30 days, incomplete chain, …).
pub fn log_report(report: &ReloadReport) {
    for entry in &report.entries {
        let outcome = entry.outcome.as_str();
        if entry.outcome.is_failure() {
            tracing::error!(certificate = %entry.name, outcome, "{entry}");
        } else if !entry.warnings.is_empty() {
            tracing::warn!(certificate = %entry.name, outcome, "{entry}");
        } else {
            tracing::info!(certificate = %entry.name, outcome, "{entry}");
        }
    }
}

/// Logs a reload, including what needs a restart.
pub fn log_reloaded(reloaded: &Reloaded) {
    log_report(&reloaded.report);
    for e in &reloaded.upstream_errors {
        tracing::error!("upstream TLS: {e}");
    }
    for what in &reloaded.needs_restart {
        tracing::warn!("not applied: {what}");
    }
}

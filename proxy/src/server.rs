//! A running Gatehouse: binds every listener, holds the certificate store, reloads on
//! request and drains on shutdown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use certstore::{ReloadReport, Store, Timestamp};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigError, Protocol};
use crate::forward::http::HttpListener;
use crate::listener::{ListenerState, accept_loop};
use crate::routes::{RouteTable, Routes};
use crate::tls::{self, ListenerTls, TlsOptions};

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
    inner: Arc<Inner>,
}

struct Inner {
    config_path: PathBuf,
    store: Store,
    /// The configuration the listeners were bound with, and the latest applied.
    config: Mutex<Config>,
    routes: Vec<(String, Routes)>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// What a reload did.
#[derive(Debug)]
pub struct Reloaded {
    pub report: ReloadReport,
    /// Changes that were not applied because they need a restart.
    pub needs_restart: Vec<String>,
}

impl Running {
    /// Loads the configuration and every certificate, binds every listener and starts
    /// serving. Fails, serving nothing, if anything is wrong.
    pub async fn start(config_path: &Path) -> Result<Self, StartError> {
        let config = Config::load(config_path)?;
        let (store, report) = Store::load(&config.store_config(), Timestamp::now())?;
        log_report(&report);
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut bound = Vec::new();
        let mut sockets = Vec::new();
        let mut routes = Vec::new();
        for l in &config.listeners {
            let socket = TcpListener::bind(l.bind)
                .await
                .map_err(|source| StartError::Bind {
                    listener: l.name.clone(),
                    addr: l.bind,
                    source,
                })?;
            let addr = socket.local_addr().map_err(|source| StartError::Bind {
                listener: l.name.clone(),
                addr: l.bind,
                source,
            })?;
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
            let listener_routes: Routes = Arc::new(ArcSwap::from_pointee(RouteTable::of(l)));
            routes.push((l.name.clone(), listener_routes.clone()));
            let state = Arc::new(ListenerState {
                config: l.clone(),
                tls: ListenerTls {
                    config: server_config,
                    resolver,
                    strict_sni: l.strict_sni,
                },
                routes: listener_routes,
                http: (l.protocol == Protocol::Http)
                    .then(|| Arc::new(HttpListener::new(l, tracker.clone()))),
            });
            tracing::info!(listener = %l.name, %addr, protocol = %l.protocol, upstream = %l.upstream, certificates = ?l.certificates, "listening");
            bound.push(Bound {
                name: l.name.clone(),
                addr,
                protocol: l.protocol,
            });
            sockets.push((socket, state));
        }
        for (socket, state) in sockets {
            tokio::spawn(accept_loop(
                socket,
                state,
                tracker.clone(),
                shutdown.clone(),
            ));
        }
        Ok(Self {
            listeners: bound,
            inner: Arc::new(Inner {
                config_path: config_path.to_owned(),
                store,
                config: Mutex::new(config),
                routes,
                shutdown,
                tracker,
            }),
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

    /// What SIGHUP does: re-read the configuration file and every certificate, and apply
    /// what can be applied without a restart. A file that no longer parses changes nothing.
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        let inner = &self.inner;
        let new = Config::load(&inner.config_path)?;
        let mut current = inner.config.lock().unwrap_or_else(PoisonError::into_inner);
        let mut needs_restart = Vec::new();
        let mut applied = current.clone();
        applied.certificates = new.certificates.clone();
        for running in applied.listeners.iter_mut() {
            match new.listeners.iter().find(|l| l.name == running.name) {
                None => needs_restart.push(format!(
                    "listener \"{}\" was removed from the config; it keeps serving until restart",
                    running.name
                )),
                Some(l) => {
                    if l.bind != running.bind && !(l.bind.port() == 0 && running.bind.port() == 0) {
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
                    for (key, changed) in [
                        ("strict_sni", l.strict_sni != running.strict_sni),
                        ("min_tls_version", l.tls13_only != running.tls13_only),
                        (
                            "session_resumption",
                            l.session_resumption != running.session_resumption,
                        ),
                        (
                            "timeouts and limits",
                            l.handshake_timeout != running.handshake_timeout
                                || l.header_timeout != running.header_timeout
                                || l.idle_timeout != running.idle_timeout
                                || l.upstream_connect_timeout != running.upstream_connect_timeout
                                || l.upstream_timeout != running.upstream_timeout
                                || l.max_connections != running.max_connections
                                || l.max_header_size != running.max_header_size,
                        ),
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
        let report = inner.store.reload(&applied.store_config());
        for l in &applied.listeners {
            if let Some((_, routes)) = inner.routes.iter().find(|(n, _)| n == &l.name) {
                routes.store(Arc::new(RouteTable::of(l)));
            }
        }
        applied.path = new.path.clone();
        *current = applied;
        Ok(Reloaded {
            report,
            needs_restart,
        })
    }

    /// Stops accepting, lets in-flight requests and streams finish for up to `grace`,
    /// then returns (whatever is still open is dropped).
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let drained = tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                ?grace,
                "shutdown timeout reached; closing remaining connections"
            );
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

/// Logs a certificate report, one line per certificate.
pub fn log_report(report: &ReloadReport) {
    for entry in &report.entries {
        if entry.outcome.is_failure() {
            tracing::error!(certificate = %entry.name, outcome = entry.outcome.as_str(), "{entry}");
        } else {
            tracing::info!(certificate = %entry.name, outcome = entry.outcome.as_str(), "{entry}");
        }
    }
}

/// Logs a reload, including what needs a restart.
pub fn log_reloaded(reloaded: &Reloaded) {
    log_report(&reloaded.report);
    for what in &reloaded.needs_restart {
        tracing::warn!("not applied: {what}");
    }
}

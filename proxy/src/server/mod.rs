//! A running Gatehouse: binds every listener and the admin API, holds the certificate
//! store, reloads on request and drains on shutdown.
//!
//! # Layout
//! - `start`: load, bind, start the workers and the admin API.
//! - `reload`: apply a changed config and certificates without a restart.
//! - `error`: why a start failed.

mod error;
mod reload;
mod start;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use certstore::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::error::StartError;
use crate::config::{Config, ConfigError};
use crate::ops::admin::{self, Control};
use crate::ops::metrics::Metrics;
use crate::ops::report::Reloaded;
use crate::serve::forward::routes::Routes;
use crate::serve::workers::Workers;

/// A listener as bound.
#[derive(Debug, Clone)]
pub struct Bound {
    pub name: String,
    pub addr: SocketAddr,
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

/// What the running instance shares with the admin API and the signal handlers.
struct Inner {
    config_path: PathBuf,
    store: Store,
    /// The configuration the listeners were bound with, with reloads applied.
    config: Mutex<Config>,
    routes: Vec<(String, Routes)>,
    /// The listeners' shared session ticket keys, read again at each reload.
    tickets: Vec<Arc<crate::serve::tickets::FileTicketer>>,
    /// The listeners' client certificate verifiers (mutual TLS), read again at each reload.
    client_verifiers: Vec<Arc<crate::serve::client_auth::ClientVerifier>>,
    metrics: Arc<Metrics>,
    /// True from the moment shutdown starts: `/healthz` answers 503.
    draining: AtomicBool,
    shutdown: CancellationToken,
    /// Stops the admin API once draining is over.
    admin_stop: CancellationToken,
    tracker: TaskTracker,
    pid_file: Option<PathBuf>,
    /// The admin API's bearer token, read again at each reload (it may be rotated).
    admin_token: admin::Token,
    /// What the last reload answered, for the certificates page.
    last_reload: Mutex<Option<admin::LastReload>>,
}

impl Control for Inner {
    fn store(&self) -> &Store {
        &self.store
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    fn reload(&self) -> Result<Reloaded, ConfigError> {
        let result = Inner::reload(self);
        let last = admin::LastReload::of(&result, certstore::Timestamp::now());
        *self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(last);
        result
    }

    fn config(&self) -> Config {
        self.config
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    fn last_reload(&self) -> Option<admin::LastReload> {
        self.last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Exports `gatehouse_upstream_insecure` for every upstream that skips verification, and
/// logs the configuration's warnings (`ops::advice`, the ones `check` prints): at start
/// and on every reload.
fn observe(
    config: &Config,
    store: &certstore::Store,
    metrics: &Metrics,
    routes: &[(String, Routes)],
) {
    let mut insecure = Vec::new();
    for (listener, table) in routes {
        for u in table.load().upstreams() {
            if u.options.insecure_skip_verify {
                insecure.push((listener.clone(), u.original.clone()));
            }
        }
    }
    metrics.observe_insecure(&insecure);
    let snapshot = store.snapshot();
    for w in crate::ops::advice::warnings(config, |name| snapshot.certificate(name).map(|c| &**c)) {
        tracing::warn!("{w}");
    }
    for cert in snapshot.certificates() {
        if let Some(certstore::Stapling::Stapled(staple)) = &cert.ocsp
            && let certstore::OcspStatus::Revoked { at } = staple.status
        {
            // Stapled as the CA says: clients decide, and those that check refuse it.
            tracing::error!(
                certificate = %cert.name,
                "certificate \"{}\" is REVOKED (since {at}, says its OCSP response {}): clients that check refuse it; install a new certificate",
                cert.name,
                staple.path.display()
            );
        }
    }
}

impl Running {
    /// The address a listener is bound to.
    pub fn addr(&self, listener: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|b| b.name == listener)
            .map(|b| b.addr)
    }

    /// What SIGHUP does: re-reads the configuration file and every certificate, and
    /// applies what can be applied without a restart. Runs on a blocking thread: it reads
    /// files and may issue keys, which must not stall the runtime.
    pub async fn reload_async(&self) -> Result<Reloaded, ConfigError> {
        admin::reload_blocking(self.inner.clone()).await
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

    /// The certificates' state, as systemd shows it.
    pub fn status(&self) -> String {
        crate::ops::notify::status(&self.inner.store.snapshot(), certstore::Timestamp::now())
    }

    /// The certificates whose OCSP response Gatehouse fetches, as served now: name, chain
    /// (leaf first) and the file the response goes to.
    pub fn ocsp_targets(&self) -> Vec<crate::ops::ocsp_fetch::Target> {
        let config = self
            .inner
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let snapshot = self.inner.store.snapshot();
        config
            .ocsp_fetch
            .iter()
            .filter_map(|name| {
                let cert = snapshot.certificate(name)?;
                let spec = config.certificates.iter().find(|c| &c.name == name)?;
                Some(crate::ops::ocsp_fetch::Target {
                    name: name.clone(),
                    chain: cert.certified_key.cert.clone(),
                    file: spec.ocsp.clone()?,
                })
            })
            .collect()
    }

    /// What `watch = true` watches; `None` when it is off.
    pub fn watched(&self) -> Option<crate::ops::watch::Watched> {
        let config = self
            .inner
            .config
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        config.watch.then(|| crate::ops::watch::Watched {
            files: config.files_read(&self.inner.config_path),
            certificates: config.certificates.clone(),
        })
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

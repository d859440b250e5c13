//! Reloading: the config file and every certificate are read again; what can change
//! without a restart (certificates, upstreams, routes, upstream trust) is applied, the rest
//! is reported as needing a restart. A config that no longer parses changes nothing.

use std::sync::{Arc, PoisonError};

use certstore::Timestamp;

use super::{Inner, observe};
use crate::config::{Config, ConfigError};
use crate::ops::report::Reloaded;
use crate::serve::forward::routes::RouteTable;

impl Inner {
    /// Re-reads the configuration file and every certificate, and applies what can be
    /// applied without a restart. A file that no longer parses changes nothing.
    pub(super) fn reload(&self) -> Result<Reloaded, ConfigError> {
        let new = Config::load(&self.config_path).inspect_err(|_| {
            self.metrics.observe_reload(false, Timestamp::now());
        })?;
        let mut current = self.config.lock().unwrap_or_else(PoisonError::into_inner);
        let mut needs_restart = restart_keys(&current, &new);
        let mut applied = current.clone();
        applied.certificates = new.certificates.clone();
        applied.internal = new.internal.clone();
        if new.state_dir != current.state_dir {
            keep_internal_where_they_are(&mut applied, &current);
        }
        apply_listeners(&mut applied, &new, &mut needs_restart);
        keep_served_certificates(&mut applied, &current, &mut needs_restart);
        let now = Timestamp::now();
        if let Err(e) = crate::certs::internal::ensure(&applied, now) {
            tracing::error!("internal CA: {e}; internal certificates keep their previous version");
        }
        applied.upstream_tls = new.upstream_tls.clone();
        applied.watch = new.watch;
        applied.ocsp_fetch = new.ocsp_fetch.clone();
        self.reread_admin_token(&applied);
        for tickets in &self.tickets {
            if let Err(e) = tickets.reload() {
                tracing::error!("{e}; the listener keeps its previous ticket keys");
            }
        }
        for verifier in &self.client_verifiers {
            if let Err(e) = verifier.reload() {
                tracing::error!("{e}; the listener keeps verifying clients as before");
            }
        }
        let report = self.store.reload_at(&applied.store_config(), now);
        let upstream_errors = self.rebuild_routes(&applied, now);
        observe(&applied, &self.store, &self.metrics, &self.routes);
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

    /// Reads the admin token file again (a changed `[admin]` section needs a restart);
    /// one that no longer reads keeps the previous token.
    fn reread_admin_token(&self, applied: &Config) {
        let Some(path) = applied.admin.as_ref().and_then(|a| a.token_file.as_ref()) else {
            return;
        };
        match crate::ops::admin::read_token(path) {
            Ok(token) => self.admin_token.store(Some(Arc::new(token))),
            Err(e) => tracing::error!("{e}; the admin API keeps its previous token"),
        }
    }

    /// Swaps in each listener's new route table; one that fails to build (a trust file or
    /// client certificate that no longer loads) leaves the previous one. Returns the
    /// failures.
    fn rebuild_routes(&self, applied: &Config, now: Timestamp) -> Vec<String> {
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
        upstream_errors
    }
}

/// Top-level settings are read once, at start: a change to one needs a restart.
fn restart_keys(current: &Config, new: &Config) -> Vec<String> {
    let mut needs_restart = Vec::new();
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
    needs_restart
}

/// With a new `state_dir`, internal certificates stay where the running instance keeps
/// them.
fn keep_internal_where_they_are(applied: &mut Config, current: &Config) {
    for c in applied.certificates.iter_mut() {
        if let Some(old) = current.certificates.iter().find(|o| o.name == c.name)
            && current.internal.iter().any(|i| i.name == c.name)
        {
            *c = old.clone();
        }
    }
    applied.internal = current.internal.clone();
}

/// Takes each running listener's new certificates, upstream and routes; what cannot
/// change without a restart (bind, protocol, TLS settings, limits) is reported instead.
fn apply_listeners(applied: &mut Config, new: &Config, needs_restart: &mut Vec<String>) {
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
            || l.send_timeout != running.send_timeout
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
            (
                "session_ticket_key_file",
                l.session_ticket_key_file != running.session_ticket_key_file,
            ),
            (
                "client_auth, client_ca_file or client_crl_file",
                l.client_auth != running.client_auth,
            ),
            (
                "proxy_protocol or trusted_proxies",
                l.proxy_protocol != running.proxy_protocol,
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
        // Applied when the routes are rebuilt: new upstream connections follow them.
        running.certificates = l.certificates.clone();
        running.upstream = l.upstream.clone();
        running.routes = l.routes.clone();
        running.upstream_idle_timeout = l.upstream_idle_timeout;
    }
    for l in &new.listeners {
        if !applied.listeners.iter().any(|r| r.name == l.name) {
            needs_restart.push(format!(
                "listener \"{}\" is new; it starts on restart",
                l.name
            ));
        }
    }
}

/// A listener that keeps serving unchanged keeps its certificates, even when the new file
/// drops them: a reload never leaves a running listener with nothing to serve.
fn keep_served_certificates(
    applied: &mut Config,
    current: &Config,
    needs_restart: &mut Vec<String>,
) {
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
}

//! Prometheus metrics. Label values are resolved once per listener at startup (and once
//! per status code on first use), so recording on the hot path is an atomic add — never a
//! label lookup or a string format.
//!
//! # Layout
//! - `listener`: one listener's handles, what requests and connections record through.

mod listener;

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use certstore::Snapshot;

use self::listener::Handles;
pub use self::listener::{ConnectionGuard, ListenerMetrics};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Request duration buckets (seconds): 1 ms to 60 s, the range an appliance's UI and API see.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Handshake outcomes, as the `result` label.
pub const HANDSHAKE_RESULTS: [&str; 8] = [
    "ok",
    "closed",
    "client_certificate",
    "proxy_protocol",
    "no_certificate",
    "protocol_error",
    "timeout",
    "unrecognized_name",
];

/// Upstream error kinds, as the `kind` label.
/// `reset`: the upstream ended a response before its end (the client got a truncated one).
pub const UPSTREAM_ERROR_KINDS: [&str; 5] =
    ["connect", "timeout", "protocol", "tls_verify", "reset"];
/// Why accepting a connection failed: `open_files` (the process's limit: EMFILE),
/// `system_open_files` (the system's: ENFILE), `memory` (ENOBUFS, ENOMEM), `other`.
pub const ACCEPT_ERROR_KINDS: [&str; 4] = ["open_files", "system_open_files", "memory", "other"];

/// Errors that are the client's doing, counted so they are not blamed on an upstream.
/// `request_body`: a request body that broke off or was malformed (bad chunking);
/// `host`: more than one `Host`, or one that disagrees with the request target;
/// `protocol`: a connection ended by an HTTP protocol error (an HTTP/2 reset flood);
/// `header_timeout`, `send_timeout`: a slow client cut by that timeout.
pub const CLIENT_ERROR_KINDS: [&str; 5] = [
    "request_body",
    "host",
    "protocol",
    "header_timeout",
    "send_timeout",
];

/// HTTP status codes span 100..=599.
const STATUS_CODES: usize = 500;

/// Every metric Gatehouse exports.
pub struct Metrics {
    registry: Registry,
    cert_expiry: IntGaugeVec,
    cert_info: IntGaugeVec,
    cert_stale: IntGaugeVec,
    ocsp_expiry: IntGaugeVec,
    reloads: IntCounterVec,
    reload_timestamp: IntGauge,
    handshakes: IntCounterVec,
    connections_active: IntGaugeVec,
    worker_connections: IntGaugeVec,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    client_errors: IntCounterVec,
    accept_errors: IntCounterVec,
    upstream_insecure: IntGaugeVec,
    /// Touched on load and reload only.
    published: Mutex<Published>,
    /// When false, listeners get no-op handles (for measuring what metrics cost).
    enabled: bool,
}

/// `collector`, registered with `registry`.
fn registered<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: prometheus::Result<C>,
) -> C {
    let collector = must(collector);
    must(registry.register(Box::new(collector.clone())));
    collector
}

fn gauges(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    registered(r, IntGaugeVec::new(Opts::new(name, help), labels))
}

fn counters(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    registered(r, IntCounterVec::new(Opts::new(name, help), labels))
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Names and labels are constants checked by the unit test below; a failure here is a
    // programming error caught before release.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    pub fn new(enabled: bool) -> Arc<Self> {
        let registry = Registry::new();
        let r = &registry;
        Arc::new(Self {
            cert_expiry: gauges(
                r,
                "gatehouse_certificate_expiry_timestamp_seconds",
                "notAfter of the served leaf certificate, Unix seconds",
                &["certificate"],
            ),
            cert_info: gauges(
                r,
                "gatehouse_certificate_info",
                "The served certificate (value is always 1)",
                &["certificate", "serial", "issuer"],
            ),
            cert_stale: gauges(
                r,
                "gatehouse_certificate_stale",
                "1 when the certificate serves an earlier version (kept, or last known good) because its files fail to load",
                &["certificate"],
            ),
            ocsp_expiry: gauges(
                r,
                "gatehouse_certificate_ocsp_expiry_timestamp_seconds",
                "nextUpdate of the OCSP response stapled for the certificate, Unix seconds",
                &["certificate"],
            ),
            reloads: counters(
                r,
                "gatehouse_certificate_reloads_total",
                "Certificate loads and reloads, by result (failure: some certificate kept its previous version)",
                &["result"],
            ),
            reload_timestamp: registered(
                r,
                IntGauge::new(
                    "gatehouse_certificate_reload_timestamp_seconds",
                    "When certificates last loaded without failure, Unix seconds",
                ),
            ),
            handshakes: counters(
                r,
                "gatehouse_tls_handshakes_total",
                "TLS handshakes by listener and result",
                &["listener", "result"],
            ),
            connections_active: gauges(
                r,
                "gatehouse_connections_active",
                "Open client connections",
                &["listener"],
            ),
            worker_connections: gauges(
                r,
                "gatehouse_worker_connections",
                "Open client connections on each worker thread, all listeners together",
                &["worker"],
            ),
            requests: counters(
                r,
                "gatehouse_http_requests_total",
                "HTTP requests answered, by status code",
                &["listener", "code"],
            ),
            request_duration: registered(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gatehouse_http_request_duration_seconds",
                        "From request headers received to response body sent",
                    )
                    .buckets(DURATION_BUCKETS.to_vec()),
                    &["listener"],
                ),
            ),
            upstream_errors: counters(
                r,
                "gatehouse_upstream_errors_total",
                "Failures reaching upstreams, by kind",
                &["listener", "kind"],
            ),
            client_errors: counters(
                r,
                "gatehouse_client_errors_total",
                "Requests refused or cut for the client's own error, by kind",
                &["listener", "kind"],
            ),
            accept_errors: counters(
                r,
                "gatehouse_accept_errors_total",
                "Failed accepts by kind (each backs off 100 ms)",
                &["listener", "kind"],
            ),
            upstream_insecure: gauges(
                r,
                "gatehouse_upstream_insecure",
                "1 for each upstream whose certificate is not verified (upstream_insecure_skip_verify)",
                &["listener", "upstream"],
            ),
            published: Mutex::new(Published::default()),
            enabled,
            // Last: the fields above borrow it.
            registry,
        })
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }

    /// Publishes what a snapshot serves (after every load and reload). New series are set
    /// before stale ones are removed, so a scrape never sees a certificate vanish.
    pub fn observe_certificates(&self, snapshot: &Snapshot) {
        let mut expiry = Vec::new();
        let mut info = Vec::new();
        let mut stapled = Vec::new();
        for cert in snapshot.certificates() {
            if let Some(certstore::Stapling::Stapled(staple)) = &cert.ocsp
                && let Some(next) = staple.next_update
            {
                let s = vec![cert.name.clone()];
                set_gauge(&self.ocsp_expiry, &s, next.unix_seconds());
                stapled.push(s);
            }
            let leaf = cert.leaf();
            let e = vec![cert.name.clone()];
            let i = vec![cert.name.clone(), leaf.serial.clone(), leaf.issuer.clone()];
            set_gauge(&self.cert_expiry, &e, leaf.not_after.unix_seconds());
            set_gauge(&self.cert_info, &i, 1);
            let stale = snapshot.stale(&cert.name).is_some();
            set_gauge(&self.cert_stale, &e, i64::from(stale));
            expiry.push(e);
            info.push(i);
        }
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        replace_series(&self.cert_stale, &mut published.stale, expiry.clone());
        replace_series(&self.cert_expiry, &mut published.expiry, expiry);
        replace_series(&self.cert_info, &mut published.info, info);
        replace_series(&self.ocsp_expiry, &mut published.ocsp, stapled);
    }

    /// Counts a load or reload.
    pub fn observe_reload(&self, clean: bool, now: certstore::Timestamp) {
        self.reloads
            .with_label_values(&[if clean { "success" } else { "failure" }])
            .inc();
        if clean {
            self.reload_timestamp.set(now.unix_seconds());
        }
    }

    /// Publishes which upstreams skip verification, as (listener, upstream) pairs.
    pub fn observe_insecure(&self, insecure: &[(String, String)]) {
        let series: Vec<Vec<String>> = insecure
            .iter()
            .map(|(l, u)| vec![l.clone(), u.clone()])
            .collect();
        for labels in &series {
            set_gauge(&self.upstream_insecure, labels, 1);
        }
        let mut published = self
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        replace_series(&self.upstream_insecure, &mut published.insecure, series);
    }

    /// One gauge of open connections per worker: exported, or (metrics off) counted all
    /// the same, since new connections go to the worker with the fewest.
    pub fn worker_connections(&self, workers: usize) -> Vec<IntGauge> {
        (0..workers)
            .map(|i| match self.enabled {
                true => self.worker_connections.with_label_values(&[&i.to_string()]),
                false => must(IntGauge::new("worker_connections", "unexported")),
            })
            .collect()
    }

    /// Handles for one listener, resolved now so recording never looks labels up.
    ///
    /// A listener lives as long as the process, so its handles do too: a `'static`
    /// reference spares every request a reference-count update on a cache line all workers
    /// share.
    pub fn listener(&self, name: &str) -> &'static ListenerMetrics {
        if !self.enabled {
            return Box::leak(Box::new(ListenerMetrics::disabled()));
        }
        let handshakes = HANDSHAKE_RESULTS.map(|r| self.handshakes.with_label_values(&[name, r]));
        let upstream_errors =
            UPSTREAM_ERROR_KINDS.map(|k| self.upstream_errors.with_label_values(&[name, k]));
        let client_errors =
            CLIENT_ERROR_KINDS.map(|k| self.client_errors.with_label_values(&[name, k]));
        let accept_errors =
            ACCEPT_ERROR_KINDS.map(|k| self.accept_errors.with_label_values(&[name, k]));
        Box::leak(Box::new(ListenerMetrics {
            inner: Some(Handles {
                name: name.to_owned(),
                handshakes,
                connections_active: self.connections_active.with_label_values(&[name]),
                request_duration: self.request_duration.with_label_values(&[name]),
                upstream_errors,
                client_errors,
                accept_errors,
                requests_vec: self.requests.clone(),
                requests_by_code: (0..STATUS_CODES).map(|_| OnceLock::new()).collect(),
            }),
        }))
    }
}

fn set_gauge(vec: &IntGaugeVec, labels: &[String], value: i64) {
    let refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    vec.with_label_values(&refs).set(value);
}

/// Removes the series in `old` that are not in `new`, then remembers `new`.
fn replace_series(vec: &IntGaugeVec, old: &mut Vec<Vec<String>>, new: Vec<Vec<String>>) {
    for stale in old.iter().filter(|o| !new.contains(o)) {
        let refs: Vec<&str> = stale.iter().map(String::as_str).collect();
        let _ = vec.remove_label_values(&refs);
    }
    *old = new;
}

/// Label sets currently exported by the gauges that follow reloads.
#[derive(Default)]
struct Published {
    expiry: Vec<Vec<String>>,
    stale: Vec<Vec<String>>,
    info: Vec<Vec<String>>,
    insecure: Vec<Vec<String>>,
    ocsp: Vec<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_register_and_render() {
        let m = Metrics::new(true);
        let l = m.listener("web");
        l.handshake("ok");
        l.request(http::StatusCode::OK, 0.01);
        l.request(http::StatusCode::OK, 0.02);
        l.upstream_error("connect");
        let text = m.render();
        assert!(
            text.contains(r#"gatehouse_tls_handshakes_total{listener="web",result="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"gatehouse_http_requests_total{code="200",listener="web"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"gatehouse_upstream_errors_total{kind="connect",listener="web"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_http_request_duration_seconds_count{listener=\"web\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn disabled_metrics_record_nothing() {
        let m = Metrics::new(false);
        let l = m.listener("web");
        l.handshake("ok");
        let _c = l.connection();
        assert!(!m.render().contains("listener=\"web\""));
    }
}

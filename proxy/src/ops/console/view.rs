//! The table's rows: each configured certificate as served now (the store's snapshot),
//! with where the configuration uses it.

use bytes::Bytes;
use certstore::{Store, Timestamp};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::page::{self, Row, Viewer};
use super::{html, not_found};
use crate::config::{Config, ca_dir};
use crate::ops::admin::Control;

/// Every configured certificate, in the configuration's order.
pub fn rows(store: &Store, config: &Config) -> Vec<Row> {
    let snapshot = store.snapshot();
    let now = Timestamp::now();
    config
        .certificates
        .iter()
        .map(|spec| {
            let internal = config.internal.iter().any(|i| i.name == spec.name);
            let Some(cert) = snapshot.certificate(&spec.name) else {
                return Row {
                    name: spec.name.clone(),
                    internal,
                    warnings: vec![
                        "not served: it did not load (see the last reload, or run `gatehouse check`)"
                            .into(),
                    ],
                    used_by: used_by(config, &spec.name, &[]),
                    ..Row::default()
                };
            };
            let leaf = cert.leaf();
            let names = leaf.names();
            Row {
                name: spec.name.clone(),
                used_by: used_by(config, &spec.name, &names),
                names,
                issuer: leaf.issuer.clone(),
                serial: leaf.serial.clone(),
                not_after: leaf.not_after.to_string(),
                days_left: leaf.days_left(now),
                chain: cert.chain.iter().map(|c| c.subject.clone()).collect(),
                chain_complete: cert.chain_complete(),
                warnings: cert.warnings.iter().map(|w| w.to_string()).collect(),
                internal,
                stale: snapshot.stale(&spec.name).map(str::to_owned),
                ocsp: cert.ocsp.as_ref().map(|s| match s {
                    certstore::Stapling::Stapled(s) => s.status.as_str().to_owned(),
                    certstore::Stapling::Refused { .. } => "refused".to_owned(),
                }),
                loaded: true,
            }
        })
        .collect()
}

/// The listeners that serve certificate `name`, the routes among theirs its `names`
/// cover, and the admin API when it is its certificate.
fn used_by(config: &Config, name: &str, names: &[String]) -> Vec<String> {
    let mut used = Vec::new();
    for l in config
        .listeners
        .iter()
        .filter(|l| l.certificates.iter().any(|c| c == name))
    {
        used.push(format!("listener {}", l.name));
        for r in &l.routes {
            if certstore::covers(names, &r.server_name) {
                used.push(format!("route {} ({})", r.server_name, l.name));
            }
        }
    }
    if config
        .admin
        .as_ref()
        .is_some_and(|a| a.certificate.as_deref() == Some(name))
    {
        used.push("admin".into());
    }
    used
}

/// Whether the internal CA exists (its certificate can be downloaded).
pub fn has_ca(config: &Config) -> bool {
    ca_dir(&config.state_dir)
        .join(certstore::InternalCa::CERT_FILE)
        .is_file()
}

/// The page of certificate `name`.
pub fn certificate<C: Control>(
    control: &C,
    name: &str,
    viewer: Viewer<'_>,
) -> Response<Full<Bytes>> {
    let config = control.config();
    let Some(row) = rows(control.store(), &config)
        .into_iter()
        .find(|r| r.name == name)
    else {
        return not_found();
    };
    let backups = if viewer.csrf.is_some() {
        crate::certs::backup_summaries(&config.state_dir, name, Timestamp::now())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    html(
        StatusCode::OK,
        page::certificate(&row, &backups, viewer, has_ca(&config)),
    )
}

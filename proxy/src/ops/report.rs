//! What a reload did: the certificate store's report plus what the proxy could not apply,
//! as log lines (SIGHUP, `POST /reload`) and as the JSON the admin API answers.

use certstore::{LoadedCert, Outcome, ReloadReport, Timestamp, Version};
use serde_json::{Value, json};

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

/// One served certificate as `/certs` shows it. Never key material.
/// `stale` says why the certificate serves an earlier version than its files hold.
pub fn cert_json(cert: &LoadedCert, stale: Option<&str>, now: Timestamp) -> Value {
    let leaf = cert.leaf();
    let mut v = json!({
        "name": cert.name,
        "names": leaf.names(),
        "subject": leaf.subject,
        "issuer": leaf.issuer,
        "serial": leaf.serial,
        "not_before": leaf.not_before.to_string(),
        "not_after": leaf.not_after.to_string(),
        "days_left": leaf.days_left(now),
        "sha256_fingerprint": leaf.fingerprint_sha256,
        "key": leaf.key,
        "chain": cert.chain.iter().map(|c| c.subject.clone()).collect::<Vec<_>>(),
        "chain_complete": cert.chain_complete(),
        "completed_from": cert.completed.iter().map(|c| c.path.display().to_string()).collect::<Vec<_>>(),
        "stale": stale.is_some(),
        "warnings": cert.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        "source_files": cert.sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "loaded_at": cert.loaded_at.to_string(),
    });
    if let Some(why) = stale {
        v["stale_reason"] = Value::String(why.to_owned());
    }
    if let Some(stapling) = &cert.ocsp {
        v["ocsp"] = stapling_json(stapling);
    }
    v
}

/// The OCSP staple of a certificate, for `/certs`.
fn stapling_json(stapling: &certstore::Stapling) -> Value {
    match stapling {
        certstore::Stapling::Stapled(s) => json!({
            "stapled": true,
            "file": s.path.display().to_string(),
            "status": s.status.as_str(),
            "this_update": s.this_update.to_string(),
            "next_update": s.next_update.map(|n| n.to_string()),
        }),
        certstore::Stapling::Refused { path, reason } => json!({
            "stapled": false,
            "file": path.display().to_string(),
            "refused": reason.to_string(),
        }),
    }
}

fn version_json(v: &Version) -> Value {
    json!({"serial": v.serial, "not_after": v.not_after.to_string()})
}

/// A reload report as JSON: what `POST /reload` answers and `gatehouse reload` prints.
pub fn report_json(report: &ReloadReport) -> Value {
    let certs: Vec<Value> = report
        .entries
        .iter()
        .map(|e| {
            let mut v = json!({
                "name": e.name,
                "outcome": e.outcome.as_str(),
                "warnings": e.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                "completed": e.completed.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            });
            let (before, after) = match &e.outcome {
                Outcome::Added(a) => (None, Some(a)),
                Outcome::Updated { before, after } => (Some(before), Some(after)),
                Outcome::Unchanged(v) => (Some(v), Some(v)),
                Outcome::KeptPrevious { serving, .. } => (Some(serving), Some(serving)),
                Outcome::LastKnownGood { serving, .. } => (None, Some(serving)),
                Outcome::Removed(b) => (Some(b), None),
                _ => (None, None),
            };
            if let Some(b) = before {
                v["before"] = version_json(b);
            }
            if let Some(a) = after {
                v["after"] = version_json(a);
            }
            if let Some(err) = e.outcome.error() {
                v["error"] = Value::String(err.to_string());
            }
            v
        })
        .collect();
    json!({
        "clean": report.is_clean(),
        "generation": report.generation,
        "certificates": certs,
    })
}

pub fn reloaded_json(reloaded: &Reloaded) -> Value {
    let mut v = report_json(&reloaded.report);
    v["clean"] = json!(reloaded.is_clean());
    v["needs_restart"] = json!(reloaded.needs_restart);
    v["upstream_errors"] = json!(reloaded.upstream_errors);
    v
}

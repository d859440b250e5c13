//! `gatehouse certs list`: every configured certificate, loaded as `run` would.

use std::path::Path;

use certstore::{CertSpec, LoadedCert, Timestamp};

use super::Outcome;
use crate::config::{Config, last_good_dir};
use crate::exit;
use crate::ops::table::{IDENTITY_HEADER, identity_columns, render};

fn source_text(spec: &CertSpec) -> String {
    let paths: Vec<String> = spec
        .source
        .paths()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    paths.join(", ")
}

/// `certs list`: the configured certificates as a table; exit 1 when one does not load.
pub fn list(config_path: &Path) -> Outcome {
    let config = Config::load(config_path)?;
    let now = Timestamp::now();
    let pending = super::internal::plan(&config, now);
    let pool = config.intermediates();
    let mut failed = false;
    let rows: Vec<Vec<String>> = config
        .certificates
        .iter()
        .map(|spec| {
            if let Some(p) = pending.iter().find(|p| p.name == spec.name) {
                return vec![
                    spec.name.clone(),
                    "-".into(),
                    "internal CA".into(),
                    "-".into(),
                    "-".into(),
                    format!("to be issued at start ({})", p.reason),
                    source_text(spec),
                ];
            }
            match LoadedCert::load(spec, now, &pool) {
                Ok(c) => {
                    let mut row = identity_columns(&c, now);
                    row.extend([
                        format!(
                            "{} served, {}",
                            c.chain.len(),
                            if c.chain_complete() {
                                "complete"
                            } else {
                                "INCOMPLETE: the leaf's issuer is missing"
                            }
                        ),
                        source_text(spec),
                    ]);
                    row
                }
                Err(e) => {
                    failed = true;
                    let kept =
                        certstore::last_good_path(&last_good_dir(&config.state_dir), &spec.name);
                    let stale = if kept.exists() {
                        format!(
                            " (stale: gatehouse serves the last known good version, {})",
                            kept.display()
                        )
                    } else {
                        String::new()
                    };
                    vec![
                        spec.name.clone(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        format!("ERROR: {e}{stale}"),
                        source_text(spec),
                    ]
                }
            }
        })
        .collect();
    print!(
        "{}",
        render(
            &[&IDENTITY_HEADER[..], &["CHAIN", "SOURCE"]].concat(),
            &rows
        )
    );
    Ok(if failed { exit::PROBLEMS } else { exit::OK })
}

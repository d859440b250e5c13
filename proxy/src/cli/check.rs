//! `gatehouse check --config FILE`: load everything as `run` would, without binding, and
//! print one row per certificate and every warning. Exit 0 if `run` would start, 1 with
//! every error otherwise: the config's and the certificates' in one pass.

use std::path::Path;

use certstore::{LoadedCert, Store, Timestamp};

use crate::config::{Config, ConfigError, last_good_dir};
use crate::exit;
use crate::ops::advice;
use crate::ops::table::certificate_table;

/// Runs the check, printing to stdout (report) and stderr (errors); returns the exit code.
pub fn check(config_path: &Path) -> i32 {
    let now = Timestamp::now();
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            report_invalid(&e, now);
            eprintln!("check failed: gatehouse would not start");
            return exit::PROBLEMS;
        }
    };
    let verdict = certificates(&config, now);
    let problems = other_problems(&config, now);
    for p in &problems {
        eprintln!("error: {p}");
    }
    match verdict {
        Certificates::Load if problems.is_empty() => {
            println!(
                "config {} is OK: {} certificate(s), {} listener(s)",
                config_path.display(),
                config.certificates.len(),
                config.listeners.len()
            );
            exit::OK
        }
        Certificates::Stale(fallbacks) if problems.is_empty() => {
            eprintln!(
                "check failed: gatehouse would start, serving {}; fix the files above",
                fallbacks.join(", ")
            );
            exit::PROBLEMS
        }
        _ => {
            eprintln!("check failed: gatehouse would not start");
            exit::PROBLEMS
        }
    }
}

/// A config that does not check: its errors, and those of the certificates that were
/// well configured, loaded all the same so that every problem is reported in one pass.
fn report_invalid(e: &ConfigError, now: Timestamp) {
    eprintln!("{e}");
    if let ConfigError::Invalid { certificates, .. } = e {
        let pool = certstore::Intermediates::gather(&certstore::StoreConfig {
            certificates: certificates.clone(),
            ..Default::default()
        });
        for spec in certificates {
            if let Err(e) = LoadedCert::load(spec, now, &pool) {
                eprintln!("error: certificate \"{}\": {e}", spec.name);
            }
        }
    }
}

/// What else `run` checks before it serves: every upstream's TLS client, the token.
fn other_problems(config: &Config, now: Timestamp) -> Vec<String> {
    let mut problems = Vec::new();
    for l in &config.listeners {
        if let Err(e) = crate::serve::forward::routes::RouteTable::build(
            l,
            &config.upstream_tls,
            config.workers,
            now,
        ) {
            problems.push(format!("listener \"{}\": {e}", l.name));
        }
        if let Some(path) = &l.session_ticket_key_file
            && let Err(e) = crate::serve::tickets::FileTicketer::load(path)
        {
            problems.push(format!("listener \"{}\": {e}", l.name));
        }
        if let Some(c) = &l.client_auth
            && let Err(e) = crate::serve::client_auth::ClientVerifier::load(c)
        {
            problems.push(format!("listener \"{}\": {e}", l.name));
        }
    }
    if let Some(path) = config.admin.as_ref().and_then(|a| a.token_file.as_ref())
        && let Err(e) = crate::ops::admin::read_token(path)
    {
        problems.push(e.to_string());
    }
    problems
}

/// How the certificates' files load.
enum Certificates {
    Load,
    /// Some fail, and each of those has a last good version `run` would serve (listed).
    Stale(Vec<String>),
    /// Some fail with nothing to serve instead.
    Fail,
}

/// Loads every certificate from its files as they are (the last good versions `run`
/// would fall back on are not loaded, and check writes none), printing the table and the
/// warnings, or the errors.
fn certificates(config: &Config, now: Timestamp) -> Certificates {
    // Internal certificates still to be issued are issued by `run`.
    let pending = crate::certs::internal::plan(config, now);
    let mut store_config = config.store_config();
    store_config
        .certificates
        .retain(|c| !pending.iter().any(|p| p.name == c.name));
    store_config.last_good_dir = None;
    let e = match Store::load(&store_config, now) {
        Ok((store, _)) => {
            let snapshot = store.snapshot();
            print!(
                "{}",
                certificate_table(snapshot.certificates().map(|c| &**c), now)
            );
            for w in advice::warnings(config, |name| snapshot.certificate(name).map(|c| &**c)) {
                println!("warning: {w}");
            }
            let limit = crate::serve::open_files::hard_limit();
            if let Some(w) = limit.and_then(|l| crate::serve::open_files::warning(config, l)) {
                println!("warning: {w}");
            }
            for p in &pending {
                println!(
                    "{}: will be issued by the internal CA at start ({})",
                    p.name, p.reason
                );
            }
            return Certificates::Load;
        }
        Err(e) => e,
    };
    let mut fallbacks = Vec::new();
    let mut failures = 0;
    for entry in e.report.entries.iter().filter(|e| e.outcome.is_failure()) {
        eprintln!("error: {entry}");
        failures += 1;
        let kept = certstore::last_good_path(&last_good_dir(&config.state_dir), &entry.name);
        if kept.exists() {
            fallbacks.push(format!(
                "\"{}\" from its last known good version ({})",
                entry.name,
                kept.display()
            ));
        }
    }
    if fallbacks.len() == failures {
        Certificates::Stale(fallbacks)
    } else {
        Certificates::Fail
    }
}

//! What a configuration that works can still get wrong, as warnings `check` prints and
//! `run` logs at start: an upstream whose certificate is not verified, a route name that no
//! certificate of its listener covers, secrets readable by other users.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use certstore::{LoadedCert, Source, covers};

use crate::config::Config;
use crate::config::upstream::Upstream;

/// Every warning for `config`; `loaded` finds a certificate by name (`None` when it is not
/// loaded yet, as an internal certificate before its first issue).
pub fn warnings<'a>(
    config: &Config,
    loaded: impl Fn(&str) -> Option<&'a LoadedCert>,
) -> Vec<String> {
    let mut out = Vec::new();
    for l in &config.listeners {
        for u in l.upstreams() {
            insecure(&l.name, u, &mut out);
        }
        let served: Vec<&LoadedCert> = l.certificates.iter().filter_map(|c| loaded(c)).collect();
        shadowed(&l.name, &served, &mut out);
        for r in &l.routes {
            if served.len() == l.certificates.len()
                && !served
                    .iter()
                    .any(|c| covers(&c.leaf().names(), &r.server_name))
            {
                out.push(format!(
                    "listener \"{}\": route server_name \"{}\" is covered by none of its certificates ({}): clients asking for it get \"{}\" and a name mismatch; add a certificate for it to the listener's certificates",
                    l.name,
                    r.server_name,
                    l.certificates.join(", "),
                    l.certificates.first().map(String::as_str).unwrap_or("-"),
                ));
            }
        }
    }
    secret_files(config, &mut out);
    out
}

/// A certificate that can never be chosen: for each of its names, an earlier certificate
/// of the listener with the same key type claims it first. (Certificates with different
/// key types for the same names are chosen by what the client can verify.)
fn shadowed(listener: &str, served: &[&LoadedCert], out: &mut Vec<String>) {
    for (i, cert) in served.iter().enumerate() {
        let algorithm = cert.certified_key.key.algorithm();
        let earlier = &served[..i];
        let names = &cert.leaf().dns_names;
        let Some(first) = earlier
            .iter()
            .find(|e| e.certified_key.key.algorithm() == algorithm)
        else {
            continue;
        };
        let claimed = |n: &String| {
            earlier.iter().any(|e| {
                e.certified_key.key.algorithm() == algorithm && e.leaf().dns_names.contains(n)
            })
        };
        if !names.is_empty() && names.iter().all(claimed) {
            out.push(format!(
                "listener \"{listener}\": certificate \"{}\" can never be chosen: \"{}\" (listed before it) covers its names with the same key type ({algorithm:?}); remove one of them, or give \"{}\" a key of another type (an ECDSA and an RSA certificate for the same names are chosen by what each client can verify)",
                cert.name, first.name, cert.name
            ));
        }
    }
}

fn insecure(listener: &str, u: &Upstream, out: &mut Vec<String>) {
    if u.options.insecure_skip_verify {
        out.push(format!(
            "listener \"{listener}\": upstream {u} is used with upstream_insecure_skip_verify: its certificate is not verified and anyone on the path can impersonate it; put its certificate in upstream_ca_file or pin its key with upstream_pin_sha256"
        ));
    }
}

/// Private keys, PKCS#12 files, passwords and tokens that group or others can read.
fn secret_files(config: &Config, out: &mut Vec<String>) {
    let mut secrets: Vec<(&Path, String)> = Vec::new();
    for c in &config.certificates {
        match &c.source {
            Source::Files { key, .. } => secrets.push((key, format!("key of \"{}\"", c.name))),
            Source::Pkcs12 {
                path,
                password_file,
            } => {
                secrets.push((path, format!("PKCS#12 file of \"{}\"", c.name)));
                secrets.push((password_file, format!("password of \"{}\"", c.name)));
            }
        }
    }
    for l in &config.listeners {
        if let Some(keys) = &l.session_ticket_key_file {
            secrets.push((
                keys,
                format!("session ticket keys of listener \"{}\"", l.name),
            ));
        }
        for u in l.upstreams() {
            if let Some((_, key)) = &u.options.client_cert {
                secrets.push((key, format!("client key for {u}")));
            }
        }
    }
    if let Some(token) = config.admin.as_ref().and_then(|a| a.token_file.as_deref()) {
        secrets.push((token, "admin token".into()));
    }
    secrets.sort_by(|a, b| a.0.cmp(b.0));
    secrets.dedup_by(|a, b| a.0 == b.0);
    for (path, what) in secrets {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(format!(
                "{} ({what}) is readable by other users (mode {mode:04o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
}

//! The internal CA's chores: `certs export-ca` prints it for trust stores, `certs ca rotate`
//! renews it and reissues everything it issued.

use std::path::Path;

use certstore::{Intermediates, InternalCa, LoadedCert, Timestamp, parse_bundle};

use super::{CertsError, Outcome, print_undo, reload_and_report};
use crate::config::{Config, ca_dir};
use crate::exit;

/// `certs export-ca`: prints the internal CA certificate (PEM), to import into browsers
/// and trust stores; after a rotation, the previous CA too, while certificates it issued
/// may still be cached by clients.
pub fn export_ca(config_path: &Path) -> Outcome {
    let config = Config::load(config_path)?;
    let dir = ca_dir(&config.state_dir);
    let path = dir.join(InternalCa::CERT_FILE);
    let pem = std::fs::read_to_string(&path)
        .map_err(|source| CertsError::NoInternalCa { path, source })?;
    print!("{pem}");
    if let Some((previous, until)) = InternalCa::previous_cert_pem(&dir, Timestamp::now()) {
        eprintln!(
            "also printing the previous internal CA (replaced by `certs ca rotate`): clients may meet certificates it issued until {until}"
        );
        print!("{previous}");
    }
    Ok(exit::OK)
}

/// `certs ca rotate`: a new internal CA, the old one kept in `state_dir/ca/previous/`;
/// every internal certificate is reissued from the new CA, and so is every certificate
/// from files that the old CA issued (`certs reset`), each after a backup. Then reload.
pub fn rotate(config_path: &Path) -> Outcome {
    let config = Config::load(config_path)?;
    let now = Timestamp::now();
    let dir = ca_dir(&config.state_dir);
    let cert_path = dir.join(InternalCa::CERT_FILE);
    let old_pem = std::fs::read(&cert_path).map_err(|source| CertsError::NoInternalCa {
        path: cert_path.clone(),
        source,
    })?;
    let old_subject = parse_bundle(&cert_path, &old_pem)
        .ok()
        .and_then(|b| certstore::inspect(&b, now).ok())
        .and_then(|i| i.certs.first().map(|c| c.subject.clone()))
        .unwrap_or_default();
    let ca = InternalCa::rotate(&dir, &config.internal_ca, now)?;
    println!(
        "new internal CA in {}; the previous one is kept in {}",
        cert_path.display(),
        dir.join(InternalCa::PREVIOUS_DIR).display()
    );
    let mut names = Vec::new();
    for cert in &config.internal {
        if let Some(b) = super::internal::reissue(&config, &ca, cert, now)? {
            print!("reissued \"{}\": ", cert.name);
            print_undo(&mut std::io::stdout(), config_path, &cert.name, &b);
        }
        names.push(cert.name.as_str());
    }
    for spec in config
        .certificates
        .iter()
        .filter(|s| !config.internal.iter().any(|i| i.name == s.name))
    {
        let issued_by_old = LoadedCert::load(spec, now, &Intermediates::default())
            .is_ok_and(|c| c.leaf().issuer == old_subject);
        if !issued_by_old {
            continue;
        }
        let names_now = LoadedCert::load(spec, now, &Intermediates::default())
            .map(|c| c.leaf().names())
            .unwrap_or_default();
        let backup = super::reset::issue_into(&config, &ca, spec, &names_now, now)?;
        print!("reissued \"{}\": ", spec.name);
        if let Some(b) = &backup {
            print_undo(&mut std::io::stdout(), config_path, &spec.name, b);
        }
        names.push(spec.name.as_str());
    }
    println!(
        "clients must trust the new CA: `gatehouse certs export-ca --config {}` prints it (with the previous one, for the transition)",
        config_path.display()
    );
    Ok(reload_and_report(&config, &names))
}

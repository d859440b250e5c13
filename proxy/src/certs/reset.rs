//! `gatehouse certs reset`: puts back a default certificate from the internal CA for a
//! certificate's names — the "restore defaults" of appliance consoles — after backing up
//! its current files, without touching the config. Then the running instance reloads.

use std::path::Path;

use certstore::{CertSpec, Intermediates, InternalCa, LoadedCert, Timestamp};

use super::backup::{self, Backup};
use super::install::{required_names, write_material};
use super::{
    CertsError, Outcome, find_any_spec, print_undo, reload_and_report, source_files, summary,
};
use crate::config::Config;
use crate::exit;
use crate::ops::table::render;

/// See the module doc. An internal certificate is reissued for its configured names; a
/// certificate from files gets one for every name it serves now (and every route name on
/// its listeners), or the host's names when its files are unreadable.
pub fn reset(config_path: &Path, name: &str, dry_run: bool) -> Outcome {
    let config = Config::load(config_path)?;
    let spec = find_any_spec(&config, name)?;
    let now = Timestamp::now();
    let internal = config.internal.iter().find(|c| c.name == name);
    let names = match internal {
        Some(c) => c.names.clone(),
        None => {
            let names = required_names(&config, spec, now);
            if names.is_empty() {
                crate::config::host::names()
            } else {
                names
            }
        }
    };
    println!(
        "\"{name}\" gets a new certificate from the internal CA for {}",
        names.join(", ")
    );
    if dry_run {
        println!("dry run: nothing written");
        return Ok(exit::OK);
    }
    let ca = super::internal::ca(&config, now)?;
    let backup = match internal {
        Some(cert) => super::internal::reissue(&config, &ca, cert, now)?,
        None => issue_into(&config, &ca, spec, &names, now)?,
    };
    if let Ok(c) = LoadedCert::load(spec, now, &Intermediates::default()) {
        print!(
            "{}",
            render(
                &["", "NAMES", "SERIAL", "ISSUER", "NOT AFTER"],
                &[summary("now", c.leaf(), now)]
            )
        );
    }
    if let Some(b) = &backup {
        print_undo(&mut std::io::stdout(), config_path, name, b);
    }
    println!(
        "clients trust it once they trust the internal CA: `gatehouse certs export-ca --config {}`",
        config_path.display()
    );
    Ok(reload_and_report(&config, &[name]))
}

/// Issues a certificate for `names` from `ca` into the files `spec` names (PEM, or PKCS#12
/// with its configured password), after backing them up; the backup is put back if a
/// write fails.
pub(super) fn issue_into(
    config: &Config,
    ca: &InternalCa,
    spec: &CertSpec,
    names: &[String],
    now: Timestamp,
) -> Result<Option<Backup>, CertsError> {
    let issued = ca.issue(names, now)?;
    let bundle = certstore::parse_bundle(
        Path::new("issued by the internal CA"),
        format!("{}{}", issued.cert_pem, issued.key_pem).as_bytes(),
    )?;
    let (Some(cert), Some(key)) = (bundle.certs.first(), bundle.keys.first()) else {
        return Err(CertsError::NoMaterial);
    };
    let backup = backup::create(
        &config.state_dir,
        &spec.name,
        &source_files(&spec.source),
        now,
    )?;
    if let Err(e) = write_material(&spec.source, std::slice::from_ref(&cert.der), &key.der) {
        if let Some(b) = &backup {
            let _ = backup::put_back(b);
        }
        return Err(CertsError::InstallWrite(Box::new(e)));
    }
    Ok(backup)
}

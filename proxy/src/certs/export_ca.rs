//! `gatehouse certs export-ca`.

use std::path::Path;

use super::{CertsError, Outcome};
use crate::config::Config;
use crate::exit;

/// `certs export-ca`: prints the internal CA certificate (PEM), to import into browsers
/// and trust stores.
pub fn export_ca(config_path: &Path) -> Outcome {
    let config = Config::load(config_path)?;
    let path = crate::config::ca_dir(&config.state_dir).join(certstore::InternalCa::CERT_FILE);
    let pem = std::fs::read_to_string(&path)
        .map_err(|source| CertsError::NoInternalCa { path, source })?;
    print!("{pem}");
    Ok(exit::OK)
}

//! The `[admin]` section: where the admin API and the certificates page listen, the token
//! that guards them, and the certificate that serves them over HTTPS.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::raw::RawAdmin;

/// The admin API listens on loopback only unless told otherwise (and then needs a token).
pub(super) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9900";

/// The admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub listen: SocketAddr,
    /// When set, every POST needs `Authorization: Bearer <token>`, and the certificates
    /// page needs a login.
    pub token_file: Option<PathBuf>,
    /// Serve the admin API and the certificates page over HTTPS with this certificate.
    pub certificate: Option<String>,
}

/// The name the admin API's certificate is looked up under in the store.
pub const ADMIN_TLS: &str = "[admin]";

/// The `[admin]` section: on loopback by default; elsewhere only with a token.
pub(super) fn check(
    raw: Option<&RawAdmin>,
    resolve: &dyn Fn(&Path) -> PathBuf,
    cert_names: &HashSet<String>,
    problems: &mut Vec<String>,
) -> Option<Admin> {
    if raw.and_then(|a| a.enabled) == Some(false) {
        return None;
    }
    let listen = raw
        .and_then(|a| a.listen.as_deref())
        .unwrap_or(DEFAULT_ADMIN_LISTEN);
    let token_file = raw.and_then(|a| a.token_file.as_deref()).map(resolve);
    let certificate = raw.and_then(|a| a.certificate.clone());
    if let Some(name) = &certificate
        && !cert_names.contains(name)
    {
        problems.push(format!(
            "[admin] certificate = \"{name}\" is not defined; define it in a [[certificate]] block or remove the key (the admin API then speaks plain HTTP)"
        ));
    }
    match listen.parse::<SocketAddr>() {
        Ok(addr) if !addr.ip().is_loopback() && token_file.is_none() => {
            problems.push(format!(
                "[admin] listen = \"{listen}\" is not a loopback address; set `token_file` so only holders of the token can reload, or listen on 127.0.0.1"
            ));
            None
        }
        Ok(addr) => Some(Admin {
            listen: addr,
            token_file,
            certificate,
        }),
        Err(_) => {
            problems.push(format!(
                "[admin] listen = \"{listen}\" is not an address; write IP:PORT, e.g. \"127.0.0.1:9900\""
            ));
            None
        }
    }
}

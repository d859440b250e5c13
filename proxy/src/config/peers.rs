//! Who a listener's peers are: clients with certificates (mutual TLS), and the load
//! balancers trusted to say, in a PROXY protocol header, who the client is.

use std::path::{Path, PathBuf};

use super::ClientAuth;
use super::raw::{ClientAuthMode, RawListener};

/// The addresses allowed to send a PROXY protocol header, on a listener that expects one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.contains(&addr))
    }
}

/// `proxy_protocol` with the `trusted_proxies` it needs.
pub(super) fn proxy_protocol(
    l: &RawListener,
    what: &str,
    problems: &mut Vec<String>,
) -> Option<TrustedProxies> {
    let mut nets = Vec::new();
    for text in &l.trusted_proxies {
        // A single address is a /32 (or /128).
        let parsed = text
            .parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => nets.push(net),
            Err(_) => problems.push(format!(
                "{what}: trusted_proxies entry \"{text}\" is not an address or a CIDR range (10.0.0.0/8, 2001:db8::/32, 192.0.2.7)"
            )),
        }
    }
    match (l.proxy_protocol, nets.is_empty()) {
        (true, true) if l.trusted_proxies.is_empty() => {
            problems.push(format!(
                "{what}: proxy_protocol = true needs trusted_proxies, the load balancers' addresses (CIDR): anyone else could claim any client address"
            ));
            None
        }
        (true, _) => Some(TrustedProxies(nets)),
        (false, _) if !l.trusted_proxies.is_empty() => {
            problems.push(format!(
                "{what}: trusted_proxies applies with proxy_protocol = true; set it, or remove trusted_proxies"
            ));
            None
        }
        (false, _) => None,
    }
}

/// `client_auth` with its CA (and CRL) files: all of them, or none.
pub(super) fn client_auth(
    l: &RawListener,
    what: &str,
    resolve: &dyn Fn(&Path) -> PathBuf,
    problems: &mut Vec<String>,
) -> Option<ClientAuth> {
    let mode = l
        .client_auth
        .clone()
        .and_then(|m| m.check(&format!("{what}: "), "client_auth", problems));
    match (mode, &l.client_ca_file) {
        (Some(mode), Some(ca)) => Some(ClientAuth {
            required: mode == ClientAuthMode::Required,
            ca_file: resolve(ca),
            crl_file: l.client_crl_file.as_deref().map(resolve),
        }),
        (Some(_), None) => {
            problems.push(format!(
                "{what}: client_auth needs client_ca_file, the CA certificates that issue your clients' certificates"
            ));
            None
        }
        (None, _)
            if l.client_auth.is_none()
                && (l.client_ca_file.is_some() || l.client_crl_file.is_some()) =>
        {
            problems.push(format!(
                "{what}: client_ca_file and client_crl_file apply with client_auth = \"required\" or \"optional\"; set it, or remove them"
            ));
            None
        }
        (None, _) => None,
    }
}

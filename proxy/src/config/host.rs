//! This machine's names, for internal certificates that name no hosts.

use std::net::IpAddr;
use std::path::Path;

/// Overrides the host name (containers whose UTS name is not the name clients use).
pub const HOSTNAME_ENV: &str = "GATEHOUSE_HOSTNAME";
/// Overrides the host's addresses, comma-separated (behind NAT, the address clients use
/// is not the interface's; empty for none).
pub const ADDRESSES_ENV: &str = "GATEHOUSE_HOST_ADDRESSES";

/// What an internal certificate covers by default: the host name, its fully qualified
/// name when it can be found (lowercase), and every address of the host but loopback and
/// IPv6 link-local ones (which need a zone clients cannot put in a URL). A change of any
/// of them reissues the certificate at the next start or reload.
pub fn names() -> Vec<String> {
    let mut names = host_names();
    for ip in addresses() {
        let ip = ip.to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

/// The host's addresses, or those [`ADDRESSES_ENV`] lists.
fn addresses() -> Vec<IpAddr> {
    if let Ok(list) = std::env::var(ADDRESSES_ENV) {
        return list
            .split(',')
            .filter_map(|a| a.trim().parse().ok())
            .collect();
    }
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut ips = Vec::new();
    for interface in interfaces {
        let Some(address) = interface.address else {
            continue;
        };
        let ip = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
            (Some(v4), _) => IpAddr::V4(v4.ip()),
            (_, Some(v6)) => IpAddr::V6(v6.ip()),
            _ => continue,
        };
        if usable(ip) && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// Whether clients can reach this host at `ip` by putting it in a URL.
fn usable(ip: IpAddr) -> bool {
    let link_local_v6 = matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local());
    !ip.is_loopback() && !ip.is_unspecified() && !link_local_v6
}

/// The host name and, when it can be found, the fully qualified name; lowercase.
fn host_names() -> Vec<String> {
    let host = std::env::var(HOSTNAME_ENV)
        .ok()
        .or_else(|| read_trimmed(Path::new("/proc/sys/kernel/hostname")))
        .unwrap_or_else(|| "localhost".into())
        .to_ascii_lowercase();
    let mut names = vec![host.clone()];
    if let Some(fqdn) = fqdn(&host)
        && !names.contains(&fqdn)
    {
        names.push(fqdn);
    }
    names
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `host` qualified by `/etc/hosts` (a name there starting with `host.`) or the NIS/YP
/// domain name, as `hostname -f` would find it without DNS.
fn fqdn(host: &str) -> Option<String> {
    if host.contains('.') {
        return Some(host.to_owned());
    }
    let prefix = format!("{host}.");
    if let Ok(hosts) = std::fs::read_to_string("/etc/hosts") {
        let found = hosts
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.split_whitespace().skip(1))
            .map(str::to_ascii_lowercase)
            .find(|n| n.starts_with(&prefix));
        if found.is_some() {
            return found;
        }
    }
    read_trimmed(Path::new("/proc/sys/kernel/domainname"))
        .filter(|d| d != "(none)")
        .map(|d| format!("{host}.{}", d.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_unspecified_and_ipv6_link_local_addresses_are_left_out() {
        for (ip, expected) in [
            ("192.0.2.10", true),
            ("10.1.2.3", true),
            ("2001:db8::10", true),
            ("127.0.0.1", false),
            ("::1", false),
            ("0.0.0.0", false),
            ("fe80::1", false),
        ] {
            let ip: IpAddr = ip
                .parse()
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            assert_eq!(usable(ip), expected, "{ip}");
        }
    }
}

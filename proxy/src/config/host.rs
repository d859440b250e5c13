//! This machine's names, for internal certificates that name no hosts.

use std::path::Path;

/// Overrides the host name (containers whose UTS name is not the name clients use).
pub const HOSTNAME_ENV: &str = "GATEHOUSE_HOSTNAME";

/// The host name and, when it can be found, the fully qualified name; lowercase.
pub fn names() -> Vec<String> {
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

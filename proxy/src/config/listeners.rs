//! The `[[listener]]` blocks and their routes: address, protocol, certificates, upstream
//! (with the `upstream_*` options of a TLS upstream), timeouts and limits.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::peers;
use super::raw::{MinTlsVersion, RawListener, RawUpstreamOptions};
use super::upstream::{Upstream, UpstreamError, UpstreamOptions, UpstreamProtocol};
use super::*;

/// How a listener's paths are resolved and what it may refer to.
pub(super) struct Context<'a> {
    pub resolve: &'a dyn Fn(&Path) -> PathBuf,
    pub cert_names: &'a HashSet<String>,
}

pub(super) fn check(
    raw: &[RawListener],
    cx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Listener> {
    let mut listeners = Vec::new();
    let mut names = HashSet::new();
    let mut binds = HashSet::new();
    for l in raw {
        let what = format!("listener \"{}\"", l.name);
        if !names.insert(l.name.clone()) {
            problems.push(format!(
                "{what}: defined twice; rename one of the [[listener]] blocks"
            ));
        }
        if let Some(listener) = listener(l, &what, cx, &mut binds, problems) {
            listeners.push(listener);
        }
    }
    if raw.is_empty() {
        problems.push("no [[listener]]: add one with name, bind, certificates and upstream".into());
    }
    listeners
}

fn listener(
    l: &RawListener,
    what: &str,
    cx: &Context<'_>,
    binds: &mut HashSet<SocketAddr>,
    problems: &mut Vec<String>,
) -> Option<Listener> {
    let bind = bind(l, what, binds, problems);
    let prefix = format!("{what}: ");
    let protocol = match &l.protocol {
        Some(p) => p.clone().check(&prefix, "protocol", problems),
        None => Some(Protocol::Http),
    };
    check_certificates(l, what, cx, problems);
    let upstream = upstream(
        what,
        protocol,
        "upstream",
        &l.upstream,
        l.upstream_options(),
        cx,
        problems,
    );
    let routes = routes(l, what, protocol, cx, problems);
    let tls13_only = match &l.min_tls_version {
        Some(v) => {
            v.clone().check(&prefix, "min_tls_version", problems) == Some(MinTlsVersion::Tls13)
        }
        None => false,
    };
    let [
        handshake_timeout,
        header_timeout,
        idle_timeout,
        send_timeout,
        upstream_connect_timeout,
        upstream_timeout,
        upstream_idle_timeout,
    ] = timeouts(l, &prefix, problems);
    let (max_connections, max_header_size) = limits(l, what, problems);
    let session_resumption = l.session_resumption.unwrap_or(true);
    if !session_resumption && l.session_ticket_key_file.is_some() {
        problems.push(format!(
            "{what}: session_ticket_key_file is set but session_resumption = false; remove one of them"
        ));
    }
    Some(Listener {
        name: l.name.clone(),
        bind: bind?,
        protocol: protocol?,
        certificates: l.certificates.clone(),
        upstream: upstream?,
        routes,
        strict_sni: l.strict_sni,
        tls13_only,
        session_resumption,
        session_ticket_key_file: l.session_ticket_key_file.as_deref().map(cx.resolve),
        client_auth: peers::client_auth(l, what, cx.resolve, problems),
        proxy_protocol: peers::proxy_protocol(l, what, problems),
        max_connections,
        handshake_timeout,
        header_timeout,
        idle_timeout,
        send_timeout,
        upstream_connect_timeout,
        upstream_timeout,
        upstream_idle_timeout,
        max_header_size,
    })
}

/// The listener's timeouts, each its key's value or default: handshake, header, idle,
/// send, upstream connect, upstream, upstream idle.
fn timeouts(l: &RawListener, prefix: &str, problems: &mut Vec<String>) -> [Duration; 7] {
    [
        (
            &l.handshake_timeout,
            "handshake_timeout",
            DEFAULT_HANDSHAKE_TIMEOUT,
        ),
        (&l.header_timeout, "header_timeout", DEFAULT_HEADER_TIMEOUT),
        (&l.idle_timeout, "idle_timeout", DEFAULT_IDLE_TIMEOUT),
        (&l.send_timeout, "send_timeout", DEFAULT_SEND_TIMEOUT),
        (
            &l.upstream_connect_timeout,
            "upstream_connect_timeout",
            DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
        ),
        (
            &l.upstream_timeout,
            "upstream_timeout",
            DEFAULT_UPSTREAM_TIMEOUT,
        ),
        (
            &l.upstream_idle_timeout,
            "upstream_idle_timeout",
            DEFAULT_UPSTREAM_IDLE_TIMEOUT,
        ),
    ]
    // Each key's default when it is absent or wrong (the problem is recorded).
    .map(|(value, key, default)| {
        value
            .as_ref()
            .and_then(|d| d.check(prefix, key, problems))
            .unwrap_or(default)
    })
}

/// Every certificate the listener names is defined.
fn check_certificates(l: &RawListener, what: &str, cx: &Context<'_>, problems: &mut Vec<String>) {
    if l.certificates.is_empty() {
        problems.push(format!(
            "{what}: `certificates` is empty; list the [[certificate]] names it serves, the default first"
        ));
    }
    for name in &l.certificates {
        if !cx.cert_names.contains(name) {
            problems.push(format!(
                "{what}: certificate \"{name}\" is not defined; define it in a [[certificate]] block or remove it from certificates"
            ));
        }
    }
}

/// `max_connections` and `max_header_size`.
fn limits(l: &RawListener, what: &str, problems: &mut Vec<String>) -> (usize, usize) {
    let max_connections = match l.max_connections {
        Some(0) => {
            problems.push(format!(
                "{what}: max_connections = 0 would refuse everyone; remove it or raise it"
            ));
            DEFAULT_MAX_CONNECTIONS
        }
        Some(n) => n,
        None => DEFAULT_MAX_CONNECTIONS,
    };
    let max_header_size = match l.max_header_size {
        Some(n) if n < 8192 => {
            problems.push(format!(
                "{what}: max_header_size = {n} is below hyper's smallest buffer; use at least 8192"
            ));
            DEFAULT_MAX_HEADER_SIZE
        }
        Some(n) => n,
        None => DEFAULT_MAX_HEADER_SIZE,
    };
    (max_connections, max_header_size)
}

fn bind(
    l: &RawListener,
    what: &str,
    binds: &mut HashSet<SocketAddr>,
    problems: &mut Vec<String>,
) -> Option<SocketAddr> {
    match l.bind.parse::<SocketAddr>() {
        Ok(addr) => {
            if addr.port() != 0 && !binds.insert(addr) {
                problems.push(format!(
                    "{what}: bind = \"{}\" is used by another listener; give each listener its own port",
                    l.bind
                ));
            }
            Some(addr)
        }
        Err(_) => {
            problems.push(format!(
                "{what}: bind = \"{}\" is not an address; write IP:PORT, e.g. \"0.0.0.0:443\" or \"[::]:443\"",
                l.bind
            ));
            None
        }
    }
}

fn routes(
    l: &RawListener,
    what: &str,
    protocol: Option<Protocol>,
    cx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut names = HashSet::new();
    for r in &l.routes {
        let name = r.server_name.to_ascii_lowercase();
        if !names.insert(name.clone()) {
            problems.push(format!(
                "{what}: route server_name = \"{}\" appears twice; keep one",
                r.server_name
            ));
        }
        let options = r.upstream_options();
        if let Some(u) = upstream(
            what,
            protocol,
            "route upstream",
            &r.upstream,
            options,
            cx,
            problems,
        ) {
            routes.push(Route {
                server_name: name,
                upstream: u,
            });
        }
    }
    routes
}

/// One upstream address with its options; `key` names it in messages.
fn upstream(
    what: &str,
    protocol: Option<Protocol>,
    key: &str,
    value: &str,
    raw: RawUpstreamOptions<'_>,
    cx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Option<Upstream> {
    match (protocol, Upstream::parse(value)) {
        (_, Err(e)) => {
            problems.push(format!("{what}: {key} = \"{value}\": {e}"));
            None
        }
        (Some(p), Ok(u)) if !u.fits(p) => {
            problems.push(format!(
                "{what}: {key} = \"{value}\" does not fit protocol \"{p}\"; {}",
                UpstreamError::hint_for(p)
            ));
            None
        }
        (_, Ok(mut u)) => {
            u.options = upstream_options(what, key, &u, raw, cx.resolve, problems);
            Some(u)
        }
    }
}

/// Checks the `upstream_*` keys of one upstream (`key` names it in messages).
fn upstream_options(
    what: &str,
    key: &str,
    upstream: &Upstream,
    raw: RawUpstreamOptions<'_>,
    resolve: &dyn Fn(&Path) -> PathBuf,
    problems: &mut Vec<String>,
) -> UpstreamOptions {
    check_tls_keys(what, key, upstream, &raw, problems);
    let client_cert = match (raw.client_cert, raw.client_key) {
        (Some(c), Some(k)) => Some((resolve(c), resolve(k))),
        (None, None) => None,
        _ => {
            problems.push(format!(
                "{what}: upstream_client_cert and upstream_client_key go together; set both or neither"
            ));
            None
        }
    };
    let pin_sha256 = raw
        .pin_sha256
        .iter()
        .filter_map(|pin| match pin_digest(pin) {
            Some(digest) => Some(digest),
            None => {
                problems.push(format!(
                    "{what}: upstream_pin_sha256 \"{pin}\" is not a base64 SHA-256 digest (44 characters); compute it with `openssl x509 -in upstream.crt -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`"
                ));
                None
            }
        })
        .collect();
    let protocol = match raw.protocol {
        Some(p) => p
            .clone()
            .check(&format!("{what}: "), "upstream_protocol", problems)
            .unwrap_or_default(),
        None => UpstreamProtocol::Auto,
    };
    let proxy_protocol = raw
        .proxy_protocol
        .clone()
        .and_then(|v| v.check(&format!("{what}: "), "upstream_proxy_protocol", problems));
    UpstreamOptions {
        ca_file: raw.ca_file.as_deref().map(resolve),
        server_name: raw.server_name.clone(),
        client_cert,
        insecure_skip_verify: raw.insecure_skip_verify,
        pin_sha256,
        protocol,
        proxy_protocol,
    }
}

/// The TLS upstream keys make sense together: none on a plain upstream, a valid server
/// name, no pin or CA beside `upstream_insecure_skip_verify`.
fn check_tls_keys(
    what: &str,
    key: &str,
    upstream: &Upstream,
    raw: &RawUpstreamOptions<'_>,
    problems: &mut Vec<String>,
) {
    let tls_only = [
        ("upstream_ca_file", raw.ca_file.is_some()),
        ("upstream_server_name", raw.server_name.is_some()),
        ("upstream_client_cert", raw.client_cert.is_some()),
        ("upstream_client_key", raw.client_key.is_some()),
        ("upstream_insecure_skip_verify", raw.insecure_skip_verify),
        ("upstream_pin_sha256", !raw.pin_sha256.is_empty()),
    ];
    if !upstream.kind.is_tls() {
        for (name, set) in tls_only {
            if set {
                problems.push(format!(
                    "{what}: {name} applies to TLS upstreams, but {key} = \"{}\" is plain; use https:// or tls://, or remove {name}",
                    upstream.original
                ));
            }
        }
    }
    if let Some(name) = raw.server_name
        && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
    {
        problems.push(format!(
            "{what}: upstream_server_name = \"{name}\" is not a DNS name or IP address"
        ));
    }
    for (name, set) in [
        ("upstream_pin_sha256", !raw.pin_sha256.is_empty()),
        ("upstream_ca_file", raw.ca_file.is_some()),
    ] {
        if raw.insecure_skip_verify && set {
            problems.push(format!(
                "{what}: upstream_insecure_skip_verify makes {name} pointless; remove one"
            ));
        }
    }
}

/// A pin as HPKP and curl's `--pinnedpubkey sha256//…` write it: base64 of a SHA-256 digest.
fn pin_digest(pin: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let pin = pin.strip_prefix("sha256//").unwrap_or(pin);
    base64::engine::general_purpose::STANDARD
        .decode(pin)
        .ok()?
        .try_into()
        .ok()
}

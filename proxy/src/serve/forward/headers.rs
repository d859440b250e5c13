//! The header rules of a proxy: hop-by-hop headers removed (RFC 9110 §7.6.1), the
//! `X-Forwarded-*` headers set, and the host a request names.

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), and `Upgrade`, which
/// is passed on only with a granted or requested upgrade.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Which of [`HOP_BY_HOP`] a message carries, one bit each: one pass over the names present
/// instead of a hashed lookup per hop-by-hop name.
fn hop_by_hop_present(headers: &HeaderMap) -> u16 {
    headers.keys().fold(0, |mask, name| {
        match HOP_BY_HOP.iter().position(|h| h == name) {
            Some(i) => mask | 1 << i,
            None => mask,
        }
    })
}
pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The tokens of the `Connection` header, trimmed, empty ones skipped.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether a `Connection` token names a header (anything but `keep-alive`, `close` and
/// `upgrade`).
fn names_a_header(token: &str) -> bool {
    !["keep-alive", "close", "upgrade"]
        .iter()
        .any(|s| token.eq_ignore_ascii_case(s))
}

/// Removes hop-by-hop headers, including those the Connection header names. Returns the
/// `Upgrade` value when the message asks for (or grants) an upgrade.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let present = hop_by_hop_present(headers);
    if present == 0 {
        // Most messages: HTTP/2 has none, HTTP/1.1 requests rarely any.
        return None;
    }
    // Bit 0 is `Connection`; usually `keep-alive` (or close/upgrade), naming no header.
    let (asks_upgrade, names_others) = if present & 1 != 0 {
        connection_tokens(headers).fold((false, false), |(upgrade, names), t| {
            (
                upgrade || t.eq_ignore_ascii_case("upgrade"),
                names || names_a_header(t),
            )
        })
    } else {
        (false, false)
    };
    let upgrade = if asks_upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    if names_others {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter(|t| names_a_header(t))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & 1 << i != 0 {
            headers.remove(name);
        }
    }
    if let Some(proto) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto.clone());
    }
    upgrade
}

/// Tells the upstream who asked and for what: `X-Forwarded-For` (earlier hops, in order,
/// then `peer`), `X-Forwarded-Proto: https`, and `X-Forwarded-Host`. `host` is the host the
/// request names and whether it came from HTTP/2's `:authority` (then it becomes the `Host`
/// header too, as the upstream speaks HTTP/1.1); a request that names none gets the
/// upstream's `authority` as `Host`.
pub(super) fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    host: Option<(&HeaderValue, bool)>,
    authority: &str,
) {
    match host {
        Some((host, from_authority)) => {
            if from_authority {
                headers.insert(header::HOST, host.clone());
            }
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        None => {
            if let Ok(h) = HeaderValue::from_str(authority) {
                headers.insert(header::HOST, h);
            }
        }
    }
    // One hashed lookup whether or not the client sent the header.
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Occupied(mut hops) => {
            let mut v = Vec::new();
            for prev in hops.iter() {
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
            }
            v.extend_from_slice(peer.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&v) {
                hops.insert(v);
            }
        }
        Entry::Vacant(none) => {
            none.insert(peer.clone());
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
}

/// Why a request's host is refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadHost {
    /// RFC 9112 §3.2: a request with more than one `Host` is invalid.
    Several,
    /// An absolute-form target naming another host than `Host` (request smuggling
    /// between a front end that reads one and a back end that reads the other).
    Disagrees,
    /// `user@` in the authority: credentials have no place there (RFC 9110 §4.2.4).
    UserInfo,
}

impl BadHost {
    pub(super) fn answer(self) -> &'static str {
        match self {
            Self::Several => "400 Bad Request: more than one Host header\n",
            Self::Disagrees => "400 Bad Request: Host does not match the request target\n",
            Self::UserInfo => "400 Bad Request: user information in the authority\n",
        }
    }
}

/// The host a request names, and whether it came from the target's authority (HTTP/2's
/// `:authority`, an HTTP/1.1 absolute-form target) rather than `Host`. On HTTP/2
/// `:authority` wins over a `Host` header (RFC 9113 §8.3.1).
pub(super) fn request_host(
    uri: &http::Uri,
    headers: &HeaderMap,
    h2: bool,
) -> Result<Option<(HeaderValue, bool)>, BadHost> {
    let authority = uri.authority();
    if authority.is_some_and(|a| a.as_str().contains('@')) {
        return Err(BadHost::UserInfo);
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(BadHost::Several);
    }
    let from_target = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    match (host, from_target) {
        (Some(host), Some(target)) if !h2 => {
            if same_host(host.as_bytes(), target.as_bytes(), uri.scheme_str()) {
                Ok(Some((host.clone(), false)))
            } else {
                Err(BadHost::Disagrees)
            }
        }
        (_, Some(target)) => Ok(Some((target, true))),
        (Some(host), None) => Ok(Some((host.clone(), false))),
        (None, None) => Ok(None),
    }
}

/// Whether two host values name the same host and port, a missing port being the
/// scheme's default.
fn same_host(a: &[u8], b: &[u8], scheme: Option<&str>) -> bool {
    let default = match scheme {
        Some("http") => &b":80"[..],
        _ => &b":443"[..],
    };
    let strip = |v: &[u8]| -> Vec<u8> {
        let v = v.strip_suffix(default).unwrap_or(v);
        v.to_ascii_lowercase()
    };
    strip(a) == strip(b)
}

/// The name in a `Host` value, without its port.
pub(super) fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("x-secret", "hop"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("content-type", "text/plain"),
        ]);
        assert_eq!(strip_hop_by_hop(&mut h), None);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type"], "only end-to-end headers stay");
    }

    #[test]
    fn an_upgrade_keeps_connection_upgrade_and_the_protocol() {
        let mut h = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("host", "portal.test"),
        ]);
        assert_eq!(
            strip_hop_by_hop(&mut h),
            Some(HeaderValue::from_static("websocket"))
        );
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["host"], "portal.test");
    }

    #[test]
    fn an_upgrade_header_without_connection_upgrade_is_dropped() {
        let mut h = headers(&[("upgrade", "h2c"), ("accept", "*/*")]);
        assert_eq!(strip_hop_by_hop(&mut h), None);
        assert!(!h.contains_key("upgrade"));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn forwarded_headers_append_the_client_to_earlier_hops_and_name_the_host() {
        let mut h = headers(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "198.51.100.7, 203.0.113.9"),
            ("host", "portal.test"),
        ]);
        let peer = HeaderValue::from_static("10.1.2.3");
        let host = h["host"].clone();
        set_forwarded(&mut h, &peer, Some((&host, false)), "upstream:8080");
        assert_eq!(
            h["x-forwarded-for"], "192.0.2.1, 198.51.100.7, 203.0.113.9, 10.1.2.3",
            "every earlier hop in order, then the client"
        );
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "portal.test");
        assert_eq!(h["host"], "portal.test", "the client's Host is kept");
    }

    #[test]
    fn an_http2_authority_becomes_host_and_a_request_without_one_gets_the_upstreams() {
        let peer = HeaderValue::from_static("10.1.2.3");
        let mut h2 = HeaderMap::new();
        let authority = HeaderValue::from_static("portal.test:8443");
        set_forwarded(&mut h2, &peer, Some((&authority, true)), "upstream:8080");
        assert_eq!(h2["host"], "portal.test:8443");
        assert_eq!(h2["x-forwarded-for"], "10.1.2.3");
        let mut none = HeaderMap::new();
        set_forwarded(&mut none, &peer, None, "upstream:8080");
        assert_eq!(none["host"], "upstream:8080");
        assert!(!none.contains_key("x-forwarded-host"));
    }

    #[test]
    fn the_host_name_drops_a_port_only() {
        assert_eq!(host_name("portal.test:8443"), "portal.test");
        assert_eq!(host_name("portal.test"), "portal.test");
        assert_eq!(host_name("[::1]:443"), "[::1]");
        assert_eq!(host_name("odd:name"), "odd:name", "not a port: kept");
    }

    #[test]
    fn a_101_that_names_no_protocol_with_connection_upgrade_grants_nothing() {
        // The forwarder passes a 101 on only with a grant; otherwise it answers 502.
        let mut granted = headers(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        assert!(strip_hop_by_hop(&mut granted).is_some());
        for unasked in [
            &[("upgrade", "websocket")][..],
            &[("connection", "keep-alive")][..],
            &[][..],
        ] {
            let mut h = headers(unasked);
            assert_eq!(
                strip_hop_by_hop(&mut h),
                None,
                "{unasked:?} is no grant: the switch is refused"
            );
        }
    }

    fn host_of(uri: &str, hosts: &[&'static str], h2: bool) -> Result<Option<String>, BadHost> {
        let uri: http::Uri = uri.parse().unwrap_or_default();
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, HeaderValue::from_static(v));
        }
        request_host(&uri, &h, h2)
            .map(|found| found.map(|(v, _)| v.to_str().unwrap_or("").to_owned()))
    }

    #[test]
    fn the_request_host_follows_each_protocols_rules() {
        let ok = |host: &str| Ok(Some(host.to_owned()));
        assert_eq!(host_of("/", &["portal.test"], false), ok("portal.test"));
        assert_eq!(
            host_of("/", &["portal.test", "evil.test"], false),
            Err(BadHost::Several)
        );
        assert_eq!(
            host_of("https://evil.test/", &["portal.test"], false),
            Err(BadHost::Disagrees)
        );
        assert_eq!(
            host_of("https://Portal.test:443/", &["portal.test"], false),
            ok("portal.test"),
            "the same host, its default port spelled out"
        );
        assert_eq!(
            host_of("https://portal.test/", &["evil.test"], true),
            ok("portal.test"),
            "HTTP/2: :authority wins"
        );
        assert_eq!(
            host_of("https://user@portal.test/", &[], true),
            Err(BadHost::UserInfo)
        );
        assert_eq!(host_of("/", &[], false), Ok(None));
    }
}

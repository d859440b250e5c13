//! SNI → certificate, on the handshake path.
//!
//! Everything here was computed when the snapshot was built: a handshake costs one
//! `ArcSwap::load`, an index into the listener table and at most two hash lookups.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::store::Snapshot;

/// How a certificate was chosen for a handshake. Doubles as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selection {
    /// A certificate names the server name exactly.
    Exact,
    /// A wildcard certificate (`*.example.com`) covers the server name.
    Wildcard,
    /// No or unknown server name: the listener's first certificate.
    Default,
    /// No or unknown server name under `strict_sni`: refuse with `unrecognized_name`.
    Refused,
    /// The listener has no certificate at all.
    NoCertificate,
}

impl Selection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Wildcard => "wildcard",
            Self::Default => "default",
            Self::Refused => "refused",
            Self::NoCertificate => "no_certificate",
        }
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a certificate naming `names` answers `host` the way the resolver matches:
/// exactly, or by a wildcard covering exactly one label.
pub fn covers(names: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    names.iter().any(|n| match n.strip_prefix("*.") {
        Some(parent) => host.split_once('.').is_some_and(|(_, rest)| rest == parent),
        None => *n == host,
    })
}

/// One listener's name index, built with the snapshot.
#[derive(Debug, Default)]
pub struct ListenerIndex {
    exact: HashMap<Box<str>, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`: `*.example.com` is stored under `example.com`.
    wildcard: HashMap<Box<str>, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
    strict_sni: bool,
}

impl ListenerIndex {
    pub(crate) fn new(strict_sni: bool) -> Self {
        Self {
            strict_sni,
            ..Self::default()
        }
    }

    /// Adds a certificate's names; the first certificate to claim a name keeps it.
    pub(crate) fn add(&mut self, names: &[String], key: &Arc<CertifiedKey>) {
        if self.default.is_none() {
            self.default = Some(key.clone());
        }
        for name in names {
            match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.into()),
                None => self.exact.entry(name.as_str().into()),
            }
            .or_insert_with(|| key.clone());
        }
    }

    /// Chooses the certificate for `server_name` (as rustls gives it: lowercase, no dot at
    /// the end).
    pub fn select(&self, server_name: Option<&str>) -> (Selection, Option<&Arc<CertifiedKey>>) {
        if let Some(name) = server_name {
            if let Some(key) = self.exact.get(name) {
                return (Selection::Exact, Some(key));
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(key) = self.wildcard.get(parent)
            {
                return (Selection::Wildcard, Some(key));
            }
        }
        match (&self.default, self.strict_sni) {
            (None, _) => (Selection::NoCertificate, None),
            (Some(_), true) => (Selection::Refused, None),
            (Some(key), false) => (Selection::Default, Some(key)),
        }
    }
}

/// The resolver one listener hands to rustls. Cheap to clone; sees every published snapshot.
#[derive(Clone)]
pub struct SniResolver {
    current: Arc<ArcSwap<Snapshot>>,
    slot: usize,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("slot", &self.slot)
            .finish()
    }
}

impl SniResolver {
    pub(crate) fn new(current: Arc<ArcSwap<Snapshot>>, slot: usize) -> Self {
        Self { current, slot }
    }

    /// How a handshake naming `server_name` would be answered right now. Lets the listener
    /// send `unrecognized_name` before rustls starts, which rustls itself cannot.
    pub fn selection(&self, server_name: Option<&str>) -> Selection {
        let snapshot = self.current.load();
        match snapshot.listener(self.slot) {
            Some(index) => index.select(server_name).0,
            None => Selection::NoCertificate,
        }
    }

    /// The certificate for `server_name` (lowercase, as rustls gives it): what a handshake
    /// gets. One `ArcSwap::load`, an index and at most two hash lookups.
    pub fn resolve_name(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.current.load();
        snapshot.listener(self.slot)?.select(server_name).1.cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.resolve_name(client_hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::sign::SigningKey;

    fn key() -> Arc<CertifiedKey> {
        let kp = rcgen::KeyPair::generate().unwrap();
        let der = rustls_pki_types::PrivateKeyDer::try_from(kp.serialize_der()).unwrap();
        let signing: Arc<dyn SigningKey> = crate::cert::provider()
            .key_provider
            .load_private_key(der)
            .unwrap();
        Arc::new(CertifiedKey::new(Vec::new(), signing))
    }

    #[test]
    fn exact_beats_wildcard_and_wildcard_matches_one_label() {
        let (a, w, d) = (key(), key(), key());
        let mut index = ListenerIndex::new(false);
        index.add(&["default.test".into()], &d);
        index.add(&["*.example.com".into()], &w);
        index.add(&["a.example.com".into()], &a);
        let pick = |n| index.select(n);
        assert_eq!(pick(Some("a.example.com")).0, Selection::Exact);
        assert!(Arc::ptr_eq(pick(Some("a.example.com")).1.unwrap(), &a));
        assert_eq!(pick(Some("b.example.com")).0, Selection::Wildcard);
        assert_eq!(
            pick(Some("x.b.example.com")).0,
            Selection::Default,
            "a wildcard covers one label only"
        );
        assert_eq!(
            pick(Some("example.com")).0,
            Selection::Default,
            "a wildcard does not cover its parent"
        );
        assert_eq!(pick(None).0, Selection::Default);
        assert!(Arc::ptr_eq(pick(None).1.unwrap(), &d));
    }

    #[test]
    fn covers_matches_like_the_index() {
        let names = vec![
            "a.example.com".to_string(),
            "*.apps.example.com".to_string(),
        ];
        assert!(covers(&names, "A.example.com"));
        assert!(covers(&names, "x.apps.example.com"));
        assert!(!covers(&names, "apps.example.com"));
        assert!(!covers(&names, "y.x.apps.example.com"));
    }

    #[test]
    fn strict_refuses_unknown_and_missing_names() {
        let mut index = ListenerIndex::new(true);
        index.add(&["known.test".into()], &key());
        assert_eq!(index.select(Some("known.test")).0, Selection::Exact);
        assert_eq!(index.select(Some("other.test")).0, Selection::Refused);
        assert_eq!(index.select(None).0, Selection::Refused);
        assert_eq!(
            ListenerIndex::new(false).select(None).0,
            Selection::NoCertificate
        );
    }
}

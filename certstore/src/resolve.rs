//! SNI → certificate, on the handshake path.
//!
//! Everything here was computed when the snapshot was built: a handshake costs one
//! `ArcSwap::load`, an index into the listener table and at most two hash lookups.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::SignatureScheme;
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

/// The signature schemes of ECDSA and Ed25519 keys; with [`crate::sign::RSA_SCHEMES`],
/// every scheme a client may offer, to learn once, at load, which each key signs with.
const NON_RSA_SCHEMES: [SignatureScheme; 4] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::ED25519,
];

/// A certificate that answers a name, and the schemes its key signs with.
#[derive(Debug, Clone)]
struct Candidate {
    key: Arc<CertifiedKey>,
    schemes: Box<[SignatureScheme]>,
}

impl Candidate {
    fn new(key: &Arc<CertifiedKey>) -> Self {
        let schemes = NON_RSA_SCHEMES
            .into_iter()
            .chain(crate::sign::RSA_SCHEMES)
            .filter(|s| key.key.choose_scheme(&[*s]).is_some())
            .collect();
        Self {
            key: key.clone(),
            schemes,
        }
    }
}

/// The certificates that answer one name: one, or one per key type when certificates with
/// different keys (ECDSA and RSA) cover it, in the listener's order.
#[derive(Debug, Default)]
struct Candidates(Vec<Candidate>);

impl Candidates {
    /// Adds `candidate` unless a certificate with the same key type is there already
    /// (the first keeps the name; `check` warns of the other).
    fn offer(&mut self, candidate: &Candidate) {
        let algorithm = candidate.key.key.algorithm();
        if !self.0.iter().any(|c| c.key.key.algorithm() == algorithm) {
            self.0.push(candidate.clone());
        }
    }

    /// The first certificate whose key signs with a scheme the client offers; the first
    /// of all when none does (the handshake then fails as it would with one certificate).
    fn pick(&self, offered: &[SignatureScheme]) -> Option<&Arc<CertifiedKey>> {
        match self.0.as_slice() {
            [only] => Some(&only.key),
            all => all
                .iter()
                .find(|c| offered.iter().any(|s| c.schemes.contains(s)))
                .or(all.first())
                .map(|c| &c.key),
        }
    }
}

/// One listener's name index, built with the snapshot.
#[derive(Debug, Default)]
pub struct ListenerIndex {
    exact: HashMap<Box<str>, Candidates>,
    /// Keyed by the part after `*.`: `*.example.com` is stored under `example.com`.
    wildcard: HashMap<Box<str>, Candidates>,
    /// The listener's first certificate, and those with other keys for the same names.
    default: Candidates,
    default_names: Vec<String>,
    strict_sni: bool,
}

impl ListenerIndex {
    pub(crate) fn new(strict_sni: bool) -> Self {
        Self {
            strict_sni,
            ..Self::default()
        }
    }

    /// Adds a certificate's names. The first certificate to claim a name keeps it; a later
    /// one with another key type answers it too, for clients that cannot verify the first.
    pub(crate) fn add(&mut self, names: &[String], key: &Arc<CertifiedKey>) {
        let candidate = Candidate::new(key);
        if self.default.0.is_empty() {
            self.default_names = names.to_vec();
        }
        if self.default_names == names {
            self.default.offer(&candidate);
        }
        for name in names {
            match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.into()),
                None => self.exact.entry(name.as_str().into()),
            }
            .or_default()
            .offer(&candidate);
        }
    }

    /// Chooses the certificate for `server_name` (as rustls gives it: lowercase, no dot at
    /// the end) and a client offering the signature schemes `offered`.
    pub fn select(
        &self,
        server_name: Option<&str>,
        offered: &[SignatureScheme],
    ) -> (Selection, Option<&Arc<CertifiedKey>>) {
        if let Some(name) = server_name {
            if let Some(found) = self.exact.get(name) {
                return (Selection::Exact, found.pick(offered));
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(found) = self.wildcard.get(parent)
            {
                return (Selection::Wildcard, found.pick(offered));
            }
        }
        match (self.default.pick(offered), self.strict_sni) {
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
            Some(index) => index.select(server_name, &[]).0,
            None => Selection::NoCertificate,
        }
    }

    /// The certificate for `server_name` (lowercase, as rustls gives it) and a client
    /// offering the signature schemes `offered`: what a handshake gets. One
    /// `ArcSwap::load`, an index, at most two hash lookups, and a scan of the schemes only
    /// where certificates with different key types share the name.
    pub fn resolve_name(
        &self,
        server_name: Option<&str>,
        offered: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.current.load();
        snapshot
            .listener(self.slot)?
            .select(server_name, offered)
            .1
            .cloned()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.resolve_name(client_hello.server_name(), client_hello.signature_schemes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::sign::SigningKey;

    fn key() -> Arc<CertifiedKey> {
        key_for(&rcgen::PKCS_ECDSA_P256_SHA256)
    }

    fn rsa_key() -> Arc<CertifiedKey> {
        key_for(&rcgen::PKCS_RSA_SHA256)
    }

    fn key_for(alg: &'static rcgen::SignatureAlgorithm) -> Arc<CertifiedKey> {
        let kp = rcgen::KeyPair::generate_for(alg).unwrap();
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
        let pick = |n| index.select(n, &[]);
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
    fn a_client_that_cannot_verify_ecdsa_gets_the_rsa_certificate() {
        let (ecdsa, rsa, second_ecdsa) = (key(), rsa_key(), key());
        let names = vec!["portal.test".to_string()];
        let mut index = ListenerIndex::new(false);
        index.add(&names, &ecdsa);
        index.add(&names, &rsa);
        index.add(&names, &second_ecdsa);
        let modern = [
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::RSA_PSS_SHA256,
        ];
        let rsa_only = [
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA256,
        ];
        for name in [Some("portal.test"), None] {
            let picked = |offered| index.select(name, offered).1.unwrap();
            assert!(Arc::ptr_eq(picked(&modern), &ecdsa), "ECDSA first");
            assert!(Arc::ptr_eq(picked(&rsa_only), &rsa), "RSA for RSA-only");
            assert!(Arc::ptr_eq(picked(&[]), &ecdsa), "the first when unknown");
        }
        let p384_only = [SignatureScheme::ECDSA_NISTP384_SHA384];
        assert!(
            Arc::ptr_eq(index.select(None, &p384_only).1.unwrap(), &ecdsa),
            "none fits: the first, and the handshake fails as with one certificate"
        );
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
        assert_eq!(index.select(Some("known.test"), &[]).0, Selection::Exact);
        assert_eq!(index.select(Some("other.test"), &[]).0, Selection::Refused);
        assert_eq!(index.select(None, &[]).0, Selection::Refused);
        assert_eq!(
            ListenerIndex::new(false).select(None, &[]).0,
            Selection::NoCertificate
        );
    }
}

//! Gatehouse's certificate store: turns the certificate files operators receive into what
//! rustls serves, and swaps them atomically.
//!
//! It knows certificates and nothing of sockets, HTTP or configuration files.
//!
//! # Layout
//! - [`source`](Source): what to load (files, PKCS#12) and which listener serves what.
//! - `parse`: PEM / DER / PKCS#12 / PKCS#7 bytes → certificates and keys.
//! - `chain`: find the leaf by its key, order the intermediates, verify to trust anchors.
//! - `pool`: known intermediates that complete a chain the files left short ([`Intermediates`]).
//! - `validate`: policy — expiry, key strength, signature algorithm, names.
//! - `info`: what operators see of a certificate.
//! - `inspect`: what `certs inspect` shows of any file ([`inspect()`]).
//! - `cert`: one loaded certificate ([`LoadedCert`]).
//! - `resolve`: SNI → certificate on the handshake path ([`SniResolver`]).
//! - `sign`: how keys sign handshakes (RSA prefers SHA-256).
//! - `issue`: the internal CA ([`InternalCa`]).
//! - `last_good`: each certificate's last material that loaded, served when its files break.
//! - `ocsp`: OCSP responses checked for stapling ([`Staple`]).
//! - `encode`: PEM and PKCS#12 out ([`certs_pem`], [`pkcs12`]).
//! - `fsutil`: atomic file writes ([`write_atomic`]).
//! - `store`: the [`Snapshot`] behind an `ArcSwap`, and [`Store::reload`].
//! - `report`: what a load or reload did ([`ReloadReport`]).

#![forbid(unsafe_code)]

mod cert;
mod chain;
mod encode;
mod error;
mod fsutil;
mod info;
mod inspect;
mod issue;
mod last_good;
mod ocsp;
mod parse;
mod pool;
mod report;
mod resolve;
mod sign;
mod source;
mod store;
mod time;
mod validate;

pub use cert::{Completion, LoadedCert, matching_key, provider};
pub use chain::ca_certs;
pub use encode::{EncodeError, certs_pem, key_pem, key_pkcs8, pkcs12};
pub use error::{LoadError, Warning};
pub use fsutil::{FileMode, write_atomic};
pub use info::{CertInfo, fingerprint, spki_sha256};
pub use inspect::{Inspection, Verdict, inspect};
pub use issue::{CA_LIFETIME_DAYS, CaSubject, InternalCa, IssueError, Issued, LEAF_LIFETIME_DAYS};
pub use last_good::path as last_good_path;
pub use ocsp::{
    OcspError, OcspStatus, Staple, Stapling, check as check_ocsp, request as ocsp_request,
    responder_url as ocsp_responder_url,
};
pub use parse::{
    Bundle, SourcedCert, SourcedKey, load_source, parse_any, parse_bundle, parse_pkcs12, read_file,
    read_password,
};
pub use pool::Intermediates;
pub use report::{InitialLoadError, Outcome, ReloadReport, ReportEntry, Version};
pub use resolve::{ListenerIndex, Selection, SniResolver, covers};
pub use source::{CertSpec, ListenerSpec, Source, StoreConfig};
pub use store::{Snapshot, Store};
pub use time::Timestamp;
pub use validate::{EXPIRY_WARNING_DAYS, MAX_LIFETIME_DAYS, MIN_RSA_BITS, Purpose};

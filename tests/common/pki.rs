//! Test PKIs made with rcgen: a root, an intermediate and leaves with the names, keys and
//! validity a test asks for, each with a serial unique across test processes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::write;

fn unique_serial() -> SerialNumber {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
    let mut bytes = vec![0x11];
    bytes.extend(nanos.to_be_bytes());
    bytes.extend(u64::from(std::process::id()).to_be_bytes());
    bytes.extend(n.to_be_bytes());
    SerialNumber::from_slice(&bytes)
}

/// A certificate authority made with rcgen.
pub struct Ca {
    pub cert: CertificateDer<'static>,
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key, PEM.
pub struct Leaf {
    pub cert: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    /// The serial as certstore and x509-parser print it.
    pub fn serial(&self) -> String {
        serial_of(&self.cert)
    }
}

/// The serial number of a DER certificate, colon-separated hex.
pub fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse test certificate");
    cert.raw_serial_as_string()
}

/// What to put in a leaf.
pub struct LeafSpec<'a> {
    pub names: &'a [&'a str],
    pub common_name: Option<&'a str>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// A client certificate (EKU clientAuth) instead of a server one.
    pub client_auth: bool,
}

impl<'a> LeafSpec<'a> {
    /// Valid from yesterday for 90 days, CN = first name.
    pub fn new(names: &'a [&'a str]) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            names,
            common_name: names.first().copied(),
            not_before: now - time::Duration::days(1),
            not_after: now + time::Duration::days(90),
            client_auth: false,
        }
    }

    pub fn validity(mut self, from_now_days: i64, to_now_days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        self.not_before = now + time::Duration::days(from_now_days);
        self.not_after = now + time::Duration::days(to_now_days);
        self
    }
}

impl Ca {
    /// A self-signed root.
    pub fn root(common_name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let params = ca_params(common_name);
        let cert = params.self_signed(&key).expect("self-sign CA");
        Self {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, common_name: &str) -> Self {
        let key = KeyPair::generate().expect("intermediate key");
        let params = ca_params(common_name);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign intermediate");
        Self {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names`, valid now for 90 days.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.leaf_with(LeafSpec::new(names))
    }

    pub fn leaf_with(&self, spec: LeafSpec<'_>) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        self.leaf_with_key(spec, key)
    }

    /// A leaf for an existing key (the same key, a new certificate: a renewal).
    pub fn leaf_with_key(&self, spec: LeafSpec<'_>, key: KeyPair) -> Leaf {
        let names: Vec<String> = spec.names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        if let Some(cn) = spec.common_name {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.not_before = spec.not_before;
        params.not_after = spec.not_after;
        params.serial_number = Some(unique_serial());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if spec.client_auth {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert_pem: cert.pem(),
            cert: cert.der().clone(),
            key_pem: key.serialize_pem(),
        }
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(2);
    params.not_after = now + time::Duration::days(3650);
    params.serial_number = Some(unique_serial());
    params.use_authority_key_identifier_extension = true;
    params
}

impl Ca {
    /// A CRL of this CA revoking `revoked`, PEM.
    pub fn crl(&self, revoked: &[&Leaf]) -> String {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = revoked
            .iter()
            .map(|leaf| {
                let (_, x) =
                    x509_parser::parse_x509_certificate(&leaf.cert).expect("parse revoked leaf");
                rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(x.raw_serial()),
                    revocation_time: now - time::Duration::hours(1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                }
            })
            .collect();
        rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .expect("sign CRL")
        .pem()
        .expect("CRL PEM")
    }
}

/// A root, an intermediate under it, and helpers to write leaves as files.
pub struct Pki {
    pub root: Ca,
    pub inter: Ca,
}

impl Pki {
    pub fn new() -> Self {
        let root = Ca::root("Gatehouse rcgen Root");
        let inter = root.intermediate("Gatehouse rcgen Intermediate");
        Self { root, inter }
    }

    /// Writes `leaf` as `name.crt` (leaf only), `name.key` and `name.chain.pem`
    /// (intermediate) into `dir`; returns the certstore source.
    pub fn write_leaf(&self, dir: &Path, name: &str, leaf: &Leaf) -> certstore::Source {
        certstore::Source::Files {
            cert: write(dir, &format!("{name}.crt"), &leaf.cert_pem),
            key: write(dir, &format!("{name}.key"), &leaf.key_pem),
            chain: Some(write(
                dir,
                &format!("{name}.chain.pem"),
                &self.inter.cert_pem,
            )),
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

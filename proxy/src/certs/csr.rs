//! `gatehouse certs csr`: a private key that never leaves the appliance and a certificate
//! signing request to send to a CA.

use std::net::IpAddr;
use std::path::PathBuf;

use certstore::Timestamp;
use clap::{Args, ValueEnum};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, RsaKeySize, SanType};

use super::{Outcome, write_public, write_secret};
use crate::exit;

/// Why no key and CSR were made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    #[error(
        "{} exists: it may be the key of a CSR a CA is signing right now. Choose another --key-out, or pass --force to move it aside first",
        path.display()
    )]
    KeyExists { path: PathBuf },
    #[error("cannot generate the key: {0}")]
    Key(#[source] rcgen::Error),
    #[error("--san {name}: {source}")]
    Name {
        name: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot make the CSR: {0}")]
    Request(#[source] rcgen::Error),
    #[error("cannot move {} aside: {source}", path.display())]
    MoveAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KeyType {
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    #[value(name = "ecdsa-p384")]
    EcdsaP384,
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "rsa-4096")]
    Rsa4096,
    #[value(name = "ed25519")]
    Ed25519,
}

#[derive(Args, Debug)]
pub struct CsrArgs {
    #[arg(long, value_enum, default_value = "ecdsa-p256")]
    pub key_type: KeyType,
    #[arg(long)]
    pub common_name: String,
    /// A DNS name for the certificate (repeat for more). The common name is always added.
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// An IP address for the certificate (repeat for more).
    #[arg(long = "ip")]
    pub ips: Vec<IpAddr>,
    #[arg(long)]
    pub country: Option<String>,
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub locality: Option<String>,
    #[arg(long)]
    pub organization: Option<String>,
    #[arg(long)]
    pub org_unit: Option<String>,
    #[arg(long)]
    pub key_out: PathBuf,
    #[arg(long)]
    pub csr_out: PathBuf,
    /// Replace an existing key file (it is first moved aside with a timestamp).
    #[arg(long)]
    pub force: bool,
}

/// `certs csr`: a new private key (0600) and a CSR with the names asked for. An existing
/// key file is kept unless `--force`, and then moved aside, never overwritten.
pub fn csr(args: &CsrArgs) -> Outcome {
    csr_with(args, &mut std::io::stdout())
}

/// [`csr`], reporting to `out`: what the command line and the certificates page both run.
pub fn csr_with(args: &CsrArgs, out: &mut dyn std::io::Write) -> Outcome {
    if args.key_out.exists() && !args.force {
        return Err(CsrError::KeyExists {
            path: args.key_out.clone(),
        }
        .into());
    }
    let key = generate(args.key_type)?;
    let (params, dns) = request(args)?;
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(CsrError::Request)?;
    // Everything is made and checked; only now move the old key aside (with --force).
    if args.key_out.exists() {
        let aside = PathBuf::from(format!(
            "{}.{}.bak",
            args.key_out.display(),
            stamp(Timestamp::now())
        ));
        std::fs::rename(&args.key_out, &aside).map_err(|source| CsrError::MoveAside {
            path: args.key_out.clone(),
            source,
        })?;
        let _ = writeln!(out, "moved the old key to {}", aside.display());
    }
    write_secret(&args.key_out, key.serialize_pem().as_bytes())?;
    write_public(&args.csr_out, csr.as_bytes())?;
    let _ = writeln!(
        out,
        "private key: {} (mode 0600; keep it, the certificate will only work with it)",
        args.key_out.display()
    );
    let _ = writeln!(
        out,
        "CSR:         {} — send this to your CA",
        args.csr_out.display()
    );
    let _ = writeln!(
        out,
        "names:       {}",
        dns.iter()
            .cloned()
            .chain(args.ips.iter().map(|i| i.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "then:        gatehouse certs install --config FILE --name NAME --cert <what the CA sends back> --key {}",
        args.key_out.display()
    );
    Ok(exit::OK)
}

/// A new key of `key_type`.
fn generate(key_type: KeyType) -> Result<KeyPair, CsrError> {
    match key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
    }
    .map_err(CsrError::Key)
}

/// What the CSR asks for: the subject and the names (DNS names, the common name first,
/// then IP addresses); the DNS names for the summary.
fn request(args: &CsrArgs) -> Result<(CertificateParams, Vec<String>), CsrError> {
    let mut params = CertificateParams::default();
    let mut dns: Vec<String> = vec![args.common_name.to_ascii_lowercase()];
    for san in &args.sans {
        let san = san.to_ascii_lowercase();
        if !dns.contains(&san) {
            dns.push(san);
        }
    }
    for name in &dns {
        match name.parse::<IpAddr>() {
            Ok(ip) => params.subject_alt_names.push(SanType::IpAddress(ip)),
            Err(_) => {
                params
                    .subject_alt_names
                    .push(SanType::DnsName(name.clone().try_into().map_err(
                        |source| CsrError::Name {
                            name: name.clone(),
                            source,
                        },
                    )?))
            }
        }
    }
    for ip in &args.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    // rcgen's default subject holds a placeholder CN; start from an empty one.
    params.distinguished_name = DistinguishedName::new();
    let dn = &mut params.distinguished_name;
    // The usual order, most general first: C, ST, L, O, OU, then CN.
    for (ty, value) in [
        (DnType::CountryName, &args.country),
        (DnType::StateOrProvinceName, &args.state),
        (DnType::LocalityName, &args.locality),
        (DnType::OrganizationName, &args.organization),
        (DnType::OrganizationalUnitName, &args.org_unit),
    ] {
        if let Some(v) = value {
            dn.push(ty, v.as_str());
        }
    }
    dn.push(DnType::CommonName, args.common_name.as_str());
    Ok((params, dns))
}

/// A timestamp usable in a file name.
fn stamp(now: Timestamp) -> String {
    now.to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

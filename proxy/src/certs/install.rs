//! `gatehouse certs install`: new certificate material, checked as the store loads it,
//! shown before → after, then the current files backed up, the new ones written (key
//! first, each atomically) and the running instance reloaded.

use std::io::Write;
use std::path::{Path, PathBuf};

use certstore::{
    Bundle, CertSpec, Intermediates, LoadError, LoadedCert, Source, Timestamp, covers, read_file,
    read_password,
};
use clap::Args;

use super::backup;
use super::{
    CertsError, Outcome, Report, Terminal, find_spec, say, source_files, summary, write_public,
    write_secret,
};
use crate::config::Config;
use crate::exit;
use crate::ops::table::render;

#[derive(Args, Debug)]
pub struct InstallArgs {
    #[arg(long, short)]
    pub config: PathBuf,
    /// The `[[certificate]]` to replace.
    #[arg(long, required_unless_present = "intermediate")]
    pub name: Option<String>,
    /// The new certificate (PEM or DER; may hold the intermediates and the key too).
    #[arg(long, conflicts_with = "pkcs12")]
    pub cert: Option<PathBuf>,
    /// Its private key (default: the certificate's current key, as in a CSR renewal).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Intermediate certificates.
    #[arg(long, requires = "cert")]
    pub chain: Option<PathBuf>,
    /// Add the intermediate CA certificate(s) in FILE to the pool that completes chains
    /// (`state_dir/intermediates/`), then reload; no certificate is replaced.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "cert", "pkcs12"])]
    pub intermediate: Option<PathBuf>,
    /// A PKCS#12/PFX file instead of --cert.
    #[arg(long, requires = "password_file")]
    pub pkcs12: Option<PathBuf>,
    #[arg(long, requires = "pkcs12")]
    pub password_file: Option<PathBuf>,
    /// Show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Accept a certificate that no longer covers every name the current one serves.
    #[arg(long)]
    pub allow_name_change: bool,
    /// Install a certificate although no certificate given or in the current chain issued
    /// it: clients that do not already have its intermediate will refuse it.
    #[arg(long)]
    pub allow_incomplete_chain: bool,
}

/// See the module doc. Refused, with the files untouched, when the material does not load
/// or drops a name the certificate serves now (unless `--allow-name-change`).
pub fn install(args: &InstallArgs) -> Outcome {
    let config = Config::load(&args.config)?;
    install_with(&config, args, &mut Terminal(std::io::stdout()))
}

/// [`install`] on a loaded `config` (the one `args.config` names), reporting to `report`:
/// what the command line and the certificates page both run.
pub fn install_with(config: &Config, args: &InstallArgs, report: &mut dyn Report) -> Outcome {
    let (Some(name), None) = (&args.name, &args.intermediate) else {
        return match &args.intermediate {
            Some(file) => super::intermediate::add(config, file, args.dry_run),
            None => Err(CertsError::NoMaterial),
        };
    };
    let spec = find_spec(config, name)?;
    let now = Timestamp::now();
    let refused = |e: CertsError| CertsError::InstallRefused(Box::new(e));
    let pool = config.intermediates();
    let (bundle, new) = read_new(args, spec, now, &pool).map_err(refused)?;
    let dropped = check_new(config, spec, args, &new, now).map_err(refused)?;
    print_plan(report.out(), spec, &new, &dropped, now);
    for c in &new.completed {
        say!(
            report,
            "chain: {c}: the files given lack it; it is written with the new certificate"
        );
    }
    if missing_issuer(&new).is_some() && args.allow_incomplete_chain {
        say!(
            report,
            "WARNING: --allow-incomplete-chain: \"{}\" will be served without the certificate that issued it; clients that do not already have it will refuse the connection",
            spec.name
        );
    }
    if args.dry_run {
        say!(report, "dry run: nothing written");
        return Ok(exit::OK);
    }
    let key_index = certstore::matching_key(&bundle).map_err(|e| refused(e.into()))?;
    let backup = backup::create(
        &config.state_dir,
        &spec.name,
        &source_files(&spec.source),
        now,
    )
    .map_err(|e| refused(e.into()))?;
    if let Some(b) = &backup {
        say!(
            report,
            "backed up the current files to {} (id {})",
            b.dir.display(),
            b.id
        );
    }
    let written = write_material(
        &spec.source,
        &new.certified_key.cert,
        &bundle.keys[key_index].der,
    );
    if let Err(e) = written {
        // Never leave half of the new material next to half of the old.
        if let Some(b) = &backup {
            let _ = backup::put_back(b);
        }
        return Err(CertsError::InstallWrite(Box::new(e)));
    }
    say!(report, "installed \"{}\"", spec.name);
    Ok(report.reload(config, &[&spec.name]))
}

/// What would make installing `new` a mistake: an issuer missing from its chain, names it
/// drops that the config serves (each allowed by its flag). The names it drops, when
/// allowed.
fn check_new(
    config: &Config,
    spec: &CertSpec,
    args: &InstallArgs,
    new: &LoadedCert,
    now: Timestamp,
) -> Result<Vec<String>, CertsError> {
    if let Some(issuer) = missing_issuer(new) {
        // With trust_anchors the load verified the chain to them: a root issued the leaf.
        if spec.trust_anchors.is_none() && !args.allow_incomplete_chain {
            return Err(CertsError::IssuerMissing {
                certificate: spec.name.clone(),
                issuer,
            });
        }
    }
    let new_names = new.leaf().names();
    let dropped: Vec<String> = required_names(config, spec, now)
        .into_iter()
        .filter(|n| !covers(&new_names, n))
        .collect();
    if !dropped.is_empty() && !args.allow_name_change {
        return Err(CertsError::NamesDropped {
            certificate: spec.name.clone(),
            names: dropped,
        });
    }
    Ok(dropped)
}

/// The new material, read exactly as the store reads files, and loaded as it would be.
fn read_new(
    args: &InstallArgs,
    spec: &CertSpec,
    now: Timestamp,
    pool: &Intermediates,
) -> Result<(Bundle, LoadedCert), CertsError> {
    let mut bundle = Bundle::default();
    let mut sources = Vec::new();
    let mut read = |path: &Path| -> Result<(), CertsError> {
        let bytes = read_file(path)?;
        let b = certstore::parse_any(path, &bytes, None).map_err(|e| match e {
            LoadError::IsPkcs12 { path } => CertsError::PfxAsCert { path },
            other => other.into(),
        })?;
        bundle.certs.extend(b.certs);
        bundle.keys.extend(b.keys);
        sources.push(path.to_owned());
        Ok(())
    };
    if let Some(cert) = &args.cert {
        read(cert)?;
        if let Some(chain) = &args.chain {
            read(chain)?;
        }
        if let Some(key) = &args.key {
            read(key)?;
        }
    } else if let (Some(p12), Some(password_file)) = (&args.pkcs12, &args.password_file) {
        let password = read_password(password_file)?;
        let bytes = read_file(p12)?;
        bundle = certstore::parse_pkcs12(p12, &bytes, &password)?;
        sources.push(p12.clone());
    } else {
        return Err(CertsError::NoMaterial);
    }
    if args.cert.is_some() && args.key.is_none() && bundle.keys.is_empty() {
        // The CSR flow: the key is the one the certificate already uses.
        bundle
            .keys
            .extend(certstore::load_source(&spec.source)?.keys);
    }
    let new = LoadedCert::from_bundle(
        &spec.name,
        &bundle,
        spec.trust_anchors.as_deref(),
        sources,
        now,
        pool,
    )?;
    Ok((bundle, new))
}

/// The issuer of `new`'s leaf when nothing in its chain is: the leaf would be served
/// without the intermediate clients need.
fn missing_issuer(new: &LoadedCert) -> Option<String> {
    new.warnings.iter().find_map(|w| match w {
        certstore::Warning::IncompleteChain { missing_issuer } => Some(missing_issuer.clone()),
        _ => None,
    })
}

/// Prints what the install changes: before → after, the chain served, the warnings.
fn print_plan(
    out: &mut dyn Write,
    spec: &CertSpec,
    new: &LoadedCert,
    dropped: &[String],
    now: Timestamp,
) {
    let mut rows = Vec::new();
    if let Ok(c) = LoadedCert::load(spec, now, &Intermediates::default()) {
        rows.push(summary("before", c.leaf(), now));
    } else if let Some(names) = current_names(spec, now) {
        rows.push(vec![
            "before".into(),
            names.join(","),
            "-".into(),
            "(not loadable)".into(),
            "-".into(),
        ]);
    }
    rows.push(summary("after", new.leaf(), now));
    let _ = write!(
        out,
        "{}",
        render(&["", "NAMES", "SERIAL", "ISSUER", "NOT AFTER"], &rows)
    );
    let _ = writeln!(
        out,
        "chain: {} certificate(s) served: {}",
        new.chain.len(),
        new.chain
            .iter()
            .map(|c| c.subject.as_str())
            .collect::<Vec<_>>()
            .join(" <- ")
    );
    for w in &new.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if !dropped.is_empty() {
        let _ = writeln!(
            out,
            "names dropped (allowed by --allow-name-change): {}",
            dropped.join(", ")
        );
    }
}

/// Names the current certificate serves, read leniently (an expired one still counts).
fn current_names(spec: &CertSpec, now: Timestamp) -> Option<Vec<String>> {
    let bundle = certstore::load_source(&spec.source).ok()?;
    let inspection = certstore::inspect(&bundle, now).ok()?;
    let leaf = inspection.verdict.as_ref()?.served.first()?.clone();
    inspection
        .certs
        .into_iter()
        .find(|c| c.subject == leaf)
        .map(|c| c.names())
}

/// Names a replacement must still cover: what the current certificate covers, and every
/// route `server_name` on a listener serving it that the current certificate answers
/// (all of that listener's route names when the current certificate is unreadable).
pub(super) fn required_names(config: &Config, spec: &CertSpec, now: Timestamp) -> Vec<String> {
    let current = current_names(spec, now);
    let mut required: Vec<String> = current.clone().unwrap_or_default();
    for l in config
        .listeners
        .iter()
        .filter(|l| l.certificates.contains(&spec.name))
    {
        for r in &l.routes {
            let routed_here = match &current {
                Some(names) => covers(names, &r.server_name),
                None => true,
            };
            if routed_here && !required.contains(&r.server_name) {
                required.push(r.server_name.clone());
            }
        }
    }
    required
}

/// Writes new material to the files `source` names: the key first, so that a failure
/// never leaves a new certificate beside an old key.
pub(super) fn write_material(
    source: &Source,
    chain: &[rustls::pki_types::CertificateDer<'static>],
    key: &rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<(), CertsError> {
    match source {
        Source::Files {
            cert,
            key: key_path,
            chain: chain_path,
        } => {
            if cert == key_path {
                let mut both = certstore::certs_pem(chain);
                both.push_str(&certstore::key_pem(key));
                write_secret(cert, both.as_bytes())?;
            } else {
                write_secret(key_path, certstore::key_pem(key).as_bytes())?;
                match chain_path {
                    Some(chain_path) => {
                        write_public(cert, certstore::certs_pem(&chain[..1]).as_bytes())?;
                        write_public(chain_path, certstore::certs_pem(&chain[1..]).as_bytes())?;
                    }
                    None => write_public(cert, certstore::certs_pem(chain).as_bytes())?,
                }
            }
        }
        Source::Pkcs12 {
            path,
            password_file,
        } => {
            let password = read_password(password_file)?;
            let p12 = certstore::pkcs12(chain, key, &password)?;
            write_secret(path, &p12)?;
        }
    }
    Ok(())
}

//! `gatehouse certs …`: the certificate chores — inspect, list, csr, install, backups,
//! restore, export-ca. Every check goes through `certstore`, the same code the proxy
//! loads with; no command prints a private key.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use certstore::{
    Bundle, CertInfo, CertSpec, LoadedCert, Source, Timestamp, covers, read_file, read_password,
};
use clap::{Args, Subcommand, ValueEnum};

use super::{exit, reload, table};
use crate::backup;
use crate::config::Config;

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Show every certificate in PEM, DER or PKCS#12 files, and the chain they make.
    Inspect {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Password file for PKCS#12 files.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// The configured certificates as a table.
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Make a new private key and a certificate signing request (CSR) to send to a CA.
    Csr(CsrArgs),
    /// Check new certificate material, back up the current files, install, reload.
    Install(InstallArgs),
    /// List the backups of a certificate.
    Backups {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Put a backup back (the newest unless --backup), after backing up the current files.
    Restore {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        backup: Option<String>,
    },
    /// Print the internal CA certificate (PEM), to import into browsers and trust stores.
    ExportCa {
        #[arg(long, short)]
        config: PathBuf,
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

#[derive(Args, Debug)]
pub struct InstallArgs {
    #[arg(long, short)]
    pub config: PathBuf,
    /// The `[[certificate]]` to replace.
    #[arg(long)]
    pub name: String,
    /// The new certificate (PEM or DER; may hold the intermediates and the key too).
    #[arg(long, conflicts_with = "pkcs12")]
    pub cert: Option<PathBuf>,
    /// Its private key (default: the certificate's current key, as in a CSR renewal).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Intermediate certificates.
    #[arg(long, requires = "cert")]
    pub chain: Option<PathBuf>,
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
}

/// Runs a `certs` subcommand; returns the exit code.
pub fn run(command: CertsCommand) -> i32 {
    let result = match command {
        CertsCommand::Inspect {
            files,
            password_file,
        } => inspect(&files, password_file.as_deref()),
        CertsCommand::List { config } => list(&config),
        CertsCommand::Csr(args) => csr(&args),
        CertsCommand::Install(args) => install(&args),
        CertsCommand::Backups { config, name } => backups(&config, &name),
        CertsCommand::Restore {
            config,
            name,
            backup,
        } => restore(&config, &name, backup.as_deref()),
        CertsCommand::ExportCa { config } => export_ca(&config),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{message}");
            exit::PROBLEMS
        }
    }
}

type CommandResult = Result<i32, String>;

fn describe(info: &CertInfo, now: Timestamp, indent: &str) -> String {
    let names = info.names();
    format!(
        "{indent}subject:    {}\n{indent}names:      {}\n{indent}issuer:     {}\n{indent}serial:     {}\n{indent}valid:      {} to {} ({} days left)\n{indent}key:        {}\n{indent}signature:  {}\n{indent}sha256:     {}\n",
        info.subject,
        if names.is_empty() {
            "-".into()
        } else {
            names.join(", ")
        },
        info.issuer,
        info.serial,
        info.not_before,
        info.not_after,
        info.days_left(now),
        info.key,
        info.signature_algorithm,
        info.fingerprint_sha256,
    )
}

fn inspect(files: &[PathBuf], password_file: Option<&Path>) -> CommandResult {
    let password = password_file
        .map(read_password)
        .transpose()
        .map_err(|e| e.to_string())?;
    let now = Timestamp::now();
    let mut all = Bundle::default();
    for file in files {
        let bytes = read_file(file).map_err(|e| e.to_string())?;
        let bundle =
            certstore::parse_any(file, &bytes, password.as_deref()).map_err(|e| e.to_string())?;
        all.certs.extend(bundle.certs);
        all.keys.extend(bundle.keys);
    }
    let inspection = certstore::inspect(&all, now).map_err(|e| e.to_string())?;
    let mut seen = Vec::new();
    for (i, (info, sourced)) in inspection
        .certs
        .iter()
        .zip(all.certs.iter().filter(|c| {
            let new = !seen.contains(&c.der);
            if new {
                seen.push(c.der.clone());
            }
            new
        }))
        .enumerate()
    {
        let role = if info.self_signed {
            "self-signed root"
        } else if info.is_ca {
            "CA"
        } else {
            "end entity"
        };
        println!(
            "certificate {} ({role}, from {}):",
            i + 1,
            sourced.path.display()
        );
        print!("{}", describe(info, now, "  "));
    }
    match inspection.key_matches {
        Some(true) => println!(
            "private key: {} found, matches the leaf (not shown)",
            inspection.keys
        ),
        Some(false) => println!(
            "private key: {} found, matches no certificate here",
            inspection.keys
        ),
        None => println!("private key: none in these files"),
    }
    match &inspection.verdict {
        Some(v) => {
            println!("chain: {v}");
            Ok(if v.refusal.is_some() {
                exit::PROBLEMS
            } else {
                exit::OK
            })
        }
        None => {
            println!("chain: no certificate to serve");
            Ok(exit::PROBLEMS)
        }
    }
}

fn load_config(path: &Path) -> Result<Config, String> {
    Config::load(path).map_err(|e| e.to_string())
}

fn source_text(spec: &CertSpec) -> String {
    let paths: Vec<String> = spec
        .source
        .paths()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    paths.join(", ")
}

fn list(config_path: &Path) -> CommandResult {
    let config = load_config(config_path)?;
    let now = Timestamp::now();
    let pending = crate::internal::plan(&config, now);
    let mut failed = false;
    let rows: Vec<Vec<String>> = config
        .certificates
        .iter()
        .map(|spec| {
            if let Some(p) = pending.iter().find(|p| p.name == spec.name) {
                return vec![
                    spec.name.clone(),
                    "-".into(),
                    "internal CA".into(),
                    "-".into(),
                    "-".into(),
                    format!("to be issued at start ({})", p.reason),
                    source_text(spec),
                ];
            }
            match LoadedCert::load(spec, now) {
                Ok(c) => {
                    let incomplete = c
                        .warnings
                        .iter()
                        .any(|w| matches!(w, certstore::Warning::IncompleteChain { .. }));
                    let mut row = super::check::identity_columns(&c, now);
                    row.extend([
                        format!(
                            "{} served{}",
                            c.chain.len(),
                            if incomplete {
                                ", ends below a root"
                            } else {
                                ", complete"
                            }
                        ),
                        source_text(spec),
                    ]);
                    row
                }
                Err(e) => {
                    failed = true;
                    vec![
                        spec.name.clone(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        format!("ERROR: {e}"),
                        source_text(spec),
                    ]
                }
            }
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "NAME",
                "NAMES",
                "ISSUER",
                "NOT AFTER",
                "DAYS LEFT",
                "CHAIN",
                "SOURCE"
            ],
            &rows
        )
    );
    Ok(if failed { exit::PROBLEMS } else { exit::OK })
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), String> {
    certstore::write_atomic(path, bytes, certstore::FileMode::Secret)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), String> {
    certstore::write_atomic(path, bytes, certstore::FileMode::Public)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn stamp(now: Timestamp) -> String {
    now.to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

fn csr(args: &CsrArgs) -> CommandResult {
    use rcgen::{CertificateParams, DnType, KeyPair, RsaKeySize, SanType};
    if args.key_out.exists() && !args.force {
        return Err(format!(
            "{} exists: it may be the key of a CSR a CA is signing right now. Choose another --key-out, or pass --force to move it aside first",
            args.key_out.display()
        ));
    }
    let key = match args.key_type {
        KeyType::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        KeyType::Rsa2048 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyType::Rsa3072 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyType::Rsa4096 => KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_4096),
    }
    .map_err(|e| format!("cannot generate the key: {e}"))?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
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
            Err(_) => params.subject_alt_names.push(SanType::DnsName(
                name.clone()
                    .try_into()
                    .map_err(|e| format!("--san {name}: {e}"))?,
            )),
        }
    }
    for ip in &args.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let dn = &mut params.distinguished_name;
    dn.push(DnType::CommonName, args.common_name.as_str());
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
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(|e| format!("cannot make the CSR: {e}"))?;
    // Everything is made and checked; only now move the old key aside (with --force).
    if args.key_out.exists() {
        let aside = PathBuf::from(format!(
            "{}.{}.bak",
            args.key_out.display(),
            stamp(Timestamp::now())
        ));
        std::fs::rename(&args.key_out, &aside)
            .map_err(|e| format!("cannot move {} aside: {e}", args.key_out.display()))?;
        println!("moved the old key to {}", aside.display());
    }
    write_secret(&args.key_out, key.serialize_pem().as_bytes())?;
    write_public(&args.csr_out, csr.as_bytes())?;
    println!(
        "private key: {} (mode 0600; keep it, the certificate will only work with it)",
        args.key_out.display()
    );
    println!(
        "CSR:         {} — send this to your CA",
        args.csr_out.display()
    );
    println!(
        "names:       {}",
        dns.iter()
            .cloned()
            .chain(args.ips.iter().map(|i| i.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "then:        gatehouse certs install --config FILE --name NAME --cert <what the CA sends back>"
    );
    Ok(exit::OK)
}

fn find_spec<'a>(config: &'a Config, name: &str) -> Result<&'a CertSpec, String> {
    if config.internal.iter().any(|c| c.name == name) {
        return Err(format!(
            "certificate \"{name}\" is issued by the internal CA; to use a CA-signed certificate instead, give it `cert` and `key` in the config"
        ));
    }
    config
        .certificates
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = config
                .certificates
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            format!(
                "no [[certificate]] named \"{name}\" in the config (there are: {})",
                names.join(", ")
            )
        })
}

/// The files a certificate's source names, with whether each is secret.
fn source_files(source: &Source) -> Vec<(PathBuf, bool)> {
    match source {
        Source::Files { cert, key, chain } => {
            let mut v = vec![(cert.clone(), false), (key.clone(), true)];
            if let Some(c) = chain {
                v.push((c.clone(), false));
            }
            // One file holding certificate and key is a secret file.
            v.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    kept.1 |= later.1;
                }
                same
            });
            v
        }
        Source::Pkcs12 {
            path,
            password_file,
        } => vec![(path.clone(), true), (password_file.clone(), true)],
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
fn required_names(config: &Config, spec: &CertSpec, now: Timestamp) -> Vec<String> {
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

fn summary(label: &str, c: &CertInfo, now: Timestamp) -> Vec<String> {
    vec![
        label.to_owned(),
        c.names().join(","),
        c.serial.clone(),
        c.issuer.clone(),
        format!("{} ({} days)", c.not_after, c.days_left(now)),
    ]
}

/// Asks the running instance to reload and prints its report; returns the exit code.
fn reload_and_report(config: &Config, name: &str) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the reload client: {e}");
            return exit::PROBLEMS;
        }
    };
    match rt.block_on(reload::admin_post(config, "/reload")) {
        Ok((_, body)) => {
            print!("{}", reload::report_table(&body));
            let outcome = body["certificates"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["name"] == name))
                .and_then(|c| c["outcome"].as_str())
                .unwrap_or("");
            if matches!(outcome, "updated" | "unchanged" | "added") {
                exit::OK
            } else {
                eprintln!(
                    "the running gatehouse did not take the new files for \"{name}\" ({outcome})"
                );
                exit::PROBLEMS
            }
        }
        Err(e) => {
            println!(
                "note: {e}\nthe files are in place; gatehouse uses them at its next start or reload"
            );
            exit::OK
        }
    }
}

fn install(args: &InstallArgs) -> CommandResult {
    let config = load_config(&args.config)?;
    let spec = find_spec(&config, &args.name)?;
    let now = Timestamp::now();
    let refuse = |why: String| format!("install refused: {why}\nthe current files are untouched");

    // The new material, read exactly as the store reads files.
    let mut bundle = Bundle::default();
    let mut read = |path: &Path, password: Option<&str>| -> Result<(), String> {
        let bytes = read_file(path).map_err(|e| refuse(e.to_string()))?;
        let b = certstore::parse_any(path, &bytes, password).map_err(|e| refuse(e.to_string()))?;
        bundle.certs.extend(b.certs);
        bundle.keys.extend(b.keys);
        Ok(())
    };
    let mut new_sources = Vec::new();
    match (&args.cert, &args.pkcs12) {
        (Some(cert), None) => {
            read(cert, None)?;
            new_sources.push(cert.clone());
            if let Some(chain) = &args.chain {
                read(chain, None)?;
                new_sources.push(chain.clone());
            }
            if let Some(key) = &args.key {
                read(key, None)?;
                new_sources.push(key.clone());
            } else if bundle.keys.is_empty() {
                // The CSR flow: the key is the one the certificate already uses.
                let current = certstore::load_source(&spec.source).map_err(|e| {
                    refuse(format!("the current key cannot be read ({e}); pass --key"))
                })?;
                bundle.keys.extend(current.keys);
            }
        }
        (None, Some(p12)) => {
            let password_file = args
                .password_file
                .as_deref()
                .ok_or_else(|| refuse("--pkcs12 needs --password-file".into()))?;
            let password = read_password(password_file).map_err(|e| refuse(e.to_string()))?;
            let bytes = read_file(p12).map_err(|e| refuse(e.to_string()))?;
            let b = certstore::parse_pkcs12(p12, &bytes, &password)
                .map_err(|e| refuse(e.to_string()))?;
            bundle = b;
            new_sources.push(p12.clone());
        }
        _ => {
            return Err(
                "give --cert (with optional --key and --chain) or --pkcs12 with --password-file"
                    .into(),
            );
        }
    }
    let new = LoadedCert::from_bundle(
        &spec.name,
        &bundle,
        spec.trust_anchors.as_deref(),
        new_sources,
        now,
    )
    .map_err(|e| refuse(e.to_string()))?;

    let required = required_names(&config, spec, now);
    let new_names = new.leaf().names();
    let dropped: Vec<&String> = required.iter().filter(|n| !covers(&new_names, n)).collect();
    if !dropped.is_empty() && !args.allow_name_change {
        return Err(refuse(format!(
            "the new certificate does not cover {} which \"{}\" serves now; clients using {} would get a certificate error. Get a certificate with those names, or pass --allow-name-change if dropping them is intended",
            dropped
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            spec.name,
            if dropped.len() == 1 { "it" } else { "them" },
        )));
    }

    let current = LoadedCert::load(spec, now).ok();
    let mut rows = Vec::new();
    if let Some(c) = &current {
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
    print!(
        "{}",
        table::render(&["", "NAMES", "SERIAL", "ISSUER", "NOT AFTER"], &rows)
    );
    println!(
        "chain: {} certificate(s) served: {}",
        new.chain.len(),
        new.chain
            .iter()
            .map(|c| c.subject.as_str())
            .collect::<Vec<_>>()
            .join(" <- ")
    );
    for w in &new.warnings {
        println!("warning: {w}");
    }
    if !dropped.is_empty() {
        println!(
            "names dropped (allowed by --allow-name-change): {}",
            dropped
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if args.dry_run {
        println!("dry run: nothing written");
        return Ok(exit::OK);
    }

    let key_index = certstore::matching_key(&bundle).map_err(|e| refuse(e.to_string()))?;
    let key = &bundle.keys[key_index].der;
    let chain = &new.certified_key.cert;
    let backup = backup::create(
        &config.state_dir,
        &spec.name,
        &source_files(&spec.source),
        now,
    )
    .map_err(|e| refuse(format!("cannot back up the current files: {e}")))?;
    if let Some(b) = &backup {
        println!(
            "backed up the current files to {} (id {})",
            b.dir.display(),
            b.id
        );
    }
    let written = write_material(&spec.source, chain, key);
    if let Err(e) = written {
        // Never leave half of the new material next to half of the old.
        if let Some(b) = &backup {
            let _ = backup::put_back(b);
        }
        return Err(format!(
            "install failed while writing: {e}; the previous files were put back"
        ));
    }
    println!("installed \"{}\"", spec.name);
    Ok(reload_and_report(&config, &spec.name))
}

/// Writes new material to the files `source` names: the key first, so that a failure
/// never leaves a new certificate beside an old key.
fn write_material(
    source: &Source,
    chain: &[rustls::pki_types::CertificateDer<'static>],
    key: &rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<(), String> {
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
            let password = read_password(password_file).map_err(|e| e.to_string())?;
            let p12 = certstore::pkcs12(chain, key, &password).map_err(|e| e.to_string())?;
            write_secret(path, &p12)?;
        }
    }
    Ok(())
}

fn backups(config_path: &Path, name: &str) -> CommandResult {
    let config = load_config(config_path)?;
    let all = backup::list(&config.state_dir, name).map_err(|e| e.to_string())?;
    if all.is_empty() {
        println!("no backups of \"{name}\" yet");
        return Ok(exit::OK);
    }
    let now = Timestamp::now();
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|b| {
            let mut bundle = Bundle::default();
            for f in &b.files {
                if let Ok(bytes) = read_file(&f.stored)
                    && let Ok(parsed) = certstore::parse_bundle(&f.stored, &bytes)
                {
                    bundle.certs.extend(parsed.certs);
                }
            }
            let leaf = certstore::inspect(&bundle, now).ok().and_then(|i| {
                let served = i.verdict.as_ref()?.served.first()?.clone();
                i.certs.into_iter().find(|c| c.subject == served)
            });
            vec![
                b.id.clone(),
                leaf.as_ref()
                    .map(|l| l.serial.clone())
                    .unwrap_or_else(|| "-".into()),
                leaf.as_ref()
                    .map(|l| l.not_after.to_string())
                    .unwrap_or_else(|| "-".into()),
                b.files
                    .iter()
                    .map(|f| f.original.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["ID", "SERIAL", "NOT AFTER", "FILES"], &rows)
    );
    Ok(exit::OK)
}

fn restore(config_path: &Path, name: &str, id: Option<&str>) -> CommandResult {
    let config = load_config(config_path)?;
    let spec = find_spec(&config, name)?;
    let now = Timestamp::now();
    let chosen = backup::find(&config.state_dir, name, id).map_err(|e| e.to_string())?;
    let current_files: Vec<PathBuf> = source_files(&spec.source)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    if let Some(stray) = chosen
        .files
        .iter()
        .find(|f| !current_files.contains(&f.original))
    {
        return Err(format!(
            "restore refused: backup {} holds {}, which certificate \"{name}\" no longer uses (the config changed since); restore it by hand if you mean to",
            chosen.id,
            stray.original.display()
        ));
    }
    // Check the backup as the store would load it, from where it is stored.
    let stored = |p: &PathBuf| {
        chosen
            .files
            .iter()
            .find(|f| &f.original == p)
            .map(|f| f.stored.clone())
            .unwrap_or_else(|| p.clone())
    };
    let from_backup = CertSpec {
        name: spec.name.clone(),
        source: match &spec.source {
            Source::Files { cert, key, chain } => Source::Files {
                cert: stored(cert),
                key: stored(key),
                chain: chain.as_ref().map(stored),
            },
            Source::Pkcs12 {
                path,
                password_file,
            } => Source::Pkcs12 {
                path: stored(path),
                password_file: stored(password_file),
            },
        },
        trust_anchors: spec.trust_anchors.clone(),
    };
    let restored = LoadedCert::load(&from_backup, now).map_err(|e| {
        format!(
            "restore refused: backup {} would not load: {e}\nthe current files are untouched",
            chosen.id
        )
    })?;
    let undo = backup::create(&config.state_dir, name, &source_files(&spec.source), now)
        .map_err(|e| format!("restore refused: cannot back up the current files: {e}"))?;
    backup::put_back(&chosen).map_err(|e| e.to_string())?;
    println!(
        "restored \"{name}\" from backup {} (serial {}, expires {})",
        chosen.id,
        restored.leaf().serial,
        restored.leaf().not_after
    );
    if let Some(u) = undo {
        println!(
            "the files it replaced are in backup {} (undo: gatehouse certs restore --name {name} --backup {})",
            u.id, u.id
        );
    }
    Ok(reload_and_report(&config, name))
}

fn export_ca(config_path: &Path) -> CommandResult {
    let config = load_config(config_path)?;
    let path = crate::config::ca_dir(&config.state_dir).join(certstore::InternalCa::CERT_FILE);
    let pem = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read the internal CA certificate {}: {e}; the CA is made when gatehouse first issues an internal certificate (an `issuer = \"internal\"` certificate, at start)",
            path.display()
        )
    })?;
    print!("{pem}");
    Ok(exit::OK)
}

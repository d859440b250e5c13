//! The certificate chores of `gatehouse certs`: inspect, list, csr, install, backups,
//! restore, reset, export-ca, ca rotate. Every check goes through `certstore`, the same code the proxy loads
//! with; no command prints a private key. Each command returns its exit code, or a
//! [`CertsError`] that says what is wrong and what to do.
//!
//! # Layout
//! - `inspect`, `list`, `csr`, `install` (`intermediate` for `--intermediate`), `restore`
//!   (with `backups`), `reset`: one command each; `ca`: `export-ca` and `ca rotate`.
//! - `backup`: the backups `install` and `restore` make and read.
//! - `internal`: certificates issued by the internal CA, before every load and reload.

pub mod backup;
mod ca;
pub mod csr;
mod inspect;
pub mod install;
mod intermediate;
pub mod internal;
mod list;
mod reset;
mod restore;

use std::io::Write;
use std::path::{Path, PathBuf};

use certstore::{CertInfo, CertSpec, LoadError, Source, Timestamp};

pub use self::ca::{export_ca, rotate as rotate_ca};
pub use self::inspect::inspect;
pub use self::list::list;
pub use self::reset::reset;
pub use self::restore::{
    BackupSummary, backups, restore, restore_with, summaries as backup_summaries,
};
use crate::config::{Config, ConfigError};
use crate::exit;
use crate::ops::client::{admin_post, report_table};

/// Why a `certs` command could not do its work. Nothing was changed unless the message
/// says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Backup(#[from] backup::BackupError),
    #[error(
        "no [[certificate]] named \"{name}\" in the config (there are: {})",
        known.join(", ")
    )]
    UnknownCertificate { name: String, known: Vec<String> },
    #[error(
        "certificate \"{name}\" is issued by the internal CA; to use a CA-signed certificate instead, give it `cert` and `key` in the config"
    )]
    Internal { name: String },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Csr(#[from] csr::CsrError),
    #[error(transparent)]
    Issue(#[from] certstore::IssueError),
    #[error(
        "{} is a PKCS#12/PFX file: install it with `--pkcs12 {} --password-file FILE` (the file holding its password) instead of --cert",
        path.display(), path.display()
    )]
    PfxAsCert { path: PathBuf },
    #[error("give --cert (with optional --key and --chain) or --pkcs12 with --password-file")]
    NoMaterial,
    #[error(
        "{} holds \"{subject}\", which is not a CA certificate; --intermediate takes the intermediate certificate(s) your CA sent (to install a server certificate: --name NAME --cert FILE)",
        path.display()
    )]
    NotIntermediate { path: PathBuf, subject: String },
    #[error("{} holds no certificate; --intermediate takes the intermediate certificate(s) your CA sent, PEM, DER or PKCS#7", path.display())]
    NoIntermediate { path: PathBuf },
    #[error("install refused: {0}\nthe current files are untouched")]
    InstallRefused(#[source] Box<CertsError>),
    #[error(
        "the new certificate does not cover {} which \"{certificate}\" serves now; clients using {} would get a certificate error. Get a certificate with those names, or pass --allow-name-change if dropping them is intended",
        names.join(", "),
        if names.len() == 1 { "it" } else { "them" }
    )]
    NamesDropped {
        certificate: String,
        names: Vec<String>,
    },
    #[error(
        "the new certificate for \"{certificate}\" was issued by \"{issuer}\", and neither the files given nor the current chain hold that certificate: served alone, clients would refuse it. Pass the intermediate certificate(s) your CA sent with --chain FILE (or in the --cert file), or add them to the pool first with `gatehouse certs install --config CONFIG --intermediate FILE`; if a root your clients trust issued it directly, set trust_anchors for the certificate; --allow-incomplete-chain installs it anyway"
    )]
    IssuerMissing { certificate: String, issuer: String },
    #[error("install failed while writing: {0}; the previous files were put back")]
    InstallWrite(#[source] Box<CertsError>),
    #[error("cannot encode the PKCS#12 file: {0}")]
    Encode(#[from] certstore::EncodeError),
    #[error(
        "restore refused: backup {id} holds {}, which certificate \"{name}\" no longer uses (the config changed since); restore it by hand if you mean to",
        file.display()
    )]
    BackupNotUsed {
        id: String,
        name: String,
        file: PathBuf,
    },
    #[error(
        "restore refused: backup {id} would not load: {source}\nthe current files are untouched"
    )]
    BackupBroken {
        id: String,
        #[source]
        source: LoadError,
    },
    #[error(
        "cannot read the internal CA certificate {}: {source}; the CA is made when gatehouse first issues an internal certificate (an `issuer = \"internal\"` certificate, at start)",
        path.display()
    )]
    NoInternalCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a command ends with: its exit code, or why it could not run.
pub type Outcome = Result<i32, CertsError>;

/// Where a chore reports what it does, and how the running instance gets the files it
/// wrote: the command line prints and asks the instance over the admin API
/// ([`Terminal`]); the certificates page, which runs in the instance, collects the text and
/// reloads in place. Both run the same chore.
pub trait Report {
    /// Where the report's lines go.
    fn out(&mut self) -> &mut dyn Write;
    /// Has the running instance reload after `names` got new files, and reports it; the
    /// exit code, [`exit::PROBLEMS`] when one of `names` did not take its new files.
    fn reload(&mut self, config: &Config, names: &[&str]) -> i32;
}

/// The command line's [`Report`]: standard output, and a reload over the admin API.
pub struct Terminal(pub std::io::Stdout);

impl Report for Terminal {
    fn out(&mut self) -> &mut dyn Write {
        &mut self.0
    }

    fn reload(&mut self, config: &Config, names: &[&str]) -> i32 {
        reload_and_report(config, names)
    }
}

/// Writes one line of a chore's report. A report that cannot be written (standard output
/// closed) does not stop the chore: its outcome is in the exit code.
macro_rules! say {
    ($report:expr, $($arg:tt)*) => {{
        let _ = writeln!($report.out(), $($arg)*);
    }};
}
pub(crate) use say;

/// The exit code of a reload whose report is `body`: [`exit::PROBLEMS`] when one of
/// `names` did not take its new files, each said in `out`.
pub fn took_new_files(body: &serde_json::Value, names: &[&str], out: &mut dyn Write) -> i32 {
    let mut code = exit::OK;
    for name in names {
        let outcome = body["certificates"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == *name))
            .and_then(|c| c["outcome"].as_str())
            .unwrap_or("");
        if !matches!(outcome, "updated" | "unchanged" | "added") {
            let _ = writeln!(
                out,
                "the running gatehouse did not take the new files for \"{name}\" ({outcome})"
            );
            code = exit::PROBLEMS;
        }
    }
    code
}

/// Prints the error of a command that could not run; the exit code to end with.
pub fn finish(outcome: Outcome) -> i32 {
    outcome.unwrap_or_else(|e| {
        eprintln!("{e}");
        exit::PROBLEMS
    })
}

/// The `[[certificate]]` named `name`, when its files are the operator's to change.
fn find_spec<'a>(config: &'a Config, name: &str) -> Result<&'a CertSpec, CertsError> {
    if config.internal.iter().any(|c| c.name == name) {
        return Err(CertsError::Internal { name: name.into() });
    }
    find_any_spec(config, name)
}

/// The `[[certificate]]` named `name`, internal or not (backups, restore, reset).
fn find_any_spec<'a>(config: &'a Config, name: &str) -> Result<&'a CertSpec, CertsError> {
    config
        .certificates
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| CertsError::UnknownCertificate {
            name: name.into(),
            known: config.certificates.iter().map(|c| c.name.clone()).collect(),
        })
}

/// Says where the replaced files went and the complete command that puts them back.
fn print_undo(out: &mut dyn Write, config_path: &Path, name: &str, backup: &backup::Backup) {
    let config_path = std::path::absolute(config_path).unwrap_or(config_path.to_owned());
    let _ = writeln!(
        out,
        "the files it replaced are in backup {id} ({dir})\nundo: gatehouse certs restore --config {} --name {name} --backup {id}",
        config_path.display(),
        id = backup.id,
        dir = backup.dir.display(),
    );
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

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), CertsError> {
    write(path, bytes, certstore::FileMode::Secret)
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), CertsError> {
    write(path, bytes, certstore::FileMode::Public)
}

fn write(path: &Path, bytes: &[u8], mode: certstore::FileMode) -> Result<(), CertsError> {
    certstore::write_atomic(path, bytes, mode).map_err(|source| CertsError::Write {
        path: path.to_owned(),
        source,
    })
}

/// One row of a before/after table.
fn summary(label: &str, c: &CertInfo, now: Timestamp) -> Vec<String> {
    vec![
        label.to_owned(),
        c.names().join(","),
        c.serial.clone(),
        c.issuer.clone(),
        format!("{} ({} days)", c.not_after, c.days_left(now)),
    ]
}

/// Asks the running instance to reload and prints its report; returns the exit code, 1
/// when one of `names` did not take its new files. An instance that cannot be reached is
/// not an error: the files are in place for its next start or reload.
fn reload_and_report(config: &Config, names: &[&str]) -> i32 {
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
    match rt.block_on(admin_post(config, "/reload")) {
        Ok((_, body)) => {
            print!("{}", report_table(&body));
            took_new_files(&body, names, &mut std::io::stderr())
        }
        Err(e) => {
            println!(
                "note: {e}\nthe files are in place; gatehouse uses them at its next start or reload"
            );
            exit::OK
        }
    }
}

//! `gatehouse certs backups` and `gatehouse certs restore`.

use std::path::{Path, PathBuf};

use certstore::{Bundle, CertSpec, LoadedCert, Source, Timestamp, read_file};

use super::backup::{self, Backup};
use super::{
    CertsError, Outcome, Report, Terminal, find_any_spec, print_undo, say, source_files, summary,
};
use crate::config::Config;
use crate::exit;
use crate::ops::table::render;

/// `certs backups`: the backups of a certificate, newest last.
pub fn backups(config_path: &Path, name: &str) -> Outcome {
    let config = Config::load(config_path)?;
    let all = summaries(&config.state_dir, name, Timestamp::now())?;
    if all.is_empty() {
        println!("no backups of \"{name}\" yet");
        return Ok(exit::OK);
    }
    let rows: Vec<Vec<String>> = all
        .into_iter()
        .map(|b| vec![b.id, b.serial, b.not_after, b.files.join(", ")])
        .collect();
    print!("{}", render(&["ID", "SERIAL", "NOT AFTER", "FILES"], &rows));
    Ok(exit::OK)
}

/// One backup as `certs backups` and the certificates page list it.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub id: String,
    /// The backed-up certificate's serial, `-` when it does not read.
    pub serial: String,
    pub not_after: String,
    /// The files it replaces.
    pub files: Vec<String>,
}

/// The backups of certificate `name`, newest last.
pub fn summaries(
    state_dir: &Path,
    name: &str,
    now: Timestamp,
) -> Result<Vec<BackupSummary>, CertsError> {
    let all = backup::list(state_dir, name)?;
    Ok(all
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
            BackupSummary {
                id: b.id.clone(),
                serial: leaf
                    .as_ref()
                    .map_or_else(|| "-".into(), |l| l.serial.clone()),
                not_after: leaf
                    .as_ref()
                    .map_or_else(|| "-".into(), |l| l.not_after.to_string()),
                files: b
                    .files
                    .iter()
                    .map(|f| f.original.display().to_string())
                    .collect(),
            }
        })
        .collect())
}

/// `certs restore`: puts a backup back (the newest unless `id`), checked as the store
/// would load it, after backing up the current files. With `dry_run`, shows what would
/// change and writes nothing.
pub fn restore(config_path: &Path, name: &str, id: Option<&str>, dry_run: bool) -> Outcome {
    let config = Config::load(config_path)?;
    let mut terminal = Terminal(std::io::stdout());
    restore_with(&config, config_path, name, id, dry_run, &mut terminal)
}

/// [`restore`] on a loaded `config` (the one `config_path` names), reporting to `report`:
/// what the command line and the certificates page both run.
pub fn restore_with(
    config: &Config,
    config_path: &Path,
    name: &str,
    id: Option<&str>,
    dry_run: bool,
    report: &mut dyn Report,
) -> Outcome {
    let spec = find_any_spec(config, name)?;
    let now = Timestamp::now();
    let pool = config.intermediates();
    let chosen = backup::find(&config.state_dir, name, id)?;
    let current_files: Vec<PathBuf> = source_files(&spec.source)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    if let Some(stray) = chosen
        .files
        .iter()
        .find(|f| !current_files.contains(&f.original))
    {
        return Err(CertsError::BackupNotUsed {
            id: chosen.id.clone(),
            name: name.into(),
            file: stray.original.clone(),
        });
    }
    // Check the backup as the store would load it, from where it is stored.
    let from_backup = stored_spec(spec, &chosen);
    let restored =
        LoadedCert::load(&from_backup, now, &pool).map_err(|source| CertsError::BackupBroken {
            id: chosen.id.clone(),
            source,
        })?;
    let mut rows = Vec::new();
    if let Ok(current) = LoadedCert::load(spec, now, &pool) {
        rows.push(summary("now", current.leaf(), now));
    }
    rows.push(summary(
        &format!("backup {}", chosen.id),
        restored.leaf(),
        now,
    ));
    let _ = write!(
        report.out(),
        "{}",
        render(&["", "NAMES", "SERIAL", "ISSUER", "NOT AFTER"], &rows)
    );
    for f in &chosen.files {
        say!(report, "replaces {}", f.original.display());
    }
    if dry_run {
        say!(report, "dry run: nothing written");
        return Ok(exit::OK);
    }
    let undo = backup::create(&config.state_dir, name, &source_files(&spec.source), now)?;
    backup::put_back(&chosen)?;
    say!(
        report,
        "restored \"{name}\" from backup {} (serial {}, expires {})",
        chosen.id,
        restored.leaf().serial,
        restored.leaf().not_after
    );
    if let Some(u) = undo {
        print_undo(report.out(), config_path, name, &u);
    }
    Ok(report.reload(config, &[name]))
}

/// `spec` with every file it names read from where `backup` stored it.
fn stored_spec(spec: &CertSpec, chosen: &Backup) -> CertSpec {
    let stored = |p: &PathBuf| {
        chosen
            .files
            .iter()
            .find(|f| &f.original == p)
            .map(|f| f.stored.clone())
            .unwrap_or_else(|| p.clone())
    };
    CertSpec {
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
        ocsp: None,
    }
}

//! `gatehouse certs backups` and `gatehouse certs restore`.

use std::path::{Path, PathBuf};

use certstore::{Bundle, CertSpec, LoadedCert, Source, Timestamp, read_file};

use super::backup::{self, Backup};
use super::{
    CertsError, Outcome, find_any_spec, print_undo, reload_and_report, source_files, summary,
};
use crate::config::Config;
use crate::exit;
use crate::ops::table::render;

/// `certs backups`: the backups of a certificate, newest last.
pub fn backups(config_path: &Path, name: &str) -> Outcome {
    let config = Config::load(config_path)?;
    let all = backup::list(&config.state_dir, name)?;
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
    print!("{}", render(&["ID", "SERIAL", "NOT AFTER", "FILES"], &rows));
    Ok(exit::OK)
}

/// `certs restore`: puts a backup back (the newest unless `id`), checked as the store
/// would load it, after backing up the current files. With `dry_run`, shows what would
/// change and writes nothing.
pub fn restore(config_path: &Path, name: &str, id: Option<&str>, dry_run: bool) -> Outcome {
    let config = Config::load(config_path)?;
    let spec = find_any_spec(&config, name)?;
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
    print!(
        "{}",
        render(&["", "NAMES", "SERIAL", "ISSUER", "NOT AFTER"], &rows)
    );
    for f in &chosen.files {
        println!("replaces {}", f.original.display());
    }
    if dry_run {
        println!("dry run: nothing written");
        return Ok(exit::OK);
    }
    let undo = backup::create(&config.state_dir, name, &source_files(&spec.source), now)?;
    backup::put_back(&chosen)?;
    println!(
        "restored \"{name}\" from backup {} (serial {}, expires {})",
        chosen.id,
        restored.leaf().serial,
        restored.leaf().not_after
    );
    if let Some(u) = undo {
        print_undo(config_path, name, &u);
    }
    Ok(reload_and_report(&config, &[name]))
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

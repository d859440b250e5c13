//! Backups of a certificate's files under `state_dir/backups/NAME/ID/`, so that an install
//! or a restore can always be undone. Each backup holds copies of the files and a
//! `manifest.json` naming where each came from.

use std::path::{Path, PathBuf};

use certstore::{FileMode, Timestamp, write_atomic};
use serde_json::{Value, json};

const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the backup {}: {source}; check that state_dir is writable and not full", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no backup \"{id}\" for certificate \"{name}\"; `gatehouse certs backups` lists them")]
    NotFound { name: String, id: String },
    #[error("there are no backups of certificate \"{name}\" yet")]
    None { name: String },
    #[error("backup {} is damaged: {detail}", dir.display())]
    Damaged { dir: PathBuf, detail: String },
}

/// One file in a backup.
#[derive(Debug, Clone)]
pub struct BackedUpFile {
    pub original: PathBuf,
    pub stored: PathBuf,
    pub secret: bool,
}

/// One backup.
#[derive(Debug, Clone)]
pub struct Backup {
    pub id: String,
    pub dir: PathBuf,
    pub files: Vec<BackedUpFile>,
}

fn dir_of(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("backups").join(name)
}

/// A sortable id from the time: `20261123T154000Z` (with `-N` when taken twice a second).
fn new_id(base: &Path, now: Timestamp) -> String {
    let stamp: String = now
        .to_string()
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let mut id = stamp.clone();
    let mut n = 1;
    while base.join(&id).exists() {
        id = format!("{stamp}-{n}");
        n += 1;
    }
    id
}

/// Copies `files` (those that exist) into a new backup of certificate `name`. Every
/// stored copy is 0600 (a backup directory is no place to widen access); `secret` records
/// how the file is written back.
pub fn create(
    state_dir: &Path,
    name: &str,
    files: &[(PathBuf, bool)],
    now: Timestamp,
) -> Result<Option<Backup>, BackupError> {
    let existing: Vec<&(PathBuf, bool)> = files.iter().filter(|(p, _)| p.exists()).collect();
    if existing.is_empty() {
        return Ok(None);
    }
    let base = dir_of(state_dir, name);
    let id = new_id(&base, now);
    let dir = base.join(&id);
    let mut stored = Vec::new();
    for (i, (original, secret)) in existing.iter().enumerate() {
        let bytes = std::fs::read(original).map_err(|source| BackupError::Read {
            path: original.clone(),
            source,
        })?;
        let file_name = original
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let target = dir.join(format!("{i}-{file_name}"));
        write_atomic(&target, &bytes, FileMode::Secret).map_err(|source| BackupError::Write {
            path: target.clone(),
            source,
        })?;
        stored.push(BackedUpFile {
            original: original.clone(),
            stored: target,
            secret: *secret,
        });
    }
    let manifest = json!({
        "certificate": name,
        "created": now.to_string(),
        "files": stored.iter().map(|f| json!({
            "original": f.original.display().to_string(),
            "stored": f.stored.file_name().map(|n| n.to_string_lossy().into_owned()),
            "secret": f.secret,
        })).collect::<Vec<_>>(),
    });
    let manifest_path = dir.join(MANIFEST);
    write_atomic(
        &manifest_path,
        serde_json::to_string_pretty(&manifest)
            .unwrap_or_default()
            .as_bytes(),
        FileMode::Secret,
    )
    .map_err(|source| BackupError::Write {
        path: manifest_path,
        source,
    })?;
    Ok(Some(Backup {
        id,
        dir,
        files: stored,
    }))
}

fn read_one(dir: &Path, id: &str) -> Result<Backup, BackupError> {
    let manifest_path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&manifest_path).map_err(|source| BackupError::Read {
        path: manifest_path.clone(),
        source,
    })?;
    let damaged = |detail: &str| BackupError::Damaged {
        dir: dir.to_owned(),
        detail: detail.into(),
    };
    let v: Value = serde_json::from_str(&text).map_err(|_| damaged("manifest.json is not JSON"))?;
    let files = v["files"]
        .as_array()
        .ok_or_else(|| damaged("manifest.json lists no files"))?
        .iter()
        .map(|f| {
            Ok(BackedUpFile {
                original: PathBuf::from(
                    f["original"]
                        .as_str()
                        .ok_or_else(|| damaged("a file has no original path"))?,
                ),
                stored: dir.join(
                    f["stored"]
                        .as_str()
                        .ok_or_else(|| damaged("a file has no stored name"))?,
                ),
                secret: f["secret"].as_bool().unwrap_or(true),
            })
        })
        .collect::<Result<Vec<_>, BackupError>>()?;
    Ok(Backup {
        id: id.to_owned(),
        dir: dir.to_owned(),
        files,
    })
}

/// Every backup of certificate `name`, oldest first.
pub fn list(state_dir: &Path, name: &str) -> Result<Vec<Backup>, BackupError> {
    let base = dir_of(state_dir, name);
    let entries = match std::fs::read_dir(&base) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(BackupError::Read { path: base, source }),
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(MANIFEST).exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort_by_key(|id| sort_key(id));
    ids.iter().map(|id| read_one(&base.join(id), id)).collect()
}

/// `20261123T154000Z-10` sorts after `…Z-9`.
fn sort_key(id: &str) -> (String, u32) {
    match id.split_once('-') {
        Some((stamp, n)) => (stamp.to_owned(), n.parse().unwrap_or(0)),
        None => (id.to_owned(), 0),
    }
}

/// The given backup, or the newest.
pub fn find(state_dir: &Path, name: &str, id: Option<&str>) -> Result<Backup, BackupError> {
    let all = list(state_dir, name)?;
    match id {
        Some(id) => all
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| BackupError::NotFound {
                name: name.to_owned(),
                id: id.to_owned(),
            }),
        None => all
            .into_iter()
            .next_back()
            .ok_or_else(|| BackupError::None {
                name: name.to_owned(),
            }),
    }
}

/// Writes a backup's files back to where they came from, atomically.
pub fn put_back(backup: &Backup) -> Result<(), BackupError> {
    for f in &backup.files {
        let bytes = std::fs::read(&f.stored).map_err(|source| BackupError::Read {
            path: f.stored.clone(),
            source,
        })?;
        let mode = if f.secret {
            FileMode::Secret
        } else {
            FileMode::Public
        };
        write_atomic(&f.original, &bytes, mode).map_err(|source| BackupError::Write {
            path: f.original.clone(),
            source,
        })?;
    }
    Ok(())
}

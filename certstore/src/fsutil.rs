//! Writing files the way Gatehouse promises: temp file, fsync, rename; keys 0600.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Who may read a file Gatehouse writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// Certificates: 0644.
    Public,
    /// Private keys and passwords: 0600.
    Secret,
}

/// Writes `bytes` to `path` atomically: a new temp file beside it, fsync, rename, fsync of
/// the directory. Readers see the old file or the new one, never half of one. A replaced
/// file keeps its owner (when the writer may set it) and, for public files, its mode, so
/// a service user can still read what root installed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: FileMode) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let existing = fs::metadata(path).ok();
    let permissions = match (mode, &existing) {
        (FileMode::Secret, _) => 0o600,
        (FileMode::Public, Some(m)) => m.permissions().mode() & 0o7777,
        (FileMode::Public, None) => 0o644,
    };
    let (tmp, mut file) = create_temp(dir, &name, permissions)?;
    let result = (|| {
        file.write_all(bytes)?;
        // `mode` on open is filtered by the umask; set exactly what is meant.
        file.set_permissions(fs::Permissions::from_mode(permissions))?;
        if let Some(m) = &existing {
            // Only root may give a file away; anyone else keeps their own ownership.
            let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
        }
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A fresh temp file beside the target: never an old one reused with its old mode.
fn create_temp(dir: &Path, name: &str, permissions: u32) -> std::io::Result<(PathBuf, fs::File)> {
    /// Attempts before giving up on finding an unused name.
    const ATTEMPTS: u32 = 16;
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let mut nonce = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut nonce);
        let suffix: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = dir.join(format!(".{name}.tmp-{suffix}"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(permissions)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no unused temp file name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_are_0600_and_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("certstore-fsutil-{}", std::process::id()));
        let path = dir.join("k.pem");
        write_atomic(&path, b"one", FileMode::Secret).unwrap();
        write_atomic(&path, b"two", FileMode::Secret).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temp file left behind"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

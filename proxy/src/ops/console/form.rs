//! What the page's forms post: urlencoded fields, and the certificate files of "Replace"
//! (multipart), written to a pending directory of their own until the operator confirms.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// The most a login, reload or restore form may post.
const MAX_FORM: usize = 16 * 1024;
/// The most an upload may post: certificates, keys and PFX files are a few KiB; a bundle
/// with a long chain stays far below.
pub const MAX_UPLOAD: usize = 1024 * 1024;
/// How long an upload waits for its confirmation before it is deleted.
const PENDING_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Why a form could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    #[error("the form is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the form could not be read: {0}")]
    Read(String),
    #[error("the upload is not multipart/form-data")]
    NotMultipart,
    #[error("cannot keep the upload: {0}")]
    Store(#[from] std::io::Error),
}

/// The body of a request, at most `limit` bytes.
async fn body(body: Incoming, limit: usize) -> Result<Bytes, FormError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(FormError::TooLarge(limit)),
        Err(e) => Err(FormError::Read(e.to_string())),
    }
}

/// An urlencoded form's fields.
pub async fn fields(incoming: Incoming) -> Result<HashMap<String, String>, FormError> {
    let bytes = body(incoming, MAX_FORM).await?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// The files of a "Replace" upload, as kept for the dry run and the install.
#[derive(Debug, Clone)]
pub struct Upload {
    pub certificate: String,
    /// The session that uploaded it: only it may confirm.
    pub session: String,
    pub dir: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub chain: Option<PathBuf>,
    pub pkcs12: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    since: Instant,
}

/// Uploads waiting for their confirmation.
#[derive(Debug, Default)]
pub struct Pending {
    by_id: Mutex<HashMap<String, Upload>>,
}

impl Pending {
    /// Keeps `upload` under a new id, deleting uploads nobody confirmed in time.
    pub fn keep(&self, id: String, upload: Upload) {
        let mut all = self.lock();
        all.retain(|_, u| {
            let fresh = u.since.elapsed() < PENDING_LIFETIME;
            if !fresh {
                let _ = std::fs::remove_dir_all(&u.dir);
            }
            fresh
        });
        all.insert(id, upload);
    }

    /// The upload `id` of `session`, taken: it is installed or discarded once.
    pub fn take(&self, id: &str, session: &str) -> Option<Upload> {
        let mut all = self.lock();
        if all.get(id)?.session != session {
            return None;
        }
        all.remove(id)
            .filter(|u| u.since.elapsed() < PENDING_LIFETIME)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Upload>> {
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Reads a multipart upload: the `csrf` field, and the files (`cert`, `key`, `chain`,
/// `pkcs12`) and `password` written to `dir` (made 0700, every file 0600: keys among them).
/// Empty file inputs are left out.
pub async fn upload(
    headers: &HeaderMap,
    incoming: Incoming,
    dir: &Path,
    certificate: &str,
    session: &str,
) -> Result<(Option<String>, Upload), FormError> {
    let boundary = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or(FormError::NotMultipart)?;
    let bytes = body(incoming, MAX_UPLOAD).await?;
    let mut multipart = multer::Multipart::with_reader(std::io::Cursor::new(bytes), boundary);
    make_private_dir(dir)?;
    let mut upload = Upload {
        certificate: certificate.to_owned(),
        session: session.to_owned(),
        dir: dir.to_owned(),
        cert: None,
        key: None,
        chain: None,
        pkcs12: None,
        password_file: None,
        since: Instant::now(),
    };
    let mut csrf = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| FormError::Read(e.to_string()))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(plain_file_name);
        let data = field
            .bytes()
            .await
            .map_err(|e| FormError::Read(e.to_string()))?;
        let slot = match name.as_str() {
            "csrf" => {
                csrf = Some(String::from_utf8_lossy(&data).into_owned());
                continue;
            }
            "cert" => &mut upload.cert,
            "key" => &mut upload.key,
            "chain" => &mut upload.chain,
            "pkcs12" => &mut upload.pkcs12,
            "password" => &mut upload.password_file,
            _ => continue,
        };
        if data.is_empty() {
            continue;
        }
        // Under the name it had on the operator's machine, so that messages name the file
        // they chose: dir/FIELD/NAME, shown as NAME.
        let field_dir = dir.join(&name);
        make_private_dir(&field_dir)?;
        let path = field_dir.join(file_name.unwrap_or(name));
        certstore::write_atomic(&path, &data, certstore::FileMode::Secret)?;
        *slot = Some(path);
    }
    Ok((csrf, upload))
}

impl Upload {
    /// `text` with the upload's directories left out of file names: a message then names
    /// `leaf.crt` as the operator chose it, not where the page keeps it.
    pub fn as_uploaded(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for field in ["cert", "key", "chain", "pkcs12", "password"] {
            let prefix = format!("{}/", self.dir.join(field).display());
            text = text.replace(&prefix, "");
        }
        text
    }
}

/// A browser's file name without any directory part, or a character that would make it
/// one; `upload` when nothing is left.
fn plain_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned();
    if clean.is_empty() {
        "upload".into()
    } else {
        clean
    }
}

/// `dir`, made readable by its owner only.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

//! The page's chores, each on the code `gatehouse certs` runs (install, restore, csr) or the
//! admin API's reload, in the running instance: files are read and written, and the
//! instance reloaded, on tokio's blocking pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::page::{self, Viewer};
use super::session::{self, Current};
use super::{Console, form, html, redirect, view, with_headers};
use crate::certs::install::{InstallArgs, install_with};
use crate::certs::{Report, restore_with, took_new_files};
use crate::config::{Config, ca_dir};
use crate::ops::admin::{Control, reload_blocking, reload_now};
use crate::ops::client::report_table;

/// Where the page keeps what it makes: uploads until confirmed, CSR keys until their
/// certificate comes back.
fn console_dir(config: &Config) -> PathBuf {
    config.state_dir.join("console")
}

/// Where uploads wait for their confirmation.
pub fn uploads_dir(config: &Config) -> PathBuf {
    console_dir(config).join("uploads")
}

/// A chore's [`Report`] on the page: the text is kept to show, the reload is this
/// instance's own.
struct InPlace<'a, C> {
    out: Vec<u8>,
    control: &'a C,
}

impl<C: Control> Report for InPlace<'_, C> {
    fn out(&mut self) -> &mut dyn std::io::Write {
        &mut self.out
    }

    fn reload(&mut self, _config: &Config, names: &[&str]) -> i32 {
        match reload_now(self.control) {
            Ok(reloaded) => {
                let body = crate::ops::report::reloaded_json(&reloaded);
                self.out.extend_from_slice(report_table(&body).as_bytes());
                took_new_files(&body, names, &mut self.out)
            }
            Err(e) => {
                self.out.extend_from_slice(
                    format!("reload refused, nothing changed: {e}\n").as_bytes(),
                );
                crate::exit::PROBLEMS
            }
        }
    }
}

/// Runs `chore` on the blocking pool with an [`InPlace`] report: its outcome (the exit
/// code, or the error's text) and what it printed.
async fn run<C: Control>(
    control: Arc<C>,
    chore: impl FnOnce(&C, &mut dyn Report) -> crate::certs::Outcome + Send + 'static,
) -> (Result<i32, String>, String) {
    let ran = tokio::task::spawn_blocking(move || {
        let mut report = InPlace {
            out: Vec::new(),
            control: &*control,
        };
        let outcome = chore(&control, &mut report).map_err(|e| e.to_string());
        (outcome, String::from_utf8_lossy(&report.out).into_owned())
    })
    .await;
    ran.unwrap_or_else(|e| (Err(format!("the chore failed: {e}")), String::new()))
}

/// "Replace": keeps the upload and shows what installing it would change.
pub async fn replace<C: Control>(
    console: &Console,
    req: Request<Incoming>,
    control: Arc<C>,
    current: &Current,
    name: &str,
) -> Response<Full<Bytes>> {
    let config = control.config();
    let Some(id) = session::random_hex() else {
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            page::problem(
                "Upload refused",
                "the system's random generator failed; try again",
            ),
        );
    };
    let dir = uploads_dir(&config).join(&id);
    let (headers, body) = {
        let (parts, body) = req.into_parts();
        (parts.headers, body)
    };
    let upload = form::upload(&headers, body, &dir, name, &current.id).await;
    let mut upload = match upload {
        Ok((csrf, upload)) if session::csrf_ok(current, csrf.as_deref()) => upload,
        Ok(_) => {
            let _ = std::fs::remove_dir_all(&dir);
            return html(
                StatusCode::FORBIDDEN,
                page::problem(
                    "Upload refused",
                    "the form is stale or was not sent by this page: open the page again and retry",
                ),
            );
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return html(
                StatusCode::BAD_REQUEST,
                page::problem("Upload refused", &e.to_string()),
            );
        }
    };
    if upload.key.is_none() {
        upload.key = csr_key_for(&config, name, upload.cert.as_deref());
    }
    let args = install_args(&*control, &upload, true);
    let (outcome, text) = run(control.clone(), move |c, report| {
        install_with(&c.config(), &args, report)
    })
    .await;
    let viewer = Viewer {
        csrf: Some(&current.csrf),
    };
    let ca = view::has_ca(&config);
    let text = upload.as_uploaded(&text);
    let outcome = outcome.map_err(|e| upload.as_uploaded(&e));
    match outcome {
        Ok(0) => {
            console.pending.keep(id.clone(), upload);
            html(
                StatusCode::OK,
                page::dry_run(name, &text, None, Some(&id), viewer, ca),
            )
        }
        Ok(_) | Err(_) => {
            let _ = std::fs::remove_dir_all(&dir);
            let why = outcome
                .err()
                .unwrap_or_else(|| "the dry run found problems".into());
            html(
                StatusCode::UNPROCESSABLE_ENTITY,
                page::dry_run(name, &text, Some(&why), None, viewer, ca),
            )
        }
    }
}

/// The key of this page's last CSR for `name`, when the uploaded certificate is for it
/// (the CA's answer to that CSR).
fn csr_key_for(config: &Config, name: &str, cert: Option<&std::path::Path>) -> Option<PathBuf> {
    let key = console_dir(config).join("csr").join(format!("{name}.key"));
    let cert = cert?;
    let mut bundle = certstore::parse_any(cert, &certstore::read_file(cert).ok()?, None).ok()?;
    bundle.keys.extend(
        certstore::parse_any(&key, &certstore::read_file(&key).ok()?, None)
            .ok()?
            .keys,
    );
    certstore::matching_key(&bundle).ok().map(|_| key)
}

fn install_args<C: Control>(control: &C, upload: &form::Upload, dry_run: bool) -> InstallArgs {
    InstallArgs {
        config: control.config_path().to_owned(),
        name: Some(upload.certificate.clone()),
        cert: upload.cert.clone(),
        key: upload.key.clone(),
        chain: upload.chain.clone(),
        intermediate: None,
        pkcs12: upload.pkcs12.clone(),
        password_file: upload.password_file.clone(),
        dry_run,
        allow_name_change: false,
        allow_incomplete_chain: false,
    }
}

/// "Install" after the dry run: the upload goes in as `certs install` puts it.
pub async fn install<C: Control>(
    console: &Console,
    control: Arc<C>,
    current: &Current,
    fields: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let id = fields.get("upload").map(String::as_str).unwrap_or_default();
    let Some(upload) = console.pending.take(id, &current.id) else {
        return html(
            StatusCode::GONE,
            page::problem(
                "Nothing to install",
                "this upload was installed already, or waited too long (15 minutes): upload the files again",
            ),
        );
    };
    let args = install_args(&*control, &upload, false);
    let name = upload.certificate.clone();
    let (outcome, text) = run(control, move |c, report| {
        install_with(&c.config(), &args, report)
    })
    .await;
    let _ = std::fs::remove_dir_all(&upload.dir);
    let text = upload.as_uploaded(&text);
    let outcome = outcome.map_err(|e| upload.as_uploaded(&e));
    finish(
        console,
        current,
        outcome,
        format!("Install of \"{name}\""),
        text,
    )
}

/// "Restore": a backup put back as `certs restore` does it.
pub async fn restore<C: Control>(
    console: &Console,
    control: Arc<C>,
    current: &Current,
    name: &str,
    fields: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    let backup = fields.get("backup").cloned();
    let owned = name.to_owned();
    let (outcome, text) = run(control, move |c, report| {
        restore_with(
            &c.config(),
            c.config_path(),
            &owned,
            backup.as_deref(),
            false,
            report,
        )
    })
    .await;
    finish(
        console,
        current,
        outcome,
        format!("Restore of \"{name}\""),
        text,
    )
}

/// "Reload": the admin API's reload; the page shows its report.
pub async fn reload<C: Control>(
    console: &Console,
    control: Arc<C>,
    current: &Current,
) -> Response<Full<Bytes>> {
    let (ok, text) = match reload_blocking(control).await.map(|r| r.is_clean()) {
        Ok(true) => (true, "every certificate took its files".to_owned()),
        Ok(false) => (false, "see the report below".to_owned()),
        Err(e) => (false, format!("refused, nothing changed: {e}")),
    };
    console.flash(current, ok, "Reload".into(), text);
    redirect("/", None)
}

/// Shows the chore's outcome once on the main page.
fn finish(
    console: &Console,
    current: &Current,
    outcome: Result<i32, String>,
    title: String,
    mut text: String,
) -> Response<Full<Bytes>> {
    let ok = matches!(outcome, Ok(0));
    if let Err(e) = outcome {
        text.push_str(&e);
        text.push('\n');
    }
    let title = format!("{title}: {}", if ok { "done" } else { "FAILED" });
    console.flash(current, ok, title, text);
    redirect("/", None)
}

/// "New CSR": a new key kept in the state directory, the request downloaded.
pub async fn csr<C: Control>(
    control: Arc<C>,
    name: &str,
    fields: &HashMap<String, String>,
) -> Response<Full<Bytes>> {
    use clap::ValueEnum;
    let config = control.config();
    if !config.certificates.iter().any(|c| c.name == name) {
        return super::not_found();
    }
    let text = |k: &str| {
        fields
            .get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let key_type = text("key_type").unwrap_or_else(|| "ecdsa-p256".into());
    let Ok(key_type) = crate::certs::csr::KeyType::from_str(&key_type, true) else {
        return html(
            StatusCode::BAD_REQUEST,
            page::problem("CSR refused", "unknown key type"),
        );
    };
    let dir = console_dir(&config).join("csr");
    let args = crate::certs::csr::CsrArgs {
        key_type,
        common_name: text("common_name").unwrap_or_default(),
        sans: text("sans")
            .unwrap_or_default()
            .split([' ', ',', '\n'])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        ips: Vec::new(),
        country: text("country"),
        state: text("state"),
        locality: text("locality"),
        organization: text("organization"),
        org_unit: text("org_unit"),
        key_out: dir.join(format!("{name}.key")),
        csr_out: dir.join(format!("{name}.csr")),
        force: true,
    };
    let made = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        crate::certs::csr::csr_with(&args, &mut std::io::sink()).map_err(|e| e.to_string())?;
        std::fs::read(&args.csr_out).map_err(|e| e.to_string())
    })
    .await;
    match made {
        Ok(Ok(pem)) => {
            let mut resp = with_headers(StatusCode::OK, "application/pkcs10", pem);
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csr\"")) {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Ok(Err(e)) => html(
            StatusCode::UNPROCESSABLE_ENTITY,
            page::problem("CSR refused", &e),
        ),
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            page::problem("CSR failed", &e.to_string()),
        ),
    }
}

/// "Download CA": the internal CA's certificate, for browsers' and clients' trust stores.
pub fn download_ca<C: Control>(control: &C) -> Response<Full<Bytes>> {
    let path = ca_dir(&control.config().state_dir).join(certstore::InternalCa::CERT_FILE);
    match std::fs::read(&path) {
        Ok(pem) => {
            let mut resp = with_headers(StatusCode::OK, "application/x-pem-file", pem);
            resp.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"gatehouse-internal-ca.pem\""),
            );
            resp
        }
        Err(_) => super::not_found(),
    }
}

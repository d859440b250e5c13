//! The certificates page's HTML, rendered on the server: readable without JavaScript (there
//! is none), styled by the embedded `console.css` only. Every text from a certificate,
//! a file or the configuration goes through [`e`].

use std::fmt::Write;

use super::session::Flash;
use crate::certs::BackupSummary;

/// Escapes text for HTML content and quoted attribute values.
pub fn e(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_safe(text)
}

/// Days left under which the not-after cell turns amber, and red.
const WARN_DAYS: i64 = 30;
const BAD_DAYS: i64 = 7;

/// One certificate as the table shows it.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub name: String,
    pub names: Vec<String>,
    pub issuer: String,
    pub serial: String,
    pub not_after: String,
    pub days_left: i64,
    /// The chain as served, leaf first (subjects).
    pub chain: Vec<String>,
    pub chain_complete: bool,
    pub warnings: Vec<String>,
    /// Listeners and routes that serve it.
    pub used_by: Vec<String>,
    pub internal: bool,
    /// Why it serves an earlier version than its files hold.
    pub stale: Option<String>,
    /// The OCSP staple's status, when it has one configured.
    pub ocsp: Option<String>,
    /// False when the certificate is configured but nothing of it is served.
    pub loaded: bool,
}

/// Who is looking: `csrf` when logged in (forms are shown), `None` for the read-only page.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub csrf: Option<&'a str>,
}

/// The page around `body`.
pub fn layout(title: &str, viewer: Viewer<'_>, ca: bool, body: &str) -> String {
    let mut nav = String::from(r#"<a href="/">Certificates</a>"#);
    if ca {
        nav.push_str(r#" <a id="download-ca" href="/console/ca.pem">Download CA</a>"#);
    }
    if let Some(csrf) = viewer.csrf {
        let _ = write!(
            nav,
            r#" <form id="logout" method="post" action="/logout">{}<button type="submit">Log out</button></form>"#,
            hidden(csrf)
        );
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Gatehouse</title><link rel="stylesheet" href="/console/console.css"></head>
<body><header><span class="brand">Gatehouse</span><nav>{nav}</nav></header><main>
{body}
</main></body></html>
"#,
        title = e(title)
    )
}

fn hidden(csrf: &str) -> String {
    format!(r#"<input type="hidden" name="csrf" value="{}">"#, e(csrf))
}

/// The login form, with `error` from a failed attempt.
pub fn login(error: Option<&str>) -> String {
    let error = error
        .map(|m| format!(r#"<p class="error">{}</p>"#, e(m)))
        .unwrap_or_default();
    layout(
        "Log in",
        Viewer { csrf: None },
        false,
        &format!(
            r#"<h1>Log in</h1>{error}
<form id="login" method="post" action="/login">
<label>Admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Log in</button></form>
<p class="hint">The token is the contents of the file <code>[admin] token_file</code> names.</p>"#
        ),
    )
}

/// The main page: the table, the last reload, and the flash of the last chore.
pub fn index(
    rows: &[Row],
    last_reload: Option<(String, String)>,
    flash: Option<Flash>,
    viewer: Viewer<'_>,
    ca: bool,
) -> String {
    let mut body = String::new();
    if let Some(f) = flash {
        let _ = write!(
            body,
            r#"<section id="flash" class="{}"><h2>{}</h2><pre>{}</pre></section>"#,
            if f.ok { "ok" } else { "error" },
            e(&f.title),
            e(&f.text)
        );
    }
    body.push_str("<h1>Certificates</h1>");
    if viewer.csrf.is_none() {
        body.push_str(r#"<p class="hint">Read-only: set <code>[admin] token_file</code> to replace, restore and reload from this page.</p>"#);
    }
    body.push_str(r#"<table id="certificates"><thead><tr><th>Name</th><th>Names</th><th>Issuer</th><th>Serial</th><th>Not after</th><th>Chain served</th><th>Warnings</th><th>Used by</th></tr></thead><tbody>"#);
    for r in rows {
        table_row(&mut body, r);
    }
    body.push_str("</tbody></table>");
    body.push_str(r#"<section id="last-reload"><h2>Last reload</h2>"#);
    match last_reload {
        Some((at, text)) => {
            let _ = write!(body, "<p>at {}</p><pre>{}</pre>", e(&at), e(&text));
        }
        None => body.push_str("<p>No reload since start.</p>"),
    }
    if let Some(csrf) = viewer.csrf {
        let _ = write!(
            body,
            r#"<form id="reload" method="post" action="/console/reload">{}<button type="submit">Reload</button></form>"#,
            hidden(csrf)
        );
    }
    body.push_str("</section>");
    layout("Certificates", viewer, ca, &body)
}

fn table_row(body: &mut String, r: &Row) {
    let days = if r.days_left < BAD_DAYS {
        "days-bad"
    } else if r.days_left < WARN_DAYS {
        "days-warn"
    } else {
        "days-ok"
    };
    let mut badges = String::new();
    for (on, label) in [
        (r.internal, "internal"),
        (r.stale.is_some(), "stale"),
        (!r.loaded, "not served"),
    ] {
        if on {
            let _ = write!(badges, r#" <span class="badge">{label}</span>"#);
        }
    }
    if let Some(ocsp) = &r.ocsp {
        let _ = write!(badges, r#" <span class="badge">OCSP {}</span>"#, e(ocsp));
    }
    let chain = if r.loaded {
        format!(
            r#"{} <span class="{}">{}</span>"#,
            e(&r.chain.join(" ← ")),
            if r.chain_complete { "ok" } else { "bad" },
            if r.chain_complete {
                "complete"
            } else {
                "incomplete"
            }
        )
    } else {
        String::new()
    };
    let _ = write!(
        body,
        r#"<tr data-certificate="{name}"><td class="name"><a href="/certificate/{name}">{name}</a>{badges}</td><td class="names">{names}</td><td class="issuer">{issuer}</td><td class="serial">{serial}</td><td class="not-after {days}">{not_after}{left}</td><td class="chain">{chain}</td><td class="warnings">{warnings}</td><td class="used-by">{used_by}</td></tr>"#,
        name = e(&r.name),
        names = e(&r.names.join(", ")),
        issuer = e(&r.issuer),
        serial = e(&r.serial),
        not_after = e(&r.not_after),
        left = if r.loaded {
            format!(" ({} days)", r.days_left)
        } else {
            String::new()
        },
        warnings = list(&r.warnings),
        used_by = e(&r.used_by.join(", ")),
    );
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut s = String::from("<ul>");
    for i in items {
        let _ = write!(s, "<li>{}</li>", e(i));
    }
    s.push_str("</ul>");
    s
}

/// One certificate: its facts, "Replace", its backups with "Restore", and "New CSR".
pub fn certificate(row: &Row, backups: &[BackupSummary], viewer: Viewer<'_>, ca: bool) -> String {
    let name = e(&row.name);
    let mut body = format!(r#"<h1>Certificate {name}</h1><table id="certificates">"#);
    body.push_str(r#"<thead><tr><th>Name</th><th>Names</th><th>Issuer</th><th>Serial</th><th>Not after</th><th>Chain served</th><th>Warnings</th><th>Used by</th></tr></thead><tbody>"#);
    table_row(&mut body, row);
    body.push_str("</tbody></table>");
    if let Some(why) = &row.stale {
        let _ = write!(body, r#"<p class="error">Stale: {}</p>"#, e(why));
    }
    let Some(csrf) = viewer.csrf else {
        return layout(&row.name, viewer, ca, &body);
    };
    let csrf_field = hidden(csrf);
    if !row.internal {
        let _ = write!(
            body,
            r#"<section><h2>Replace</h2>
<p class="hint">Upload what your CA sent: the certificate (PEM or DER; it may hold the intermediates and the key), its key unless it is the current one or the one of this page's last CSR, and the intermediates if separate — or a PFX and its password. You see what would change before anything does.</p>
<form id="replace" method="post" action="/console/replace/{name}" enctype="multipart/form-data">{csrf_field}
<label>Certificate <input type="file" name="cert"></label>
<label>Private key <input type="file" name="key"></label>
<label>Intermediates <input type="file" name="chain"></label>
<label>or PFX / PKCS#12 <input type="file" name="pkcs12"></label>
<label>PFX password <input type="password" name="password" autocomplete="off"></label>
<button type="submit">Check (dry run)</button></form></section>"#
        );
    }
    body.push_str(r#"<section id="backups"><h2>Backups</h2>"#);
    if backups.is_empty() {
        body.push_str(
            "<p>No backups yet: each install or restore backs up the files it replaces.</p>",
        );
    } else {
        body.push_str("<table><thead><tr><th>Backup</th><th>Serial</th><th>Not after</th><th>Files</th><th></th></tr></thead><tbody>");
        for b in backups.iter().rev() {
            let id = e(&b.id);
            let _ = write!(
                body,
                r#"<tr data-backup="{id}"><td>{id}</td><td class="serial">{}</td><td>{}</td><td>{}</td><td><form class="restore" method="post" action="/console/restore/{name}">{csrf_field}<input type="hidden" name="backup" value="{id}"><button type="submit">Restore</button></form></td></tr>"#,
                e(&b.serial),
                e(&b.not_after),
                e(&b.files.join(", ")),
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    let _ = write!(
        body,
        r#"<section><h2>New CSR</h2>
<p class="hint">A new private key stays on this appliance (0600, in the state directory); the request downloads, to send to your CA. Upload its answer under Replace.</p>
<form id="csr" method="post" action="/console/csr/{name}">{csrf_field}
<label>Common name <input name="common_name" required value="{cn}"></label>
<label>Other names (DNS or IP, space or comma separated) <input name="sans" value="{sans}"></label>
<label>Key <select name="key_type"><option>ecdsa-p256</option><option>ecdsa-p384</option><option>rsa-2048</option><option>rsa-3072</option><option>rsa-4096</option><option>ed25519</option></select></label>
<label>Organization <input name="organization"></label>
<label>Organizational unit <input name="org_unit"></label>
<label>Locality <input name="locality"></label>
<label>State or province <input name="state"></label>
<label>Country (2 letters) <input name="country" maxlength="2"></label>
<button type="submit">Download CSR</button></form></section>"#,
        cn = e(row.names.first().map(String::as_str).unwrap_or_default()),
        sans = e(&row
            .names
            .iter()
            .skip(1)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")),
    );
    layout(&row.name, viewer, ca, &body)
}

/// What an upload would change, as `certs install --dry-run` says it; the form that
/// installs it when it may be installed.
pub fn dry_run(
    certificate: &str,
    text: &str,
    refused: Option<&str>,
    upload: Option<&str>,
    viewer: Viewer<'_>,
    ca: bool,
) -> String {
    let name = e(certificate);
    let mut body = format!("<h1>Replace {name}: dry run</h1>");
    if !text.is_empty() {
        let _ = write!(body, r#"<pre id="dry-run">{}</pre>"#, e(text));
    }
    if let Some(why) = refused {
        let _ = write!(
            body,
            r#"<p class="error" id="refused">Not installed: nothing was changed.</p><pre>{}</pre>"#,
            e(why)
        );
    }
    if let (Some(upload), Some(csrf)) = (upload, viewer.csrf) {
        let _ = write!(
            body,
            r#"<form id="confirm" method="post" action="/console/install">{}<input type="hidden" name="upload" value="{}"><button type="submit">Install</button></form>"#,
            hidden(csrf),
            e(upload)
        );
    }
    let _ = write!(
        body,
        r#"<p><a href="/certificate/{name}">Back to {name}</a></p>"#
    );
    layout("Dry run", viewer, ca, &body)
}

/// A page that says what went wrong and what to do.
pub fn problem(title: &str, text: &str) -> String {
    layout(
        title,
        Viewer { csrf: None },
        false,
        &format!(
            r#"<h1>{}</h1><p class="error">{}</p><p><a href="/">Back to the certificates</a></p>"#,
            e(title),
            e(text)
        ),
    )
}

//! The certificates page: what an appliance's admin console shows and does, served by the
//! admin listener at `/`. It reads what `/certs` reads and runs the same chores as
//! `gatehouse certs` (install, restore, csr), in the running instance: the same checks, the
//! same backups, the same words.
//!
//! With `[admin] token_file`, the page needs a login with the token ([`session`]) and every
//! form carries the session's CSRF token; without one it is read-only. There is no
//! JavaScript; the stylesheet is embedded, and the `Content-Security-Policy` allows nothing
//! from elsewhere, so the page works on an offline appliance.
//!
//! # Layout
//! - `session`: logins, the cookie, CSRF tokens and the message shown once.
//! - `form`: urlencoded forms, and uploads kept until confirmed.
//! - `page`: the HTML.
//! - `chores`: Replace (dry run, install), Restore, New CSR, Reload, on the chores' code.
//! - `view`: the table's rows, from the served snapshot and the configuration.

mod chores;
mod form;
mod page;
mod session;
mod view;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use self::page::Viewer;
use self::session::{Current, Flash, Sessions};
use super::admin::Control;

/// The stylesheet, embedded in the binary.
const CSS: &str = include_str!("console.css");
/// Allows the page's own stylesheet and forms, and nothing else: no script at all, no frame.
const CSP: &str = "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The page's state on one admin listener.
#[derive(Debug, Default)]
pub struct Console {
    sessions: Sessions,
    pending: form::Pending,
    /// Served over HTTPS (`[admin] certificate`): the cookie is `Secure`.
    tls: bool,
}

/// Who may do what on this request.
enum Access {
    /// No token is configured: the page is read-only.
    ReadOnly,
    LoggedIn(Current),
    /// A token is configured and the request has no valid session.
    NeedsLogin,
}

impl Console {
    /// The page of an admin listener over TLS or not. Uploads an earlier run left
    /// unconfirmed (keys among them) are deleted.
    pub fn new(tls: bool, config: &crate::config::Config) -> Self {
        let _ = std::fs::remove_dir_all(chores::uploads_dir(config));
        Self {
            tls,
            ..Self::default()
        }
    }

    pub fn tls(&self) -> bool {
        self.tls
    }

    fn access(&self, req: &Request<Incoming>, token: Option<&[u8]>) -> Access {
        match token {
            None => Access::ReadOnly,
            Some(token) => match self.sessions.current(req.headers(), token) {
                Some(c) => Access::LoggedIn(c),
                None => Access::NeedsLogin,
            },
        }
    }

    /// Answers a request for the page (any path the API does not take).
    pub async fn handle<C: Control>(
        &self,
        req: Request<Incoming>,
        control: Arc<C>,
        token: Option<&[u8]>,
    ) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        if (req.method(), path.as_str()) == (&Method::GET, "/console/console.css") {
            return with_headers(StatusCode::OK, "text/css; charset=utf-8", CSS);
        }
        if path == "/login" {
            return self.login(req, token).await;
        }
        let current = match self.access(&req, token) {
            Access::NeedsLogin => return redirect("/login", None),
            Access::ReadOnly => None,
            Access::LoggedIn(c) => Some(c),
        };
        if req.method() == Method::GET {
            return match path.as_str() {
                "/" => self.index(&*control, current.as_ref()),
                "/console/ca.pem" => chores::download_ca(&*control),
                _ => match path.strip_prefix("/certificate/") {
                    Some(name) => view::certificate(&*control, name, viewer(current.as_ref())),
                    None => not_found(),
                },
            };
        }
        let Some(current) = current else {
            return html(
                StatusCode::FORBIDDEN,
                page::problem(
                    "Read-only",
                    "this page is read-only without an admin token: set [admin] token_file in the configuration and reload",
                ),
            );
        };
        if req.method() != Method::POST {
            return not_found();
        }
        if let Some(name) = path.strip_prefix("/console/replace/") {
            let name = name.to_owned();
            return chores::replace(self, req, control, &current, &name).await;
        }
        let fields = match form::fields(req.into_body()).await {
            Ok(f) => f,
            Err(e) => {
                return html(
                    StatusCode::BAD_REQUEST,
                    page::problem("Form refused", &e.to_string()),
                );
            }
        };
        if !session::csrf_ok(&current, fields.get("csrf").map(String::as_str)) {
            tracing::warn!("admin console: a form without this session's CSRF token refused");
            return html(
                StatusCode::FORBIDDEN,
                page::problem(
                    "Form refused",
                    "the form is stale or was not sent by this page: open the page again and retry",
                ),
            );
        }
        match path.as_str() {
            "/logout" => {
                self.sessions.close(&current.id);
                redirect("/login", Some(session::set_cookie(None, self.tls)))
            }
            "/console/reload" => chores::reload(self, control, &current).await,
            "/console/install" => chores::install(self, control, &current, &fields).await,
            _ => match (
                path.strip_prefix("/console/restore/"),
                path.strip_prefix("/console/csr/"),
            ) {
                (Some(name), _) => chores::restore(self, control, &current, name, &fields).await,
                (_, Some(name)) => chores::csr(control, name, &fields).await,
                _ => not_found(),
            },
        }
    }

    async fn login(&self, req: Request<Incoming>, token: Option<&[u8]>) -> Response<Full<Bytes>> {
        let Some(expected) = token else {
            // Nothing to log in to: the page is read-only.
            return redirect("/", None);
        };
        if req.method() != Method::POST {
            return html(StatusCode::OK, page::login(None));
        }
        let fields = match form::fields(req.into_body()).await {
            Ok(f) => f,
            Err(e) => return html(StatusCode::BAD_REQUEST, page::login(Some(&e.to_string()))),
        };
        let presented = fields
            .get("token")
            .map(|t| t.trim().as_bytes())
            .unwrap_or_default();
        if aws_lc_rs::constant_time::verify_slices_are_equal(presented, expected).is_err() {
            tracing::warn!("admin console: a login with a wrong token refused");
            return html(
                StatusCode::UNAUTHORIZED,
                page::login(Some(
                    "wrong token: give the contents of the file [admin] token_file names",
                )),
            );
        }
        match self.sessions.open(expected) {
            Some(id) => redirect("/", Some(session::set_cookie(Some(&id), self.tls))),
            None => html(
                StatusCode::SERVICE_UNAVAILABLE,
                page::login(Some("the system's random generator failed; try again")),
            ),
        }
    }

    fn index<C: Control>(&self, control: &C, current: Option<&Current>) -> Response<Full<Bytes>> {
        let flash = current.and_then(|c| self.sessions.take_flash(&c.id));
        let last = control.last_reload().map(|l| {
            let text = match l.report.get("error").and_then(|e| e.as_str()) {
                Some(error) => format!("refused, nothing changed: {error}\n"),
                None => super::client::report_table(&l.report),
            };
            (l.at.to_string(), text)
        });
        let config = control.config();
        let rows = view::rows(control.store(), &config);
        html(
            StatusCode::OK,
            page::index(&rows, last, flash, viewer(current), view::has_ca(&config)),
        )
    }

    fn flash(&self, current: &Current, ok: bool, title: String, text: String) {
        self.sessions
            .set_flash(&current.id, Flash { ok, title, text });
    }
}

fn viewer(current: Option<&Current>) -> Viewer<'_> {
    Viewer {
        csrf: current.map(|c| c.csrf.as_str()),
    }
}

/// A response with the page's security headers.
fn with_headers(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = super::admin::respond(status, content_type, body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn html(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_headers(status, "text/html; charset=utf-8", body)
}

/// 303: after a form, the browser loads `location` with a GET.
fn redirect(location: &'static str, cookie: Option<HeaderValue>) -> Response<Full<Bytes>> {
    let mut resp = with_headers(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    if let Some(c) = cookie {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

fn not_found() -> Response<Full<Bytes>> {
    html(
        StatusCode::NOT_FOUND,
        page::problem("Not found", "no such page; the certificates are at /"),
    )
}

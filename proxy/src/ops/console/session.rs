//! Logins to the certificates page: a session per login with the admin token, named by a
//! random id in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS) that expires; each
//! session has its own CSRF token, which every form posts back, and a message to show once
//! (the outcome of the last install or restore).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cookie::{Cookie, SameSite};
use http::HeaderMap;
use http::header::{self, HeaderValue};

/// How long a login lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// Sessions kept at once; the oldest goes first. A handful of operators need a few each.
const MAX_SESSIONS: usize = 64;
/// The cookie's name.
pub const COOKIE: &str = "gatehouse_session";

/// A message shown once at the top of the page.
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub title: String,
    /// What the chore printed, as the command line prints it.
    pub text: String,
}

#[derive(Debug)]
struct Session {
    /// A digest of the admin token it logged in with: a session ends when the token changes.
    token: [u8; 32],
    csrf: String,
    expires: Instant,
    flash: Option<Flash>,
}

/// The sessions of one admin listener.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// A request's valid session.
#[derive(Debug, Clone)]
pub struct Current {
    pub id: String,
    pub csrf: String,
}

impl Sessions {
    /// A new session, logged in with `token`; its id (for the cookie).
    pub fn open(&self, token: &[u8]) -> Option<String> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let mut all = self.lock();
        let now = Instant::now();
        all.retain(|_, s| s.expires > now);
        if all.len() >= MAX_SESSIONS
            && let Some(oldest) = all
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
        {
            all.remove(&oldest);
        }
        all.insert(
            id.clone(),
            Session {
                token: digest(token),
                csrf,
                expires: now + SESSION_LIFETIME,
                flash: None,
            },
        );
        Some(id)
    }

    /// The session the request's cookie names, while it lasts and `token` is still the one
    /// it logged in with.
    pub fn current(&self, headers: &HeaderMap, token: &[u8]) -> Option<Current> {
        let id = cookie_value(headers)?;
        let all = self.lock();
        let s = all
            .get(&id)
            .filter(|s| s.expires > Instant::now() && s.token == digest(token))?;
        Some(Current {
            csrf: s.csrf.clone(),
            id,
        })
    }

    pub fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    pub fn set_flash(&self, id: &str, flash: Flash) {
        if let Some(s) = self.lock().get_mut(id) {
            s.flash = Some(flash);
        }
    }

    /// The message to show, once.
    pub fn take_flash(&self, id: &str) -> Option<Flash> {
        self.lock().get_mut(id)?.flash.take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `presented` is the session's CSRF token (constant time).
pub fn csrf_ok(current: &Current, presented: Option<&str>) -> bool {
    let presented = presented.unwrap_or_default().as_bytes();
    aws_lc_rs::constant_time::verify_slices_are_equal(presented, current.csrf.as_bytes()).is_ok()
}

/// The `Set-Cookie` that starts (`Some(id)`) or ends (`None`) a session.
pub fn set_cookie(id: Option<&str>, secure: bool) -> HeaderValue {
    let mut c = Cookie::build((COOKIE, id.unwrap_or_default().to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .path("/");
    c = match id {
        Some(_) => c.max_age(cookie::time::Duration::seconds(
            SESSION_LIFETIME.as_secs() as i64
        )),
        None => c.max_age(cookie::time::Duration::ZERO),
    };
    HeaderValue::from_str(&c.build().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("gatehouse_session=; Max-Age=0"))
}

/// The session id the request's `Cookie` headers carry.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

fn digest(token: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// 32 random bytes as hex, from the system's generator: session ids, CSRF tokens, upload
/// ids.
pub(super) fn random_hex() -> Option<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).unwrap(),
        );
        h
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends_when_closed() {
        let sessions = Sessions::default();
        let id = sessions.open(b"token").unwrap();
        let current = sessions
            .current(&with_cookie(&id), b"token")
            .expect("open session");
        assert!(csrf_ok(&current, Some(&current.csrf.clone())));
        assert!(
            !csrf_ok(&current, Some("forged")),
            "a wrong CSRF token fails"
        );
        assert!(!csrf_ok(&current, None), "a missing CSRF token fails");
        assert!(
            sessions
                .current(&with_cookie("guessed"), b"token")
                .is_none()
        );
        assert!(
            sessions.current(&with_cookie(&id), b"rotated").is_none(),
            "a new admin token ends the sessions of the old one"
        );
        sessions.close(&id);
        assert!(sessions.current(&with_cookie(&id), b"token").is_none());
    }

    #[test]
    fn the_cookie_is_http_only_same_site_strict_and_secure_over_https() {
        let c = set_cookie(Some("abc"), true);
        let c = c.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age=3600"] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        let plain = set_cookie(Some("abc"), false);
        assert!(!plain.to_str().unwrap().contains("Secure"));
    }
}

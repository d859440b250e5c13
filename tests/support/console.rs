//! The certificates page as `curl` sees it: a portal behind an admin listener with a
//! token, `curl` with a cookie jar of its own (one browser), and the hidden fields the
//! page's forms carry.

use std::path::{Path, PathBuf};
use std::process::Command;

use gatehouse_tests::upstream::http_upstream;

use super::deploy::{Env, ListenerToml};
use super::process::Gatehouse;
use super::tools::output_text;

pub const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// `curl` with a cookie jar of its own, like one browser.
pub struct Curl {
    pub jar: PathBuf,
    pub base: String,
    /// Extra arguments for every request (`--cacert`, `--resolve`).
    pub extra: Vec<String>,
}

/// A response: status, headers (lower-cased names), body.
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Curl {
    pub fn new(dir: &Path, base: String) -> Self {
        Self {
            jar: dir.join("cookies.txt"),
            base,
            extra: Vec::new(),
        }
    }

    pub fn request(&self, args: &[&str], path: &str) -> Answer {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-D", "-", "-b"])
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(&self.extra)
            .args(args)
            .arg(format!("{}{path}", self.base))
            .output()
            .expect("run curl");
        let text = output_text(&out);
        let mut text = text.as_str();
        // An upload that asked `Expect: 100-continue` has that interim answer first.
        while text.starts_with("HTTP/1.1 100") {
            text = text.split_once("\r\n\r\n").map_or("", |(_, rest)| rest);
        }
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("an HTTP answer: {text}"));
        Answer {
            status,
            headers: head.to_ascii_lowercase(),
            body: body.to_owned(),
        }
    }

    pub fn get(&self, path: &str) -> Answer {
        self.request(&[], path)
    }

    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let fields: Vec<String> = form
            .iter()
            .flat_map(|(k, v)| ["--data-urlencode".to_owned(), format!("{k}={v}")])
            .collect();
        let args: Vec<&str> = fields.iter().map(String::as_str).collect();
        self.request(&args, path)
    }

    pub fn log_in(&self) -> String {
        let answer = self.post("/login", &[("token", TOKEN)]);
        assert_eq!(
            answer.status, 303,
            "the right token logs in: {}",
            answer.body
        );
        csrf(&self.get("/certificate/portal").body)
    }
}

/// The CSRF token the page's forms carry.
pub fn csrf(page: &str) -> String {
    hidden_field(page, "csrf")
}

/// The value of the first hidden field `name` on `page` (the page's own forms write it as
/// `name="NAME" value="…"`).
pub fn hidden_field(page: &str, name: &str) -> String {
    let (_, rest) = page
        .split_once(&format!(r#"name="{name}" value=""#))
        .unwrap_or_else(|| panic!("the page has a form with {name}: {page}"));
    rest.split('"').next().unwrap_or_default().to_owned()
}

/// The portal, with `[admin]` as `admin` (`token_file` is written when it names "token").
pub fn portal(admin: &str) -> (Env, Gatehouse) {
    let mut env = Env::new();
    env.certificate("portal", &["portal.test"]);
    std::fs::write(env.path().join("token"), TOKEN).expect("token");
    let listener = ListenerToml::http(http_upstream("portal")).certificates(&["portal"]);
    let g = Gatehouse::start(&env.config_with(admin, &listener.to_toml()));
    (env, g)
}

pub const WITH_TOKEN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n";

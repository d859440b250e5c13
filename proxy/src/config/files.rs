//! The files a configuration reads once it is loaded: what `watch = true` watches.

use std::path::{Path, PathBuf};

use super::Config;

impl Config {
    /// Every file a reload reads again: the configuration file itself, each certificate's
    /// files and trust anchors, the upstreams' trust stores and client certificates, and
    /// the admin token. Certificates the internal CA issues are Gatehouse's own writing
    /// and are left out.
    pub fn files_read(&self, config_path: &Path) -> Vec<PathBuf> {
        let mut files = vec![config_path.to_owned()];
        for spec in &self.certificates {
            if self.internal.iter().any(|i| i.name == spec.name) {
                continue;
            }
            files.extend(spec.source.paths());
            files.extend(spec.trust_anchors.iter().cloned());
            files.extend(spec.ocsp.iter().cloned());
        }
        files.extend(self.upstream_tls.ca_file.iter().cloned());
        for l in &self.listeners {
            files.extend(l.session_ticket_key_file.iter().cloned());
            if let Some(c) = &l.client_auth {
                files.push(c.ca_file.clone());
                files.extend(c.crl_file.iter().cloned());
            }
            for upstream in l.upstreams() {
                files.extend(upstream.options.ca_file.iter().cloned());
                if let Some((cert, key)) = &upstream.options.client_cert {
                    files.extend([cert.clone(), key.clone()]);
                }
            }
        }
        if let Some(token) = self.admin.as_ref().and_then(|a| a.token_file.as_ref()) {
            files.push(token.clone());
        }
        files.sort();
        files.dedup();
        files
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::Config;

    #[test]
    fn every_file_a_reload_reads_is_watched_and_internal_certificates_are_not() {
        let text = r#"
            state_dir = "state"
            watch = true
            [admin]
            listen = "127.0.0.1:9900"
            token_file = "admin.token"
            [upstream_tls]
            ca_file = "private-roots.pem"
            [[certificate]]
            name = "portal"
            cert = "portal.crt"
            key = "portal.key"
            chain = "chain.pem"
            trust_anchors = "root.pem"
            [[certificate]]
            name = "engine"
            pkcs12 = "engine.pfx"
            password_file = "engine.pass"
            [[certificate]]
            name = "default"
            issuer = "internal"
            [[listener]]
            name = "portal"
            bind = "127.0.0.1:8443"
            certificates = ["portal", "engine", "default"]
            upstream = "https://127.0.0.1:8444"
            upstream_ca_file = "engine-ca.pem"
            upstream_client_cert = "client.crt"
            upstream_client_key = "client.key"
            session_ticket_key_file = "tickets.key"
        "#;
        let path = Path::new("/etc/gatehouse/gatehouse.toml");
        let config = Config::parse(path, text).expect("config");
        let files = config.files_read(path);
        let expected: Vec<PathBuf> = [
            "admin.token",
            "chain.pem",
            "client.crt",
            "client.key",
            "engine-ca.pem",
            "engine.pass",
            "engine.pfx",
            "gatehouse.toml",
            "portal.crt",
            "portal.key",
            "private-roots.pem",
            "root.pem",
            "tickets.key",
        ]
        .iter()
        .map(|f| Path::new("/etc/gatehouse").join(f))
        .collect();
        assert_eq!(files, expected);
        assert!(config.watch);
    }
}

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
        }
        files.extend(self.upstream_tls.ca_file.iter().cloned());
        for l in &self.listeners {
            files.extend(l.session_ticket_key_file.iter().cloned());
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

//! Why Gatehouse could not start.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;

/// Why Gatehouse could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Certificates(#[from] certstore::InitialLoadError),
    #[error(
        "listener \"{listener}\": cannot bind {addr}: {source}; is another program using the port?"
    )]
    Bind {
        listener: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("listener \"{listener}\": {source}")]
    Tls {
        listener: String,
        #[source]
        source: crate::serve::tls::TlsSetupError,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] crate::ops::admin::TokenError),
    #[error("internal CA: {0}")]
    Internal(#[from] certstore::IssueError),
    #[error("cannot start {count} worker threads: {source}")]
    Workers {
        count: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("listener \"{listener}\": {source}")]
    UpstreamTls {
        listener: String,
        #[source]
        source: Box<crate::serve::upstream_tls::UpstreamTlsError>,
    },
}

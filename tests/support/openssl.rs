//! The openssl CLI as the tests run it: in a directory of their own, and as a client that
//! asks for the OCSP staple.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use gatehouse_tests::openssl_fixtures;

use super::tools::output_text;

/// Runs the openssl CLI in `dir`; its output, or the test fails saying what openssl said.
pub fn openssl_in(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new ECDSA P-256 private key in `dir/file`.
pub fn p256_key(dir: &Path, file: &str) {
    openssl_in(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            file,
        ],
    );
}

/// What `openssl s_client` says of a handshake with `addr` for leaf.test, trusting
/// `root`, with `extra` options.
pub fn s_client(addr: SocketAddr, root: &Path, extra: &[&str]) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "leaf.test",
        ])
        .arg("-CAfile")
        .arg(root)
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    output_text(&out)
}

/// What `openssl s_client -status` says of a handshake with the portal.
pub fn status_request(addr: SocketAddr) -> String {
    s_client(addr, &openssl_fixtures().join("root.crt"), &["-status"])
}

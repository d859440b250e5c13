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

/// `openssl ocsp` answering as the openssl fixtures' intermediate (`inter.crt`, `inter.key`
/// copied into its directory), with responses valid a day.
pub const OCSP_AS_INTERMEDIATE: [&str; 8] = [
    "-rsigner",
    "inter.crt",
    "-rkey",
    "inter.key",
    "-CA",
    "inter.crt",
    "-ndays",
    "1",
];

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

/// The serial of the certificate served at `addr` for `server_name`, as `openssl x509
/// -serial` prints it (upper-case hex); with `root`, the chain served must verify to it for
/// that name. `scratch` holds the certificate for openssl.
pub fn served_serial(
    addr: SocketAddr,
    server_name: &str,
    root: Option<&Path>,
    scratch: &Path,
) -> String {
    let mut command = Command::new("openssl");
    command.args([
        "s_client",
        "-connect",
        &addr.to_string(),
        "-servername",
        server_name,
    ]);
    if let Some(root) = root {
        command
            .args([
                "-verify_hostname",
                server_name,
                "-verify_return_error",
                "-CAfile",
            ])
            .arg(root);
    }
    let out = command
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = output_text(&out);
    assert!(
        root.is_none() || text.contains("Verify return code: 0 (ok)"),
        "{server_name} is served a chain that verifies to {root:?}:\n{text}"
    );
    const END: &str = "-----END CERTIFICATE-----";
    let (Some(begin), Some(end)) = (text.find("-----BEGIN CERTIFICATE-----"), text.find(END))
    else {
        panic!("s_client shows the served certificate:\n{text}");
    };
    std::fs::write(scratch.join("served.pem"), &text[begin..end + END.len()]).expect("write");
    openssl_in(scratch, &["x509", "-in", "served.pem", "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_owned()
}

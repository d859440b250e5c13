//! The binary answers `--version` and `--help` (and, being an integration test of this
//! package, makes `cargo test` build the `gatehouse` binary the tests/ package drives).

use std::process::Command;

#[test]
fn version_and_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--version")
        .output()
        .expect("run gatehouse");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("gatehouse "));
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--help")
        .output()
        .expect("run gatehouse");
    let help = String::from_utf8_lossy(&out.stdout);
    for verb in ["run", "check", "demo"] {
        assert!(help.contains(verb), "help lists {verb}: {help}");
    }
}

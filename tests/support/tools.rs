//! Commands the tests need from outside cargo that a developer's machine may lack
//! (`kubernetes-validate`, `systemd-analyze`, `wrk`). CI installs them and sets
//! GATEHOUSE_REQUIRE_TOOLS, which turns a missing one into a failure.

use std::process::{Child, Command, Output};

/// Runs `command` to its end; `None`, with a note, when its program is not installed,
/// unless GATEHOUSE_REQUIRE_TOOLS is set. `install` says how to get it.
pub fn run_tool(command: &mut Command, install: &str) -> Option<Output> {
    command
        .output()
        .map_err(|e| missing(command, install, e))
        .ok()
}

/// [`run_tool`], for a command that runs while the test goes on.
pub fn spawn_tool(command: &mut Command, install: &str) -> Option<Child> {
    command
        .spawn()
        .map_err(|e| missing(command, install, e))
        .ok()
}

fn missing(command: &Command, install: &str, e: std::io::Error) {
    let program = command.get_program().to_string_lossy();
    if std::env::var_os("GATEHOUSE_REQUIRE_TOOLS").is_some() {
        panic!("{program} is required here (GATEHOUSE_REQUIRE_TOOLS is set): {e}");
    }
    eprintln!("{program} is not installed, this check is skipped: {install}");
}

/// What a command printed, stdout then stderr.
pub fn output_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

//! Commands the tests need from outside cargo that a developer's machine may lack
//! (`kubernetes-validate`, `systemd-analyze`). CI installs them and sets
//! GATEHOUSE_REQUIRE_TOOLS, which turns a missing one into a failure.

use std::process::{Command, Output};

/// Runs `command`; `None`, with a note, when its program is not installed, unless
/// GATEHOUSE_REQUIRE_TOOLS is set. `install` says how to get it.
pub fn run_tool(command: &mut Command, install: &str) -> Option<Output> {
    let program = command.get_program().to_string_lossy().into_owned();
    match command.output() {
        Ok(out) => Some(out),
        Err(e) if std::env::var_os("GATEHOUSE_REQUIRE_TOOLS").is_some() => {
            panic!("{program} is required here (GATEHOUSE_REQUIRE_TOOLS is set): {e}")
        }
        Err(_) => {
            eprintln!("{program} is not installed, this check is skipped: {install}");
            None
        }
    }
}

/// What a command printed, stdout then stderr.
pub fn output_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

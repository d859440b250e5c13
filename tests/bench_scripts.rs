//! The load comparison's command line (`benches/load/compare.sh`): a mistyped invocation
//! is refused with a message and exit status 2 before the script installs, builds or
//! starts anything.

use std::path::PathBuf;
use std::process::Command;

fn compare_sh() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benches/load/compare.sh")
}

/// Runs `compare.sh ARGS` and returns its exit code and standard error.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("bash")
        .arg(compare_sh())
        .args(args)
        .output()
        .expect("run bash");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_option_without_its_value_is_refused_with_a_message() {
    for args in [
        &["--only"][..],
        &["--out"],
        &["--keep", "--only"],
        &["--only", ""],
    ] {
        let (code, err) = run(args);
        assert_eq!(
            code,
            Some(2),
            "compare.sh {args:?} must exit 2; stderr: {err}"
        );
        let option = args.iter().find(|a| a.starts_with("--o")).unwrap();
        assert!(
            err.contains(&format!("{option} needs a value")),
            "compare.sh {args:?} must say which option lacks its value, said: {err}"
        );
    }
}

#[test]
fn unknown_measures_and_arguments_are_refused_with_what_is_valid() {
    let (code, err) = run(&["--only", "h2,bogus"]);
    assert_eq!(code, Some(2), "stderr: {err}");
    assert!(
        err.contains("unknown measure \"bogus\"") && err.contains("full_rsa"),
        "an unknown measure is named, with the list of measures: {err}"
    );
    let (code, err) = run(&["--quick", "--only", "h2"]);
    assert_eq!(code, Some(2), "stderr: {err}");
    assert!(err.contains("exclude each other"), "{err}");
    let (code, err) = run(&["--frob"]);
    assert_eq!(code, Some(2), "stderr: {err}");
    assert!(err.contains("unknown argument: --frob"), "{err}");
}

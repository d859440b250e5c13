//! The command lines of the load comparison (`benches/load/compare.sh`), of its profiler
//! (`benches/load/profile.sh`) and of the profile-guided release build
//! (`deploy/build-pgo.sh`): a mistyped invocation is refused with a message and exit
//! status 2 before the script installs, builds or starts anything.

use std::path::PathBuf;
use std::process::Command;

/// `path` is relative to the repository's root.
fn script(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// Runs the script at `path` (from the repository's root) with `args` and returns its exit
/// code and standard error.
fn run_script(path: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("bash")
        .arg(script(path))
        .args(args)
        .output()
        .expect("run bash");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `compare.sh ARGS` and returns its exit code and standard error.
fn run(args: &[&str]) -> (Option<i32>, String) {
    run_script("benches/load/compare.sh", args)
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

#[test]
fn profile_sh_refuses_a_missing_or_foreign_work_dir_and_a_bad_count() {
    let (code, err) = run_script("benches/load/profile.sh", &[]);
    assert_eq!(code, Some(2), "no work dir: exit 2; stderr: {err}");
    assert!(
        err.contains("Usage:"),
        "no work dir: the usage, said: {err}"
    );
    let (code, err) = run_script("benches/load/profile.sh", &["--handshakes"]);
    assert_eq!(code, Some(2), "--handshakes alone: exit 2; stderr: {err}");
    assert!(err.contains("--handshakes WORKDIR"), "{err}");

    let foreign = tempfile::tempdir().expect("temp dir");
    let foreign = foreign.path().to_str().expect("utf-8 temp path");
    let (code, err) = run_script("benches/load/profile.sh", &["--handshakes", foreign]);
    assert_eq!(code, Some(2), "stderr: {err}");
    assert!(
        err.contains("not a work dir of compare.sh") && err.contains("--keep"),
        "a dir compare.sh did not leave is named, with how to get one: {err}"
    );
    let (code, err) = run_script("benches/load/profile.sh", &["--frob", foreign]);
    assert_eq!(code, Some(2), "stderr: {err}");
    assert!(err.contains("unknown option: --frob"), "{err}");

    // A work dir as compare.sh leaves it, as far as the script looks before it starts.
    let work = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(work.path().join("upstream")).expect("mkdir");
    std::fs::write(work.path().join("upstream/nginx.conf"), "").expect("write");
    let work = work.path().to_str().expect("utf-8 temp path");
    for count in ["0", "abc", "-5", "20s"] {
        for mode in [&[][..], &["--handshakes"]] {
            let args = [mode, &[work, count]].concat();
            let (code, err) = run_script("benches/load/profile.sh", &args);
            assert_eq!(code, Some(2), "profile.sh {args:?}: exit 2; stderr: {err}");
            assert!(
                err.contains(&format!("not a count: {count}")),
                "profile.sh {args:?} names the bad count, said: {err}"
            );
        }
    }
}

#[test]
fn build_pgo_sh_refuses_an_unknown_argument_and_out_without_a_file() {
    let (code, err) = run_script("deploy/build-pgo.sh", &["--frob"]);
    assert_eq!(code, Some(2), "stderr: {err}");
    assert!(
        err.contains("unknown argument: --frob") && err.contains("Usage:"),
        "an unknown argument is named, with the usage: {err}"
    );
    for args in [&["--out"][..], &["--out", ""]] {
        let (code, err) = run_script("deploy/build-pgo.sh", args);
        assert_eq!(
            code,
            Some(2),
            "build-pgo.sh {args:?}: exit 2; stderr: {err}"
        );
        assert!(
            err.contains("--out needs a value"),
            "build-pgo.sh {args:?} says --out lacks its value, said: {err}"
        );
    }
}

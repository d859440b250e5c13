//! The load comparison's own logic, driven as a user drives it, without the load: what
//! `compare.sh` refuses before it installs or starts anything, and how `summary.py` turns
//! raw results into the targets table. (The load itself needs nginx, HAProxy and minutes;
//! it is run by hand, see `benches/RESULTS.md`.)

use std::path::PathBuf;
use std::process::{Command, Output};

use gatehouse_tests::{temp_dir, write};

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("load")
        .join(name)
}

/// Bounded: were the refusal ever lost, the script would go on to install and measure.
fn compare(args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["30", "bash"])
        .arg(script("compare.sh"))
        .args(args)
        .output()
        .expect("run compare.sh")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn compare_refuses_an_unknown_measure_naming_the_measures_it_knows() {
    let out = compare(&["--only", "h2,h1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("unknown measure \"h1\"")
            && err.contains(
                "h1_keepalive h1_metrics h2 full_ecdsa full_rsa resumed mib1 p99 idle_memory"
            ),
        "the message names the bad measure and lists the good ones: {err}"
    );
}

#[test]
fn compare_refuses_quick_together_with_only() {
    let out = compare(&["--quick", "--only", "h2"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--quick and --only exclude each other"),
        "{}",
        stderr(&out)
    );
}

/// One line of compare.sh's results.tsv: measure, proxy, round, value, operations,
/// errors, CPU seconds, other processes' CPU seconds, system CPU seconds.
fn run(measure: &str, proxy: &str, round: u32, value: f64, cpu_us_per_op: f64) -> String {
    let ops = 1_000_000u64;
    let cpu = cpu_us_per_op * ops as f64 / 1e6;
    format!(
        "{measure}\t{proxy}\t{round}\t{value}\t{ops}\t0\t{cpu}\t0.01\t{}\n",
        cpu / 2.0
    )
}

fn summary(tsv: String) -> String {
    let dir = temp_dir();
    let results = write(dir.path(), "results.tsv", tsv);
    let out = Command::new("python3")
        .arg(script("summary.py"))
        .arg(&results)
        .args(["3", "4", "10000", "5000", "0.5"])
        .output()
        .expect("run summary.py (python3)");
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn summary_gives_each_target_its_ratio_per_round_beside_the_ratio_of_medians() {
    let mut tsv = String::new();
    // HTTP/2, three rounds. CPU µs per request: Gatehouse 20, 18, 30; nginx 25 each
    // round; HAProxy 19, 20, 24. Medians: 20 against the better anchor's 20, a pass at
    // 1.00. Per round, against the better anchor of that round: 20/19, 18/20, 30/24 =
    // 1.05, 0.90, 1.25: one round of three passes.
    // req/s: Gatehouse 100, 110, 90; nginx 95 each; HAProxy 105, 100, 80. Medians 100
    // against 100; per round 0.95, 1.10, 0.95.
    for (round, g, n, h) in [
        (1, (100.0, 20.0), (95.0, 25.0), (105.0, 19.0)),
        (2, (110.0, 18.0), (95.0, 25.0), (100.0, 20.0)),
        (3, (90.0, 30.0), (95.0, 25.0), (80.0, 24.0)),
    ] {
        tsv += &run("h2", "gatehouse", round, g.0, g.1);
        tsv += &run("h2", "nginx", round, n.0, n.1);
        tsv += &run("h2", "haproxy", round, h.0, h.1);
    }
    // RSA, one round: 754.2 against 1,000 µs is 0.7542, which two decimals would print
    // as the limit it misses.
    tsv += &run("full_rsa", "gatehouse", 1, 1000.0, 754.2);
    tsv += &run("full_rsa", "nginx", 1, 900.0, 1000.0);

    let summary = summary(tsv);
    for row in [
        "| CPU per keep-alive request, HTTP/2 ≤ 1.0× | 1.00 | pass | 1.05 (0.90–1.25) | 1 of 3 |",
        "| requests/s, HTTP/2 ≥ 1.0× | 1.00 | pass | 0.95 (0.95–1.10) | 1 of 3 |",
        "| CPU per full handshake, RSA ≤ 0.75× | 0.754 | MISS | 0.754 (0.754–0.754) | 0 of 1 |",
        "| CPU per full handshake, ECDSA ≤ 0.6× | – | not measured | – | – |",
        "| memory per idle TLS connection after one request ≤ 0.7× | – | not measured | – | – |",
    ] {
        assert!(
            summary.contains(row),
            "expected the row\n{row}\nin\n{summary}"
        );
    }
    assert!(
        !summary.contains("load tool"),
        "results without the load tool's and the upstream's CPU get no table of them: {summary}"
    );
}

#[test]
fn summary_adds_the_load_tools_and_the_upstreams_cpu_to_the_proxys_when_recorded() {
    // Keep-alive HTTP/1.1, one round, a million requests each; µs per request of the
    // proxy, the load tool and the upstream. The proxy's CPU and system CPU columns are
    // as `run` writes them, the last two columns are the tool's and the upstream's
    // seconds.
    let mut tsv = String::new();
    for (proxy, own, tool, upstream) in [
        ("gatehouse", 20.0, 15.0, 10.0),
        ("nginx", 25.0, 14.0, 11.0),
        ("haproxy", 28.0, 16.0, 10.0),
    ] {
        let line = run("h1_keepalive", proxy, 1, 40_000.0, own);
        tsv += &format!("{}\t{tool}\t{upstream}\n", line.trim_end());
    }
    let summary = summary(tsv);
    let row = "| (1) keep-alive HTTP/1.1 (wrk -c32) | 15.0 / 14.0 / 16.0 | 10.0 / 11.0 / 10.0 | 45.0 / 50.0 / 54.0 |";
    assert!(
        summary.contains(row),
        "the load tool's, the upstream's and the sum with the proxy's CPU per request, for each proxy: expected\n{row}\nin\n{summary}"
    );
}

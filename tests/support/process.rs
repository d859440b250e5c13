//! The real `gatehouse` binary (from cargo, `CARGO_BIN_EXE_gatehouse`) as a child process: started on a config whose listeners bind
//! `127.0.0.1:0`, with the bound addresses read from its log, signalled with `kill`, and
//! killed when dropped.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `gatehouse` binary, as cargo built it for this package's integration tests.
pub fn gatehouse_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gatehouse"))
}

/// Runs `gatehouse ARGS…` to completion (bounded by the command's own work).
pub fn gatehouse(args: &[&str]) -> std::process::Output {
    Command::new(gatehouse_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run gatehouse")
}

/// A running `gatehouse` process.
pub struct Gatehouse {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    pub addrs: HashMap<String, SocketAddr>,
    /// The admin API's address, when it is on.
    pub admin: Option<SocketAddr>,
}

/// How long the binary may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

impl Gatehouse {
    /// Runs `gatehouse run --config PATH` and waits until it says it is ready.
    pub fn start(config: &Path) -> Self {
        Self::start_args(&["run", "--config", &config.display().to_string()])
    }

    pub fn start_args(args: &[&str]) -> Self {
        Self::start_env(args, &[])
    }

    /// Starts with extra environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(
            Command::new(gatehouse_bin())
                .args(args)
                .envs(env.iter().copied()),
        )
    }

    /// Starts `gatehouse ARGS` under `wrapper` (a command that runs the rest of its
    /// arguments, such as `prlimit --nofile=N`).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Self {
        let (program, first) = wrapper.split_first().expect("a wrapper command");
        Self::spawn(
            Command::new(program)
                .args(first)
                .arg(gatehouse_bin())
                .args(args),
        )
    }

    /// Starts `gatehouse ARGS` the way systemd starts a socket-activated service: `socket`
    /// is its fd 3, with `LISTEN_FDS=1` and `LISTEN_PID` its own pid (a shell puts the fd
    /// in place and then becomes gatehouse, keeping its pid).
    pub fn start_activated(socket: &std::net::TcpListener, args: &[&str]) -> Self {
        let fd = std::os::fd::OwnedFd::from(socket.try_clone().expect("a handle of the socket"));
        Self::spawn_with(
            Command::new("bash")
                .arg("-c")
                .arg("exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec \"$@\"")
                .arg("socket-activated")
                .arg(gatehouse_bin())
                .args(args),
            Stdio::from(fd),
        )
    }

    fn spawn(command: &mut Command) -> Self {
        Self::spawn_with(command, Stdio::null())
    }

    fn spawn_with(command: &mut Command, stdin: Stdio) -> Self {
        if !command.get_envs().any(|(k, _)| k == "GATEHOUSE_LOG") {
            command.env("GATEHOUSE_LOG", "info");
        }
        let mut child = command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn gatehouse");
        let log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().expect("stderr")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().expect("stdout")),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().expect("log lock").push(line);
                }
            });
        }
        let mut g = Self {
            child,
            log,
            addrs: HashMap::new(),
            admin: None,
        };
        let ready = g.wait_for_log(
            |l| l.contains("ready") || l.contains("Press Ctrl-C"),
            START_TIMEOUT,
        );
        assert!(
            ready.is_some(),
            "gatehouse did not start:\n{}",
            g.log_text()
        );
        for line in g.log_lines() {
            let json: Option<serde_json::Value> = serde_json::from_str(&line).ok();
            let field = |key: &str| match &json {
                // log_format = "json": {"fields": {"message": ..., "addr": ...}}
                Some(j) => j["fields"][key.trim_end_matches('=')]
                    .as_str()
                    .map(str::to_owned),
                None => line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .map(|v| v.trim_matches('"').to_owned()),
            };
            let message = match &json {
                Some(j) => j["fields"]["message"].as_str().unwrap_or("").to_owned(),
                None => line.clone(),
            };
            if message.contains("admin API listening") {
                g.admin = field("addr=").and_then(|a| a.parse().ok());
            } else if (message.contains(" listening ") || message == "listening")
                && let (Some(name), Some(addr)) = (field("listener="), field("addr="))
            {
                g.addrs.insert(name, addr.parse().expect("listener addr"));
            }
        }
        g
    }

    /// `http://ADMIN` + `path`.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self
            .admin
            .unwrap_or_else(|| panic!("admin API not in log:\n{}", self.log_text()));
        format!("http://{admin}{path}")
    }

    pub fn addr(&self, listener: &str) -> SocketAddr {
        *self
            .addrs
            .get(listener)
            .unwrap_or_else(|| panic!("listener {listener} not in log:\n{}", self.log_text()))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// How many lines of the log contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log_lines().iter().filter(|l| l.contains(text)).count()
    }

    /// The value of one series of the admin API's `/metrics`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let out = Command::new("curl")
            .args(["-sS", &self.admin_url("/metrics")])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits (bounded) until one series of `/metrics` has a value `pred` accepts, returning
    /// it: what a connection's end records can land after its client saw the end.
    pub fn wait_for_metric(
        &self,
        series: &str,
        pred: impl Fn(f64) -> bool,
        timeout: Duration,
    ) -> Option<f64> {
        poll_until(timeout, || self.metric(series).filter(|v| pred(*v)))
    }

    pub fn log_text(&self) -> String {
        self.log_lines().join("\n")
    }

    /// Waits (bounded) for a log line matching `pred`, returning it.
    pub fn wait_for_log(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        poll_until(timeout, || self.log_lines().into_iter().find(|l| pred(l)))
    }

    /// Log lines after the first `skip`.
    pub fn log_since(&self, skip: usize) -> Vec<String> {
        self.log_lines().into_iter().skip(skip).collect()
    }

    /// Sends a signal by name (`HUP`, `TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        use nix::sys::signal::{Signal, kill};
        let signal = match name {
            "HUP" => Signal::SIGHUP,
            "TERM" => Signal::SIGTERM,
            "INT" => Signal::SIGINT,
            other => panic!("no such signal in these tests: {other}"),
        };
        let pid = i32::try_from(self.pid()).expect("pid fits i32");
        kill(nix::unistd::Pid::from_raw(pid), signal).expect("send signal");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, || self.child.try_wait().ok().flatten())
    }

    /// Peak resident memory (VmHWM) in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmHWM")
    }

    /// Proportional set size in KiB (the memory it holds, shared pages split), from /proc.
    pub fn pss_kib(&self) -> u64 {
        let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid()))
            .expect("proc smaps_rollup");
        rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("Pss")
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Calls `probe` every 20 ms until it finds something or `timeout` has passed.
pub fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(found) = probe() {
            return Some(found);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

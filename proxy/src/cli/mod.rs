//! The `gatehouse` command line: the arguments, and the commands that call into the library.
//!
//! # Layout
//! - `run`: serve until SIGTERM/SIGINT, reload on SIGHUP.
//! - `certs`: the arguments of the certificate chores ([`crate::certs`]).
//! - `check`: load everything as `run` would and report (like `nginx -t`).
//! - `reload`: ask the running instance to reload and print the report.
//! - `demo`: a throwaway CA, three upstreams and Gatehouse in front of them.

mod certs;
mod check;
mod demo;
mod reload;
mod run;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::{Config, LogFormat};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "TLS-terminating reverse proxy and certificate manager"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configured listeners. SIGHUP reloads certificates; SIGTERM drains and exits.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Ask the running instance to reload (admin API, else SIGHUP via pid_file); print the
    /// report; exit 1 if any certificate kept its previous version.
    Reload {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Certificate chores: inspect, list, csr, install, backups, restore, export-ca.
    Certs {
        #[command(subcommand)]
        command: certs::CertsCommand,
    },
    /// Load everything as `run` would and report; exit 1 if `run` would not start.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run on an embedded default: a throwaway CA, three upstreams, SNI routing.
    Demo {
        /// Address to listen on.
        #[arg(long, default_value = demo::DEFAULT_DEMO_BIND)]
        bind: SocketAddr,
        /// Where to put the demo's CA, certificates and config (default: a new temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat) {
    let wanted = std::env::var("GATEHOUSE_LOG").unwrap_or_else(|_| "info".into());
    // h2 warns once per connection a client floods with resets, rustls once per handshake
    // a client gets slightly wrong (an IP address as SNI, which wrk and scripts send):
    // lines any client can make Gatehouse write by the thousand. Gatehouse says what
    // matters itself, rate limited (serve::warnings); the crates' own lines show only when
    // the operator names them in GATEHOUSE_LOG.
    let mut directives = wanted;
    for quiet in ["h2", "rustls"] {
        if !directives.contains(quiet) {
            directives.push_str(&format!(",{quiet}=error"));
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,h2=error,rustls=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// The main thread's event loop: signals, the admin API, reloads and the CLI's own work.
/// Connections are served by the worker threads (`proxy::workers`).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Parses the command line and runs the command; exits the process with the command's
/// exit code where it has one.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => {
            // The log format comes from the file; `run` loads it again and reports problems.
            let format = Config::load(&config)
                .map(|c| c.log_format)
                .unwrap_or(LogFormat::Text);
            init_logging(format);
            // Taken while the process has one thread: it clears LISTEN_FDS/LISTEN_PID.
            let inherited = crate::serve::sockets::Inherited::from_env();
            runtime()?.block_on(run::run(&config, inherited))
        }
        Command::Reload { config } => {
            std::process::exit(runtime()?.block_on(reload::reload(&config)))
        }
        Command::Check { config } => std::process::exit(check::check(&config)),
        Command::Certs { command } => std::process::exit(certs::run(command)),
        Command::Demo { bind, dir } => {
            init_logging(LogFormat::Text);
            runtime()?.block_on(demo::demo(bind, dir))
        }
    }
}

//! `gatehouse certs …`: the arguments of the certificate chores; the chores are in
//! [`crate::certs`].

use std::path::PathBuf;

use clap::Subcommand;

use crate::certs::{self, csr::CsrArgs, install::InstallArgs};

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Show every certificate in PEM, DER or PKCS#12 files, and the chain they make.
    Inspect {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Password file for PKCS#12 files.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// The configured certificates as a table.
    List {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Make a new private key and a certificate signing request (CSR) to send to a CA.
    Csr(CsrArgs),
    /// Check new certificate material, back up the current files, install, reload.
    Install(InstallArgs),
    /// List the backups of a certificate.
    Backups {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Put a backup back (the newest unless --backup), after backing up the current files.
    Restore {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        backup: Option<String>,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Put back a default certificate from the internal CA for a certificate's names
    /// (after backing up its files); the config is not changed.
    Reset {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        name: String,
        /// Show what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the internal CA certificate (PEM), to import into browsers and trust stores.
    ExportCa {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The internal CA.
    #[command(subcommand)]
    Ca(CaCommand),
}

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Make a new internal CA and reissue every certificate the old one issued; the old
    /// CA is kept, and `export-ca` prints both during the transition.
    Rotate {
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Runs a `certs` subcommand; returns the exit code.
pub fn run(command: CertsCommand) -> i32 {
    certs::finish(match command {
        CertsCommand::Inspect {
            files,
            password_file,
        } => certs::inspect(&files, password_file.as_deref()),
        CertsCommand::List { config } => certs::list(&config),
        CertsCommand::Csr(args) => certs::csr::csr(&args),
        CertsCommand::Install(args) => certs::install::install(&args),
        CertsCommand::Backups { config, name } => certs::backups(&config, &name),
        CertsCommand::Restore {
            config,
            name,
            backup,
            dry_run,
        } => certs::restore(&config, &name, backup.as_deref(), dry_run),
        CertsCommand::Reset {
            config,
            name,
            dry_run,
        } => certs::reset(&config, &name, dry_run),
        CertsCommand::ExportCa { config } => certs::export_ca(&config),
        CertsCommand::Ca(CaCommand::Rotate { config }) => certs::rotate_ca(&config),
    })
}

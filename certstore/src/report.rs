//! What a load or reload did, certificate by certificate: the report logged, answered by
//! the admin API and returned to the command line.

use std::fmt;

use crate::cert::{Completion, LoadedCert};
use crate::error::{LoadError, Warning};
use crate::time::Timestamp;

/// A certificate's identity across a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub serial: String,
    pub not_after: Timestamp,
}

impl Version {
    pub(crate) fn of(cert: &LoadedCert) -> Self {
        Self {
            serial: cert.leaf().serial.clone(),
            not_after: cert.leaf().not_after,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "serial {} expiring {}", self.serial, self.not_after)
    }
}

/// What a reload did to one certificate.
#[non_exhaustive]
#[derive(Debug)]
pub enum Outcome {
    Added(Version),
    Updated {
        before: Version,
        after: Version,
    },
    Unchanged(Version),
    /// The new material failed; the previous version keeps serving.
    KeptPrevious {
        serving: Version,
        error: LoadError,
    },
    /// The files failed at start (or for a certificate new to the config), and the last
    /// version that loaded, kept in the last-good directory, serves instead.
    LastKnownGood {
        serving: Version,
        error: LoadError,
    },
    /// A new certificate failed and there is nothing to keep.
    Failed(LoadError),
    Removed(Version),
}

impl Outcome {
    /// Short name, for logs, JSON and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Added(_) => "added",
            Self::Updated { .. } => "updated",
            Self::Unchanged(_) => "unchanged",
            Self::KeptPrevious { .. } => "kept_previous",
            Self::LastKnownGood { .. } => "last_known_good",
            Self::Failed(_) => "failed",
            Self::Removed(_) => "removed",
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::KeptPrevious { .. } | Self::LastKnownGood { .. } | Self::Failed(_)
        )
    }

    /// The version served, if any.
    pub fn serving(&self) -> Option<&Version> {
        match self {
            Self::Added(v) | Self::Unchanged(v) => Some(v),
            Self::Updated { after, .. } => Some(after),
            Self::KeptPrevious { serving, .. } | Self::LastKnownGood { serving, .. } => {
                Some(serving)
            }
            Self::Failed(_) | Self::Removed(_) => None,
        }
    }

    pub fn error(&self) -> Option<&LoadError> {
        match self {
            Self::KeptPrevious { error, .. }
            | Self::LastKnownGood { error, .. }
            | Self::Failed(error) => Some(error),
            _ => None,
        }
    }
}

/// One row of a [`ReloadReport`].
#[derive(Debug)]
pub struct ReportEntry {
    pub name: String,
    pub outcome: Outcome,
    /// Warnings of the material just read (empty when it failed or was removed).
    pub warnings: Vec<Warning>,
    /// Intermediates the files lacked, taken from the pool.
    pub completed: Vec<Completion>,
}

impl fmt::Display for ReportEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate \"{}\": ", self.name)?;
        match &self.outcome {
            Outcome::Added(v) => write!(f, "added ({v})")?,
            Outcome::Updated { before, after } => write!(f, "updated ({before} -> {after})")?,
            Outcome::Unchanged(v) => write!(f, "unchanged ({v})")?,
            Outcome::KeptPrevious { serving, error } => {
                write!(f, "kept previous ({serving}): {error}")?
            }
            Outcome::LastKnownGood { serving, error } => write!(
                f,
                "serving the last known good version ({serving}) because the files fail: {error}"
            )?,
            Outcome::Failed(error) => write!(f, "failed: {error}")?,
            Outcome::Removed(v) => write!(f, "removed (was {v})")?,
        }
        for c in &self.completed {
            write!(f, "; {c}")?;
        }
        for w in &self.warnings {
            write!(f, "; warning: {w}")?;
        }
        Ok(())
    }
}

/// What a load or reload did, certificate by certificate.
#[derive(Debug)]
pub struct ReloadReport {
    pub entries: Vec<ReportEntry>,
    /// Generation of the snapshot this reload published.
    pub generation: u64,
}

impl ReloadReport {
    /// True when some certificate serves nothing (its files failed and no earlier version
    /// was there to keep): what stops a start.
    pub fn has_unserved(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e.outcome, Outcome::Failed(_)))
    }

    /// True when no certificate failed.
    pub fn is_clean(&self) -> bool {
        !self.entries.iter().any(|e| e.outcome.is_failure())
    }

    pub fn entry(&self, name: &str) -> Option<&ReportEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The first load failed: nothing is served. Every problem is in the report.
#[derive(Debug, thiserror::Error)]
#[error("{} certificate(s) failed to load:\n{}", failed_count(.report), failures(.report))]
pub struct InitialLoadError {
    pub report: ReloadReport,
}

fn failed_count(report: &ReloadReport) -> usize {
    report
        .entries
        .iter()
        .filter(|e| e.outcome.is_failure())
        .count()
}

fn failures(report: &ReloadReport) -> String {
    let lines: Vec<String> = report
        .entries
        .iter()
        .filter(|e| e.outcome.is_failure())
        .map(|e| format!("  {e}"))
        .collect();
    lines.join("\n")
}

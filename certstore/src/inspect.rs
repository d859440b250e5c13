//! What `certs inspect` shows of any file: every certificate in it, and what the store
//! would make of it as a chain — with the same parsing, chain and validation code.

use std::fmt;

use crate::cert::provider;
use crate::chain::{self, Parsed};
use crate::error::{LoadError, Warning};
use crate::info::CertInfo;
use crate::parse::Bundle;
use crate::time::Timestamp;
use crate::validate;

/// What a bundle would become.
#[derive(Debug)]
pub struct Inspection {
    /// Every distinct certificate, in file order.
    pub certs: Vec<CertInfo>,
    /// Private keys found (never shown, only counted).
    pub keys: usize,
    /// Whether a key matches a certificate (`None` when the bundle has no key).
    pub key_matches: Option<bool>,
    /// The chain as it would be served, and what was repaired on the way.
    pub verdict: Option<Verdict>,
}

/// The chain verdict for a bundle.
#[derive(Debug)]
pub struct Verdict {
    /// Subjects in serving order, leaf first.
    pub served: Vec<String>,
    pub warnings: Vec<Warning>,
    /// Why the store would refuse it, if it would.
    pub refusal: Option<LoadError>,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let intermediates = self.served.len().saturating_sub(1);
        write!(
            f,
            "leaf, {intermediates} intermediate{}",
            if intermediates == 1 { "" } else { "s" }
        )?;
        for w in &self.warnings {
            match w {
                Warning::DroppedRoot { .. } => write!(f, ", root dropped")?,
                Warning::Reordered => write!(f, "; out of order: will be reordered")?,
                Warning::IncompleteChain { missing_issuer } => {
                    write!(f, "; incomplete: issuer \"{missing_issuer}\" missing")?
                }
                Warning::DroppedDuplicate { subject } => {
                    write!(f, "; duplicate \"{subject}\" dropped")?
                }
                Warning::DroppedUnrelated { subject } => {
                    write!(f, "; unrelated \"{subject}\" dropped")?
                }
                other => write!(f, "; {other}")?,
            }
        }
        match &self.refusal {
            Some(e) => write!(f, "; would be refused: {e}"),
            None => Ok(()),
        }
    }
}

/// Inspects a bundle as the store would load it, at `now`.
pub fn inspect(bundle: &Bundle, now: Timestamp) -> Result<Inspection, LoadError> {
    let mut warnings = Vec::new();
    let certs = chain::dedup(&bundle.certs, &mut warnings)?;
    let infos = certs.iter().map(CertInfo::of).collect();
    let (leaf, key_matches) = if bundle.keys.is_empty() {
        (chain::guess_leaf(&certs), None)
    } else {
        match chain::match_key(bundle, &certs, provider()) {
            Ok(pair) => (Some(pair.leaf), Some(true)),
            Err(_) => (chain::guess_leaf(&certs), Some(false)),
        }
    };
    let verdict = leaf.map(|leaf| {
        let ordered = chain::order(&certs, leaf, certs.len());
        let served: Vec<&Parsed<'_>> = ordered.path.iter().map(|&i| &certs[i]).collect();
        let mut all = warnings.clone();
        all.extend(ordered.warnings);
        let refusal = match validate::check_served(&served, now) {
            Ok(leaf_warnings) => {
                all.extend(leaf_warnings);
                None
            }
            Err(e) => Some(e),
        };
        Verdict {
            served: served.iter().map(|p| p.subject()).collect(),
            warnings: all,
            refusal,
        }
    });
    Ok(Inspection {
        certs: infos,
        keys: bundle.keys.len(),
        key_matches,
        verdict,
    })
}

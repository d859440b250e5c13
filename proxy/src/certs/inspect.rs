//! `gatehouse certs inspect`: what any certificate file holds, read as the store reads it.

use std::path::{Path, PathBuf};

use certstore::{Bundle, CertInfo, Timestamp, read_file, read_password};

use super::Outcome;
use crate::exit;

fn describe(info: &CertInfo, now: Timestamp, indent: &str) -> String {
    let names = info.names();
    format!(
        "{indent}subject:    {}\n{indent}names:      {}\n{indent}issuer:     {}\n{indent}serial:     {}\n{indent}valid:      {} to {} ({} days left)\n{indent}key:        {}\n{indent}signature:  {}\n{indent}sha256:     {}\n",
        info.subject,
        if names.is_empty() {
            "-".into()
        } else {
            names.join(", ")
        },
        info.issuer,
        info.serial,
        info.not_before,
        info.not_after,
        info.days_left(now),
        info.key,
        info.signature_algorithm,
        info.fingerprint_sha256,
    )
}

/// `certs inspect FILE…`: every certificate in the files, whether a key matches, and the
/// chain they make; exit 1 when nothing could be served from them.
pub fn inspect(files: &[PathBuf], password_file: Option<&Path>) -> Outcome {
    let password = password_file.map(read_password).transpose()?;
    let now = Timestamp::now();
    let mut all = Bundle::default();
    for file in files {
        let bytes = read_file(file)?;
        let bundle = certstore::parse_any(file, &bytes, password.as_deref())?;
        all.certs.extend(bundle.certs);
        all.keys.extend(bundle.keys);
    }
    let inspection = certstore::inspect(&all, now)?;
    let mut seen = Vec::new();
    for (i, (info, sourced)) in inspection
        .certs
        .iter()
        .zip(all.certs.iter().filter(|c| {
            let new = !seen.contains(&c.der);
            if new {
                seen.push(c.der.clone());
            }
            new
        }))
        .enumerate()
    {
        let role = if info.self_signed {
            "self-signed root"
        } else if info.is_ca {
            "CA"
        } else {
            "end entity"
        };
        println!(
            "certificate {} ({role}, from {}):",
            i + 1,
            sourced.path.display()
        );
        print!("{}", describe(info, now, "  "));
    }
    match inspection.key_matches {
        Some(true) => println!(
            "private key: {} found, matches the leaf (not shown)",
            inspection.keys
        ),
        Some(false) => println!(
            "private key: {} found, matches no certificate here",
            inspection.keys
        ),
        None => println!("private key: none in these files"),
    }
    match &inspection.verdict {
        Some(v) => {
            println!("chain: {v}");
            Ok(if v.refusal.is_some() {
                exit::PROBLEMS
            } else {
                exit::OK
            })
        }
        None => {
            println!("chain: no certificate to serve");
            Ok(exit::PROBLEMS)
        }
    }
}

//! Plain-text tables: columns padded to their widest cell.

use certstore::{LoadedCert, Timestamp};

/// Renders `rows` under `header`, two spaces between columns.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths.get(i).copied().unwrap_or(0)))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// The columns `check` and `certs list` both start with.
pub const IDENTITY_HEADER: [&str; 5] = ["NAME", "NAMES", "ISSUER", "NOT AFTER", "DAYS LEFT"];

/// The values of [`IDENTITY_HEADER`] for `c`.
pub fn identity_columns(c: &LoadedCert, now: Timestamp) -> Vec<String> {
    let leaf = c.leaf();
    vec![
        c.name.clone(),
        leaf.names().join(","),
        leaf.issuer.clone(),
        leaf.not_after.to_string(),
        leaf.days_left(now).to_string(),
    ]
}

/// The certificate table `check` prints.
pub fn certificate_table<'a>(
    certs: impl Iterator<Item = &'a LoadedCert>,
    now: Timestamp,
) -> String {
    let rows: Vec<Vec<String>> = certs
        .map(|c| {
            let warnings: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
            let mut row = identity_columns(c, now);
            row.push(c.chain.len().to_string());
            row.push(if warnings.is_empty() {
                "-".into()
            } else {
                warnings.join("; ")
            });
            row
        })
        .collect();
    render(
        &[&IDENTITY_HEADER[..], &["CHAIN", "WARNINGS"]].concat(),
        &rows,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn pads_columns() {
        let t = super::render(&["a", "bb"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "a     bb\nlong  x\n");
    }
}

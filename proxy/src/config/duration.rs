//! Durations in the configuration file: a whole number of seconds (`30`), or a number with
//! a unit (`"500ms"`, `"30s"`, `"5m"`, `"1h"`).

use std::time::Duration;

use serde::Deserialize;

/// A duration as written, checked by [`RawDuration::check`].
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl RawDuration {
    /// The duration, or a problem naming `key` (a zero duration is one too: every duration
    /// in the file bounds a wait).
    pub fn check(&self, what: &str, key: &str, problems: &mut Vec<String>) -> Option<Duration> {
        let parsed = match self {
            Self::Seconds(s) => Some(Duration::from_secs(*s)),
            Self::Text(t) => parse(t),
        };
        match parsed {
            Some(d) if !d.is_zero() => Some(d),
            Some(_) => {
                problems.push(format!(
                    "{what}{key} = {} is zero; give a duration above 0",
                    self.as_written()
                ));
                None
            }
            None => {
                problems.push(format!(
                    "{what}{key} = {} is not a duration; write seconds (30) or a number with ms, s, m or h (\"500ms\", \"30s\", \"5m\")",
                    self.as_written()
                ));
                None
            }
        }
    }

    fn as_written(&self) -> String {
        match self {
            Self::Seconds(s) => s.to_string(),
            Self::Text(t) => format!("\"{t}\""),
        }
    }
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"`: whole numbers with a unit.
fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let per_unit = match unit.trim() {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(per_unit).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: RawDuration) -> (Option<Duration>, Vec<String>) {
        let mut problems = Vec::new();
        let d = raw.check("listener \"web\": ", "idle_timeout", &mut problems);
        (d, problems)
    }

    #[test]
    fn seconds_and_numbers_with_a_unit_are_durations() {
        for (raw, expected) in [
            (RawDuration::Seconds(30), Duration::from_secs(30)),
            (
                RawDuration::Text("500ms".into()),
                Duration::from_millis(500),
            ),
            (RawDuration::Text("30s".into()), Duration::from_secs(30)),
            (RawDuration::Text("5m".into()), Duration::from_secs(300)),
            (RawDuration::Text("1h".into()), Duration::from_secs(3600)),
        ] {
            assert_eq!(check(raw.clone()), (Some(expected), vec![]), "{raw:?}");
        }
    }

    #[test]
    fn zero_and_unknown_units_are_problems_that_name_the_key() {
        let (d, problems) = check(RawDuration::Seconds(0));
        assert_eq!(d, None);
        assert_eq!(
            problems,
            ["listener \"web\": idle_timeout = 0 is zero; give a duration above 0"]
        );
        for bad in ["5 minutes", "1.5s", "s", "-3s", "10d", ""] {
            let (d, problems) = check(RawDuration::Text(bad.into()));
            assert_eq!(d, None, "{bad}");
            assert!(
                problems[0].contains(&format!("idle_timeout = \"{bad}\" is not a duration")),
                "{problems:?}"
            );
        }
    }
}

//! Points in time as certificates see them: whole seconds since the Unix epoch, shown in RFC 3339.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Seconds since the Unix epoch (UTC). Certificates have second precision, so this is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

const SECONDS_PER_DAY: i64 = 86_400;

impl Timestamp {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    pub fn unix_seconds(self) -> i64 {
        self.0
    }

    /// Whole days from `self` until `later` (negative when `later` is in the past), rounded down.
    pub fn days_until(self, later: Timestamp) -> i64 {
        (later.0 - self.0).div_euclid(SECONDS_PER_DAY)
    }

    pub fn plus_days(self, days: i64) -> Self {
        Self(self.0.saturating_add(days.saturating_mul(SECONDS_PER_DAY)))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            Err(e) => Self(-i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX)),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(s) => f.write_str(&s),
            None => write!(f, "@{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_800_000_000).to_string(), "2027-01-15T08:00:00Z");
    }

    #[test]
    fn days_round_down_both_ways() {
        let t = Timestamp(1_000_000);
        assert_eq!(t.days_until(t.plus_days(3)), 3);
        assert_eq!(t.days_until(Timestamp(t.0 + SECONDS_PER_DAY - 1)), 0);
        assert_eq!(t.days_until(Timestamp(t.0 - 1)), -1);
    }
}

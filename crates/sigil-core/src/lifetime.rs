//! Certificate lifetimes and human-readable durations such as `15m` or `24h`.

use std::time::Duration;

use crate::CoreError;

/// The lifetime of an agent's X.509-SVIDs: 15 minutes by default, 1 minute to 24 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SvidLifetime(Duration);

impl SvidLifetime {
    /// Shortest lifetime an agent may be given.
    pub const MIN: Duration = Duration::from_secs(60);
    /// Longest lifetime an agent may be given.
    pub const MAX: Duration = Duration::from_secs(24 * 60 * 60);
    /// Lifetime of an agent registered without `--ttl`.
    pub const DEFAULT: Duration = Duration::from_secs(15 * 60);

    /// Checks that `duration` is within the allowed range.
    pub fn new(duration: Duration) -> Result<Self, CoreError> {
        if duration < Self::MIN || duration > Self::MAX {
            return Err(CoreError::InvalidDuration {
                value: humantime::format_duration(duration).to_string(),
                reason: "an SVID lifetime must be between 1m and 24h".to_owned(),
            });
        }
        Ok(Self(duration))
    }

    /// Parses a duration such as `15m` and checks its range. An error quotes `value` as given.
    pub fn parse(value: &str) -> Result<Self, CoreError> {
        Self::new(parse_duration(value)?).map_err(|err| match err {
            CoreError::InvalidDuration { reason, .. } => CoreError::InvalidDuration {
                value: value.chars().take(60).collect(),
                reason,
            },
            other => other,
        })
    }

    /// Returns the lifetime.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl Default for SvidLifetime {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// Parses a human-readable duration (`30s`, `15m`, `2h`, `7d`, `1h 30m`).
pub fn parse_duration(value: &str) -> Result<Duration, CoreError> {
    humantime::parse_duration(value).map_err(|err| CoreError::InvalidDuration {
        value: value.chars().take(60).collect(),
        reason: format!("{err}; use a number and a unit, for example `90s`, `15m` or `24h`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_bounds() {
        assert_eq!(SvidLifetime::default().duration(), Duration::from_secs(900));
        assert!(SvidLifetime::parse("1m").is_ok());
        assert!(SvidLifetime::parse("24h").is_ok());
        assert!(SvidLifetime::parse("59s").is_err());
        assert!(SvidLifetime::parse("25h").is_err());
        assert!(SvidLifetime::parse("fifteen").is_err());
    }
}

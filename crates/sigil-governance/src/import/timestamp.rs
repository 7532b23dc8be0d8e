//! Times in inventories: ISO 8601 / RFC 3339, or a marker for "no value".

use time::OffsetDateTime;
use time::format_description::well_known::{Iso8601, Rfc3339};

/// Markers the AWS credential report uses where there is no time: `N/A` (no such key, or
/// never used), `no_information` (last use before AWS tracked it) and `not_supported`.
const NO_VALUE: [&str; 4] = ["", "N/A", "no_information", "not_supported"];

/// Parses a time to Unix milliseconds; `Ok(None)` for a no-value marker.
pub(crate) fn parse_time(value: &str) -> Result<Option<i64>, ()> {
    let value = value.trim();
    if NO_VALUE.contains(&value) {
        return Ok(None);
    }
    let parsed = OffsetDateTime::parse(value, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(value, &Iso8601::DEFAULT))
        .map_err(|_| ())?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000)
        .map(Some)
        .map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_times_and_markers() {
        assert_eq!(
            parse_time("2015-06-17T19:11:50+00:00"),
            Ok(Some(1_434_568_310_000))
        );
        assert_eq!(
            parse_time("2015-06-17T19:11:50Z"),
            Ok(Some(1_434_568_310_000))
        );
        assert_eq!(parse_time("N/A"), Ok(None));
        assert_eq!(parse_time("no_information"), Ok(None));
        assert_eq!(parse_time("yesterday"), Err(()));
    }
}

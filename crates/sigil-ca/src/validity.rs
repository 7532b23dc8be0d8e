//! Validity periods of issued certificates: backdating, clamping to the issuer and the
//! whole-second UTC times that X.509 can carry.

use time::{Duration, OffsetDateTime, UtcOffset};

use crate::CaError;

/// The notBefore and notAfter of a certificate, in UTC whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Validity {
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
}

impl Validity {
    /// Computes the validity of a certificate issued at `now`.
    ///
    /// notBefore is `now - backdate`, so that relying parties whose clocks run slightly behind
    /// accept the certificate at once. notAfter is `now + lifetime`, clamped to
    /// `issuer_not_after` because a certificate must not outlive its issuer.
    pub(crate) fn backdated(
        now: OffsetDateTime,
        backdate: Duration,
        lifetime: Duration,
        issuer_not_after: Option<OffsetDateTime>,
    ) -> Result<Self, CaError> {
        if !lifetime.is_positive() {
            return Err(CaError::InvalidLifetime { lifetime });
        }

        let now = to_certificate_time(now)?;
        let not_before = to_certificate_time(now - backdate)?;

        let requested_not_after = now
            .checked_add(lifetime)
            .ok_or(CaError::InvalidLifetime { lifetime })?;
        let not_after = match issuer_not_after {
            Some(issuer_not_after) if issuer_not_after <= now => {
                return Err(CaError::IssuerExpired {
                    not_after: issuer_not_after,
                    now,
                });
            }
            Some(issuer_not_after) => requested_not_after.min(issuer_not_after),
            None => requested_not_after,
        };

        Ok(Self {
            not_before,
            not_after,
        })
    }
}

/// Converts `time` to UTC and drops its fraction of a second.
///
/// rcgen 0.14 chooses between UTCTime and GeneralizedTime by the year in the time's own offset,
/// and yasna then converts to UTC and panics when that year does not fit UTCTime (a time just
/// before 2050 in a negative offset). rcgen also drops the fraction of a second, so dropping it
/// here keeps the times Sigil reports equal to those in the certificate. Times before 1970 are
/// rejected because webpki cannot verify against them and yasna panics on negative years.
pub(crate) fn to_certificate_time(time: OffsetDateTime) -> Result<OffsetDateTime, CaError> {
    let utc = time.to_offset(UtcOffset::UTC);
    let whole_seconds = utc - Duration::nanoseconds(i64::from(utc.nanosecond()));

    if whole_seconds < OffsetDateTime::UNIX_EPOCH {
        return Err(CaError::InvalidTime { time });
    }

    Ok(whole_seconds)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2030-01-01 12:00:00.75 UTC);

    #[test]
    fn backdated_moves_not_before_back() {
        let validity =
            Validity::backdated(NOW, Duration::seconds(30), Duration::hours(1), None).unwrap();

        assert_eq!(validity.not_before, datetime!(2030-01-01 11:59:30 UTC));
        assert_eq!(validity.not_after, datetime!(2030-01-01 13:00:00 UTC));
    }

    #[test]
    fn backdated_clamps_to_issuer() {
        let issuer_not_after = datetime!(2030-01-01 12:30:00 UTC);

        let validity = Validity::backdated(
            NOW,
            Duration::seconds(30),
            Duration::hours(1),
            Some(issuer_not_after),
        )
        .unwrap();

        assert_eq!(validity.not_after, issuer_not_after);
    }

    #[test]
    fn backdated_rejects_expired_issuer() {
        let issuer_not_after = datetime!(2030-01-01 11:00:00 UTC);

        let error = Validity::backdated(
            NOW,
            Duration::seconds(30),
            Duration::hours(1),
            Some(issuer_not_after),
        )
        .unwrap_err();

        assert!(matches!(error, CaError::IssuerExpired { .. }), "{error}");
    }

    #[test]
    fn backdated_rejects_non_positive_lifetime() {
        for lifetime in [Duration::ZERO, Duration::seconds(-1)] {
            let error =
                Validity::backdated(NOW, Duration::seconds(30), lifetime, None).unwrap_err();

            assert!(matches!(error, CaError::InvalidLifetime { .. }), "{error}");
        }
    }

    #[test]
    fn backdated_rejects_overflowing_lifetime() {
        let error =
            Validity::backdated(NOW, Duration::seconds(30), Duration::MAX, None).unwrap_err();

        assert!(matches!(error, CaError::InvalidLifetime { .. }), "{error}");
    }

    #[test]
    fn certificate_time_is_utc_whole_seconds() {
        let local = datetime!(2030-01-01 14:00:00.5 +02:00);

        let time = to_certificate_time(local).unwrap();

        assert_eq!(time, datetime!(2030-01-01 12:00:00 UTC));
        assert_eq!(time.offset(), UtcOffset::UTC);
    }

    #[test]
    fn certificate_time_rejects_dates_before_1970() {
        let error = to_certificate_time(datetime!(1969-12-31 23:59:59 UTC)).unwrap_err();

        assert!(matches!(error, CaError::InvalidTime { .. }), "{error}");
    }
}

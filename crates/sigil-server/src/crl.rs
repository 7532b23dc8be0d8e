//! The CRL served at `/v1/crl`, regenerated after every revocation.

use std::sync::Arc;

use arc_swap::ArcSwap;
use sigil_ca::crl::{RevokedSerial, build_crl};
use sigil_store::Store;
use time::OffsetDateTime;

use crate::ServerError;
use crate::authority::Authority;

/// How long a CRL is valid; the authority also regenerates it on every revocation.
pub(crate) const CRL_VALIDITY: time::Duration = time::Duration::hours(1);

/// The current DER-encoded CRL.
#[derive(Clone, Default)]
pub(crate) struct CrlCache {
    der: Arc<ArcSwap<Vec<u8>>>,
}

impl CrlCache {
    /// Returns the current CRL.
    pub fn current(&self) -> Arc<Vec<u8>> {
        self.der.load_full()
    }

    /// Builds a CRL from the registry's revoked, unexpired serials and makes it current.
    pub async fn refresh(
        &self,
        store: &Store,
        authority: &Authority,
        now: OffsetDateTime,
    ) -> Result<(), ServerError> {
        let now_ms = crate::clock::unix_ms(now);
        let revoked = store
            .revoked_unexpired(now_ms)
            .await?
            .into_iter()
            .map(|(serial_hex, revoked_at_ms)| RevokedSerial {
                serial_hex,
                revoked_at: OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(revoked_at_ms) * 1_000_000,
                )
                .unwrap_or(now),
            })
            .collect::<Vec<_>>();

        // The time component keeps the number increasing across restarts and rotations, and the
        // stored counter keeps it increasing across revocations within one second.
        let counter = u64::try_from(store.crl_number().await?).unwrap_or(0);
        let crl_number =
            (u64::try_from(now.unix_timestamp()).unwrap_or(0) << 16) | (counter & 0xffff);

        let der = build_crl(
            &authority.signing,
            &revoked,
            crl_number,
            now,
            now + CRL_VALIDITY,
        )?;
        self.der.store(Arc::new(der));
        tracing::debug!(revoked = revoked.len(), crl_number, "CRL regenerated");
        Ok(())
    }
}

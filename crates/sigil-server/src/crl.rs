//! The CRLs served at `/v1/crl` and `/v1/crl.pem`, regenerated after every revocation.
//!
//! Relying parties such as nginx (`ssl_crl`) check a CRL for every certificate of the chain
//! below the trust anchor, so they need one signed by the root, covering the signing CAs, and
//! one from each signing CA whose certificates may still be valid. `/v1/crl.pem` serves all of
//! them; `/v1/crl` serves the current signing CA's alone, in DER.

use std::sync::Arc;

use arc_swap::ArcSwap;
use sigil_ca::crl::{RevokedSerial, build_crl, crl_pem};
use sigil_store::Store;
use time::OffsetDateTime;

use crate::ServerError;
use crate::authority::Authority;

/// How long a CRL is valid; the authority also regenerates it on every revocation.
pub(crate) const CRL_VALIDITY: time::Duration = time::Duration::hours(1);

/// The current CRLs.
#[derive(Clone, Default)]
pub(crate) struct CrlCache {
    der: Arc<ArcSwap<Vec<u8>>>,
    pem: Arc<ArcSwap<String>>,
}

impl CrlCache {
    /// Returns the current signing CA's CRL in DER.
    pub fn current(&self) -> Arc<Vec<u8>> {
        self.der.load_full()
    }

    /// Returns the root's CRL followed by the CRL of every live signing CA, as PEM blocks.
    pub fn pem_bundle(&self) -> Arc<String> {
        self.pem.load_full()
    }

    /// Builds the CRLs from the registry's revoked, unexpired serials and makes them current.
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
        let next_update = now + CRL_VALIDITY;

        // Sigil never revokes a signing CA, so the root's CRL is empty; it exists so that
        // chain-wide checks find a current CRL for each signing CA.
        let root_der = build_crl(&authority.root, &[], crl_number, now, next_update)?;
        let mut pem = crl_pem(&root_der);

        // NOTE: the registry does not record which signing CA issued a certificate, so every
        // signing CA's CRL lists every revoked serial. Serials are 128-bit random numbers, so an
        // entry for another CA's certificate matches nothing.
        let mut current = Vec::new();
        for ca in authority.live_signing_cas(now) {
            let der = build_crl(ca, &revoked, crl_number, now, next_update)?;
            pem.push_str(&crl_pem(&der));
            if current.is_empty() {
                current = der;
            }
        }

        self.der.store(Arc::new(current));
        self.pem.store(Arc::new(pem));
        tracing::debug!(
            revoked = revoked.len(),
            crl_number,
            previous_signing_cas = authority.previous.len(),
            "CRLs regenerated"
        );
        Ok(())
    }
}

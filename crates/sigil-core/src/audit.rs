//! The audit chain: each event carries the SHA-256 hash of the one before it.
//!
//! An event's hash covers its sequence number, its fields and the previous hash, each
//! length-prefixed so that no two different events serialise to the same bytes. Editing,
//! inserting or deleting any event breaks the chain from that event on, and
//! [`verify_chain`] names the first sequence number that does not check out.
//!
//! Events hold identifiers and fingerprints only. Callers must never put a token, a private key or
//! any other secret in an event; the storage and server crates have tests that search the audit
//! log for the secrets they handle.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The `prev_hash` of the first event: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separator, so that an audit hash can never be confused with another SHA-256 use.
const HASH_CONTEXT: &[u8] = b"sigil-audit-v1";

/// What happened, before it is placed in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unix time in milliseconds.
    pub at_ms: i64,
    /// Who acted: a SPIFFE ID, `cli` for offline commands, `system` for background tasks, or
    /// `anonymous` for unauthenticated callers.
    pub actor: String,
    /// A stable dotted name such as `svid.issued` or `agent.decommissioned`.
    pub action: String,
    /// What the action was about: an agent name, an owner e-mail, a serial.
    pub subject: String,
    /// `success`, `denied` or `failed`.
    pub outcome: String,
    /// A JSON object with fingerprints, serials, reasons and other non-secret details.
    pub details: String,
}

/// An event in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainedAuditRecord {
    /// Position in the chain, starting at 1 with no gaps.
    pub seq: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
    /// Hash of the previous event, or [`GENESIS_HASH`].
    pub prev_hash: String,
    /// Hash of this event.
    pub hash: String,
}

impl ChainedAuditRecord {
    /// Places `record` after the event at `prev_seq` whose hash is `prev_hash`.
    pub fn chain(record: AuditRecord, prev_seq: i64, prev_hash: &str) -> Self {
        let seq = prev_seq + 1;
        let hash = event_hash(seq, &record, prev_hash);
        Self {
            seq,
            record,
            prev_hash: prev_hash.to_owned(),
            hash,
        }
    }
}

/// Computes the lowercase hex SHA-256 hash of an event.
pub fn event_hash(seq: i64, record: &AuditRecord, prev_hash: &str) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };

    field(HASH_CONTEXT);
    field(&seq.to_be_bytes());
    field(&record.at_ms.to_be_bytes());
    field(record.actor.as_bytes());
    field(record.action.as_bytes());
    field(record.subject.as_bytes());
    field(record.outcome.as_bytes());
    field(record.details.as_bytes());
    field(prev_hash.as_bytes());

    hex::encode(hasher.finalize())
}

/// Where and why an audit chain stopped checking out.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("audit chain broken at sequence number {seq}: {reason}")]
pub struct AuditChainError {
    /// The first sequence number that does not check out.
    pub seq: i64,
    /// What was wrong with it.
    pub reason: String,
}

/// Checks events in sequence order; returns how many were checked.
///
/// `head` is the last sequence number and hash recorded outside the chain, if any, so that
/// deleting events from the end is detected too.
pub fn verify_chain<I>(events: I, head: Option<(i64, &str)>) -> Result<i64, AuditChainError>
where
    I: IntoIterator<Item = ChainedAuditRecord>,
{
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_owned();

    for event in events {
        let broken = |reason: String| AuditChainError {
            seq: expected_seq,
            reason,
        };

        if event.seq != expected_seq {
            return Err(broken(format!(
                "expected sequence number {expected_seq}, found {} (an event was deleted or inserted)",
                event.seq
            )));
        }
        if event.prev_hash != prev_hash {
            return Err(broken(
                "its previous-hash link does not match the event before it".into(),
            ));
        }
        if event_hash(event.seq, &event.record, &event.prev_hash) != event.hash {
            return Err(broken(
                "its contents do not match its hash (the event was edited)".into(),
            ));
        }

        prev_hash = event.hash;
        expected_seq += 1;
    }

    let last_seq = expected_seq - 1;
    if let Some((head_seq, head_hash)) = head
        && (head_seq != last_seq || head_hash != prev_hash)
    {
        return Err(AuditChainError {
            seq: last_seq + 1,
            reason: format!(
                "the recorded chain head is sequence number {head_seq}, but the chain ends at \
                 {last_seq} (events were deleted from the end)"
            ),
        });
    }
    Ok(last_seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: i64) -> AuditRecord {
        AuditRecord {
            at_ms: 1_700_000_000_000 + n,
            actor: "spiffe://example.org/admin/root".into(),
            action: "agent.registered".into(),
            subject: format!("agent-{n}"),
            outcome: "success".into(),
            details: "{}".into(),
        }
    }

    fn chain(len: i64) -> Vec<ChainedAuditRecord> {
        let mut events: Vec<ChainedAuditRecord> = Vec::new();
        for n in 0..len {
            let (seq, hash) = events
                .last()
                .map_or((0, GENESIS_HASH.to_owned()), |e| (e.seq, e.hash.clone()));
            events.push(ChainedAuditRecord::chain(record(n), seq, &hash));
        }
        events
    }

    fn head(events: &[ChainedAuditRecord]) -> Option<(i64, &str)> {
        events.last().map(|e| (e.seq, e.hash.as_str()))
    }

    #[test]
    fn intact_chain_verifies() {
        let events = chain(5);
        assert_eq!(verify_chain(events.clone(), head(&events)), Ok(5));
        assert_eq!(verify_chain(Vec::new(), None), Ok(0));
    }

    #[test]
    fn edited_event_is_named() {
        let mut events = chain(5);
        let h = events[4].hash.clone();
        events[2].record.subject = "someone-else".into();
        let err = verify_chain(events, Some((5, &h))).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(err.reason.contains("edited"), "{err}");
    }

    #[test]
    fn deleted_event_is_named() {
        let mut events = chain(5);
        let h = events[4].hash.clone();
        events.remove(1);
        let err = verify_chain(events, Some((5, &h))).unwrap_err();
        assert_eq!(err.seq, 2);
    }

    #[test]
    fn deleted_tail_is_detected_by_head() {
        let mut events = chain(5);
        let h = events[4].hash.clone();
        events.pop();
        let err = verify_chain(events, Some((5, &h))).unwrap_err();
        assert_eq!(err.seq, 5);
    }

    #[test]
    fn rehashed_edit_breaks_next_link() {
        let mut events = chain(3);
        let h = events[2].hash.clone();
        events[0].record.outcome = "denied".into();
        events[0].hash = event_hash(1, &events[0].record, GENESIS_HASH);
        let err = verify_chain(events, Some((3, &h))).unwrap_err();
        assert_eq!(err.seq, 2);
    }
}

//! Reconciliation of a scan with the stored findings.
//!
//! A scan reports every condition that holds now. Against the unresolved findings:
//!
//! - a detection without a finding opens one;
//! - a detection with an open finding refreshes its evidence and last-seen time;
//! - a detection with an accepted finding refreshes it too, but stays accepted and enforces
//!   nothing, so an accepted risk is not reopened or acted on while its condition holds;
//! - a finding, open or accepted, with no detection is resolved: its condition cleared.

use std::collections::{HashMap, HashSet};

use crate::FindingKind;
use crate::rules::{Detection, Enforcement};

/// An unresolved stored finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    pub id: i64,
    /// True for `accepted`, false for `open`.
    pub accepted: bool,
    pub first_seen_ms: i64,
}

/// Changes a scan makes.
#[derive(Debug, Default)]
pub struct Plan {
    /// New findings to open.
    pub open: Vec<Detection>,
    /// Unresolved findings whose condition still holds, by id.
    pub refresh: Vec<(i64, Detection)>,
    /// Findings whose condition cleared, by id and kind.
    pub resolve: Vec<(i64, FindingKind)>,
    /// Enforcement of open (not accepted) findings.
    pub enforce: Vec<Enforcement>,
}

/// Matches `detections` with the unresolved findings in `existing`, keyed by kind and subject.
pub fn plan(
    mut existing: HashMap<(FindingKind, String), Existing>,
    detections: Vec<Detection>,
) -> Plan {
    let mut plan = Plan::default();
    let mut opened = HashSet::new();
    for mut detection in detections {
        let key = (detection.kind, detection.subject);
        match existing.remove(&key) {
            Some(found) => {
                if !found.accepted {
                    plan.enforce.append(&mut detection.enforcement);
                }
                detection.subject = key.1;
                plan.refresh.push((found.id, detection));
            }
            // Only the renewal path opens an identity fork; a scan can only keep one open.
            None if !key.0.scanned() => {}
            None => {
                if opened.insert(key.clone()) {
                    plan.enforce.append(&mut detection.enforcement);
                    detection.subject = key.1;
                    plan.open.push(detection);
                }
            }
        }
    }
    plan.resolve = existing
        .into_iter()
        .map(|((kind, _), found)| (found.id, kind))
        .collect();
    plan.resolve.sort_unstable();
    plan
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn detection(kind: FindingKind, subject: &str, suspend: bool) -> Detection {
        let enforcement = if suspend {
            vec![Enforcement::Suspend {
                agent: subject.into(),
                reason: "test".into(),
                because: kind,
            }]
        } else {
            Vec::new()
        };
        Detection {
            kind,
            subject: subject.into(),
            evidence: json!({}),
            enforcement,
        }
    }

    fn existing(id: i64, accepted: bool) -> Existing {
        Existing {
            id,
            accepted,
            first_seen_ms: 0,
        }
    }

    #[test]
    fn opens_refreshes_and_resolves() {
        let mut stored = HashMap::new();
        stored.insert(
            (FindingKind::AgentInactive, "a".to_owned()),
            existing(1, false),
        );
        stored.insert(
            (FindingKind::AgentInactive, "b".to_owned()),
            existing(2, false),
        );
        let plan = plan(
            stored,
            vec![
                detection(FindingKind::AgentInactive, "a", false),
                detection(FindingKind::AgentInactive, "c", false),
                detection(FindingKind::AgentInactive, "c", false),
            ],
        );
        assert_eq!(plan.refresh.len(), 1);
        assert_eq!(plan.refresh[0].0, 1);
        assert_eq!(plan.open.len(), 1, "duplicates open one finding");
        assert_eq!(plan.open[0].subject, "c");
        assert_eq!(plan.resolve, [(2, FindingKind::AgentInactive)]);
    }

    #[test]
    fn accepted_finding_enforces_nothing() {
        let mut stored = HashMap::new();
        stored.insert(
            (FindingKind::OwnerDeparted, "a".to_owned()),
            existing(1, true),
        );
        stored.insert(
            (FindingKind::OwnerDeparted, "b".to_owned()),
            existing(2, false),
        );
        let plan = plan(
            stored,
            vec![
                detection(FindingKind::OwnerDeparted, "a", true),
                detection(FindingKind::OwnerDeparted, "b", true),
            ],
        );
        assert_eq!(plan.refresh.len(), 2);
        assert!(plan.open.is_empty());
        assert_eq!(
            plan.enforce,
            [Enforcement::Suspend {
                agent: "b".into(),
                reason: "test".into(),
                because: FindingKind::OwnerDeparted,
            }]
        );
    }

    #[test]
    fn scan_never_opens_identity_fork() {
        let plan = plan(
            HashMap::new(),
            vec![detection(FindingKind::IdentityFork, "a", false)],
        );
        assert!(plan.open.is_empty());
    }
}

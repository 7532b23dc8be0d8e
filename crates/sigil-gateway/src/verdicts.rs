//! A memo of policy verdicts for one policy layer.
//!
//! The gateway decides every request with the route's action and resource and an empty context,
//! so within one decision-engine snapshot the verdict depends only on the principal, the action
//! and the resource. The memo belongs to a policy layer and is dropped with it when a new
//! snapshot is installed. Revocation and agent-status checks never go through it.

use std::collections::HashMap;
use std::sync::RwLock;

/// Maximum number of memoised verdicts; the memo is emptied when it is full.
const MAX_ENTRIES: usize = 65_536;

/// Verdicts (true for allow) by principal, action and resource.
#[derive(Debug, Default)]
pub struct VerdictMemo {
    entries: RwLock<HashMap<String, bool>>,
}

impl VerdictMemo {
    /// Returns the memoised verdict for the triple, or runs `decide`, stores its verdict and
    /// returns it.
    pub fn get_or_decide(
        &self,
        principal: &str,
        action: &str,
        resource: &str,
        decide: impl FnOnce() -> bool,
    ) -> bool {
        let key = memo_key(principal, action, resource);
        if let Ok(entries) = self.entries.read()
            && let Some(allowed) = entries.get(&key)
        {
            return *allowed;
        }

        let allowed = decide();
        // A poisoned lock only costs the memo; the verdict itself is still returned.
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, allowed);
        }
        allowed
    }
}

/// Joins the triple with NUL, which none of a SPIFFE ID, an action or a resource may contain.
fn memo_key(principal: &str, action: &str, resource: &str) -> String {
    let mut key = String::with_capacity(principal.len() + action.len() + resource.len() + 2);
    key.push_str(principal);
    key.push('\0');
    key.push_str(action);
    key.push('\0');
    key.push_str(resource);
    key
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn verdict_decided_once_per_triple() {
        let memo = VerdictMemo::default();
        let calls = Cell::new(0);
        let decide = |verdict: bool| {
            calls.set(calls.get() + 1);
            verdict
        };

        assert!(memo.get_or_decide("spiffe://td/agent/a", "read", "tool:x", || decide(true)));
        assert!(memo.get_or_decide("spiffe://td/agent/a", "read", "tool:x", || decide(false)));
        assert_eq!(calls.get(), 1);

        assert!(!memo.get_or_decide("spiffe://td/agent/a", "write", "tool:x", || decide(false)));
        assert!(!memo.get_or_decide("spiffe://td/agent/b", "read", "tool:x", || decide(false)));
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn full_memo_emptied() {
        let memo = VerdictMemo::default();
        for index in 0..MAX_ENTRIES {
            memo.get_or_decide(&index.to_string(), "read", "tool:x", || true);
        }
        memo.get_or_decide("one more", "read", "tool:x", || true);
        assert_eq!(memo.entries.read().unwrap().len(), 1);
    }
}

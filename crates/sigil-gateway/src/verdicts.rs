//! A memo of policy verdicts for one policy layer.
//!
//! The gateway decides every request with the action and resource of the matching route and an
//! empty context, so within one decision-engine snapshot the verdict depends only on the
//! principal and the route. The memo belongs to a policy layer and is dropped with it when a new
//! snapshot is installed. Revocation and agent-status checks never go through it.
//!
//! A lookup borrows the principal and indexes the route, so a memoised verdict costs one hash
//! of the SPIFFE ID and no allocation.

use std::collections::HashMap;
use std::sync::RwLock;

/// Maximum number of principals with memoised verdicts; the memo is emptied when it is full.
const MAX_PRINCIPALS: usize = 65_536;

/// Verdicts (true for allow) by principal, then by route index.
#[derive(Debug, Default)]
pub struct VerdictMemo {
    entries: RwLock<HashMap<String, Vec<Option<bool>>>>,
}

impl VerdictMemo {
    /// Returns the memoised verdict for `principal` on the route with index `route`, or runs
    /// `decide`, stores its verdict and returns it.
    pub fn get_or_decide(
        &self,
        principal: &str,
        route: usize,
        decide: impl FnOnce() -> bool,
    ) -> bool {
        if let Ok(entries) = self.entries.read()
            && let Some(allowed) = entries
                .get(principal)
                .and_then(|routes| routes.get(route).copied().flatten())
        {
            return allowed;
        }

        let allowed = decide();
        // A poisoned lock only costs the memo; the verdict itself is still returned.
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_PRINCIPALS && !entries.contains_key(principal) {
                entries.clear();
            }
            let routes = match entries.get_mut(principal) {
                Some(routes) => routes,
                None => entries.entry(principal.to_owned()).or_default(),
            };
            if routes.len() <= route {
                routes.resize(route + 1, None);
            }
            routes[route] = Some(allowed);
        }
        allowed
    }
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

        assert!(memo.get_or_decide("spiffe://td/agent/a", 0, || decide(true)));
        assert!(memo.get_or_decide("spiffe://td/agent/a", 0, || decide(false)));
        assert_eq!(calls.get(), 1);

        assert!(!memo.get_or_decide("spiffe://td/agent/a", 3, || decide(false)));
        assert!(!memo.get_or_decide("spiffe://td/agent/b", 0, || decide(false)));
        assert_eq!(calls.get(), 3);

        // Routes below a later index keep no verdict until decided.
        assert!(memo.get_or_decide("spiffe://td/agent/a", 1, || decide(true)));
        assert!(!memo.get_or_decide("spiffe://td/agent/a", 3, || decide(true)));
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn full_memo_emptied() {
        let memo = VerdictMemo::default();
        for index in 0..MAX_PRINCIPALS {
            memo.get_or_decide(&index.to_string(), 0, || true);
        }
        // A known principal's new route does not empty the memo; a new principal does.
        memo.get_or_decide("0", 1, || true);
        assert_eq!(memo.entries.read().unwrap().len(), MAX_PRINCIPALS);
        memo.get_or_decide("one more", 0, || true);
        assert_eq!(memo.entries.read().unwrap().len(), 1);
    }
}

//! Policy sets split by the resource prefix their policies require.
//!
//! Most Sigil policies can only be satisfied for resources under one prefix: an entitlement
//! `invoke:tool:crm/*` needs `tool:crm/`, and a custom policy with
//! `when { resource.id like "doc:*" }` needs `doc:`. Such a *guard* is cut back to its last
//! separator (`:` or `/`) to form a *key*. A request evaluates the pre-built set of the longest
//! key that is a prefix of its resource. That set holds the policies without a guard and the
//! policies of every key that is a prefix of the chosen key, which are exactly the policies whose
//! guard can match the resource. Every other policy would evaluate to false.

use std::collections::HashMap;

use cedar_policy::pst::{self, BinaryOp, Clause, EntityOrSlot, Expr, PatternElem, Var};
use cedar_policy::{Policy, PolicySet};

use crate::error::PolicyError;
use crate::hash::FnvBuildHasher;
use crate::schema::RESOURCE_TYPE;

/// A policy set split by resource key.
#[derive(Debug)]
pub(crate) struct ResourceIndexedSet {
    /// Policies without a guard, evaluated for every resource.
    unguarded: PolicySet,
    /// For each key: the unguarded policies and those of every key that is a prefix of it.
    by_key: HashMap<String, PolicySet, FnvBuildHasher>,
}

impl ResourceIndexedSet {
    /// Builds the sets from policies and their guards (see [`resource_guard`]).
    pub(crate) fn build(
        policies: Vec<(Policy, Option<String>)>,
        subject: &str,
    ) -> Result<Self, PolicyError> {
        let mut unguarded = Vec::new();
        let mut by_key: HashMap<String, Vec<Policy>> = HashMap::new();
        for (policy, guard) in policies {
            match guard.as_deref().map(key_of).filter(|key| !key.is_empty()) {
                Some(key) => by_key.entry(key.to_owned()).or_default().push(policy),
                None => unguarded.push(policy),
            }
        }

        let mut sets = HashMap::with_capacity_and_hasher(by_key.len(), FnvBuildHasher::default());
        for key in by_key.keys() {
            let mut policies = unguarded.clone();
            for (other, other_policies) in &by_key {
                if key.starts_with(other.as_str()) {
                    policies.extend(other_policies.iter().cloned());
                }
            }
            sets.insert(key.clone(), policy_set(policies, subject)?);
        }

        Ok(Self {
            unguarded: policy_set(unguarded, subject)?,
            by_key: sets,
        })
    }

    /// Returns the set to evaluate for `resource`.
    pub(crate) fn set_for(&self, resource: &str) -> &PolicySet {
        if self.by_key.is_empty() {
            return &self.unguarded;
        }
        for (index, byte) in resource.bytes().enumerate().rev() {
            if is_separator(byte)
                && let Some(set) = self.by_key.get(&resource[..=index])
            {
                return set;
            }
        }
        &self.unguarded
    }
}

/// Separators at which guards are cut into keys. Both are ASCII, so every cut is a char boundary.
fn is_separator(byte: u8) -> bool {
    byte == b':' || byte == b'/'
}

/// Cuts a guard back to its last separator; an empty key means the guard is too short to index.
fn key_of(guard: &str) -> &str {
    match guard.bytes().rposition(is_separator) {
        Some(index) => &guard[..=index],
        None => "",
    }
}

/// Returns a prefix that the resource id must have for the policy to be satisfied, if the policy
/// shows one: `resource == Sigil::Resource::"…"` in the scope, or a `when` clause whose top-level
/// `&&` chain contains `resource.id like "<prefix>*…"`, `resource.id == "…"` or
/// `resource == Sigil::Resource::"…"`. The longest such prefix is returned.
///
/// This relies on the engine giving every `Sigil::Resource` entity an `id` attribute equal to its
/// entity id. `unless` clauses and `||` are not analysed, so they never produce a guard.
pub(crate) fn resource_guard(policy: &Policy) -> Option<String> {
    let pst = policy.to_pst().ok()?;
    let body = pst.body();
    let mut guards = Vec::new();

    if let pst::ResourceConstraint::Eq(EntityOrSlot::Entity(uid)) = &body.resource
        && uid.ty.to_string() == RESOURCE_TYPE
    {
        guards.push(uid.eid.to_string());
    }
    for clause in body.clauses() {
        if let Clause::When(expr) = clause {
            collect_guards(expr, &mut guards);
        }
    }
    guards.into_iter().max_by_key(String::len)
}

/// Collects guards from the conjuncts of a `when` expression.
fn collect_guards(expr: &Expr, guards: &mut Vec<String>) {
    match expr {
        Expr::BinaryOp {
            op: BinaryOp::And,
            left,
            right,
        } => {
            collect_guards(left, guards);
            collect_guards(right, guards);
        }
        Expr::Like { expr, pattern } if is_resource_id(expr) => {
            let prefix: String = pattern
                .iter()
                .map_while(|element| match element {
                    PatternElem::Char(c) => Some(*c),
                    PatternElem::Wildcard => None,
                })
                .collect();
            guards.push(prefix);
        }
        Expr::BinaryOp {
            op: BinaryOp::Eq,
            left,
            right,
        } => {
            if let Some(value) = equality_guard(left, right).or_else(|| equality_guard(right, left))
            {
                guards.push(value);
            }
        }
        _ => {}
    }
}

/// Returns the resource id that `subject == value` pins, for `resource.id == "…"` and
/// `resource == Sigil::Resource::"…"`.
fn equality_guard(subject: &Expr, value: &Expr) -> Option<String> {
    match value {
        Expr::Literal(pst::Literal::String(id)) if is_resource_id(subject) => Some(id.to_string()),
        Expr::Literal(pst::Literal::EntityUID(uid))
            if matches!(subject, Expr::Var(Var::Resource))
                && uid.ty.to_string() == RESOURCE_TYPE =>
        {
            Some(uid.eid.to_string())
        }
        _ => None,
    }
}

/// Returns true for the expression `resource.id`.
fn is_resource_id(expr: &Expr) -> bool {
    matches!(expr, Expr::GetAttr { expr, attr } if attr == "id" && matches!(**expr, Expr::Var(Var::Resource)))
}

fn policy_set(policies: Vec<Policy>, subject: &str) -> Result<PolicySet, PolicyError> {
    PolicySet::from_policies(policies).map_err(|error| PolicyError::Internal {
        subject: subject.to_owned(),
        message: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn guard(text: &str) -> Option<String> {
        resource_guard(&Policy::from_str(text).unwrap())
    }

    #[test]
    fn guards_found_in_scope_and_when() {
        assert_eq!(
            guard(r#"permit (principal, action, resource == Sigil::Resource::"doc:1");"#),
            Some("doc:1".to_owned())
        );
        assert_eq!(
            guard(
                r#"permit (principal, action, resource) when { resource.id like "tool:crm/*" };"#
            ),
            Some("tool:crm/".to_owned())
        );
        assert_eq!(
            guard(
                r#"permit (principal, action, resource)
                   when { principal.status == "active" && resource.id like "a\*b*c" };"#
            ),
            Some("a*b".to_owned())
        );
        assert_eq!(
            guard(r#"permit (principal, action, resource) when { "doc:2" == resource.id };"#),
            Some("doc:2".to_owned())
        );
        assert_eq!(
            guard(
                r#"permit (principal, action, resource)
                   when { resource.id like "tool:*" } when { resource == Sigil::Resource::"tool:x/y" };"#
            ),
            Some("tool:x/y".to_owned())
        );
    }

    #[test]
    fn no_guard_without_required_prefix() {
        for text in [
            "permit (principal, action, resource);",
            r#"permit (principal, action, resource) unless { resource.id like "tool:*" };"#,
            r#"permit (principal, action, resource) when { resource.id like "tool:a/*" || principal.status == "active" };"#,
            r#"permit (principal, action, resource) when { !(resource.id like "tool:*") };"#,
            r#"permit (principal, action, resource) when { principal.owner like "tool:*" };"#,
            r#"permit (principal, action, resource) when { resource.id like "*/x" };"#,
        ] {
            let found = guard(text);
            assert!(
                found.as_deref().is_none_or(str::is_empty),
                "{text}: {found:?}"
            );
        }
    }

    #[test]
    fn keys_cut_at_last_separator() {
        assert_eq!(key_of("tool:crm/1"), "tool:crm/");
        assert_eq!(key_of("tool:crm/"), "tool:crm/");
        assert_eq!(key_of("doc:public"), "doc:");
        assert_eq!(key_of("plain"), "");
        assert_eq!(key_of(""), "");
    }

    fn ids(set: &PolicySet) -> Vec<String> {
        let mut ids: Vec<String> = set
            .policies()
            .map(|policy| AsRef::<str>::as_ref(policy.id()).to_owned())
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn set_for_picks_longest_key_chain() {
        let policy = |id: &str, text: &str| {
            let policy = Policy::parse(Some(cedar_policy::PolicyId::new(id)), text).unwrap();
            let guard = resource_guard(&policy);
            (policy, guard)
        };
        let index = ResourceIndexedSet::build(
            vec![
                policy("all", "permit (principal, action, resource);"),
                policy(
                    "tool",
                    r#"permit (principal, action, resource) when { resource.id like "tool:*" };"#,
                ),
                policy(
                    "crm",
                    r#"permit (principal, action, resource) when { resource.id like "tool:crm/a*" };"#,
                ),
                policy(
                    "doc",
                    r#"permit (principal, action, resource == Sigil::Resource::"doc:1");"#,
                ),
            ],
            "test",
        )
        .unwrap();

        assert_eq!(ids(index.set_for("tool:crm/abc")), ["all", "crm", "tool"]);
        assert_eq!(ids(index.set_for("tool:erp/abc")), ["all", "tool"]);
        assert_eq!(ids(index.set_for("tool:")), ["all", "tool"]);
        assert_eq!(ids(index.set_for("doc:1")), ["all", "doc"]);
        assert_eq!(ids(index.set_for("doc")), ["all"]);
        assert_eq!(ids(index.set_for("")), ["all"]);
        assert_eq!(ids(index.set_for("wiki:x/tool:crm/a")), ["all"]);
    }
}

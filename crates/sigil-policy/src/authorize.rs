//! Evaluation of one request against a snapshot.

use cedar_policy::{Context, Entities, EntityUid, PolicySet, Response};

use crate::compile::{INACTIVE_AGENT_POLICY_ID, policy_id_str};
use crate::decision::{Decision, PrincipalRef, Request, Verdict};
use crate::snapshot::{ActionSlot, AgentSlot, Snapshot};

impl Snapshot {
    /// Decides `request` with this snapshot's policies.
    ///
    /// The checks run in this order, and the first that fails denies:
    /// 1. the principal must be a registered agent;
    /// 2. the built-in rule: a suspended or decommissioned agent is denied, reported as the
    ///    built-in policy [`INACTIVE_AGENT_POLICY_ID`], and no Cedar policy is evaluated;
    /// 3. the action must be declared in the schema;
    /// 4. the declared context attributes must have their declared types;
    /// 5. Cedar evaluates the agent's slice and the action's global set (see [`Snapshot`]).
    pub fn authorize(&self, request: &Request<'_>) -> Decision {
        let mut decision = Decision {
            decision: Verdict::Deny,
            policies: Vec::new(),
            diagnostics: Vec::new(),
            agent: None,
            entitlements: Vec::new(),
            version: self.version,
        };

        let Some(agent) = self.find_agent(request.principal) else {
            decision.diagnostics.push(format!(
                "principal `{}` is not a registered agent",
                request.principal
            ));
            return decision;
        };
        decision.agent = Some(agent.name.clone());

        if agent.is_inactive() {
            decision.policies.push(INACTIVE_AGENT_POLICY_ID.to_owned());
            decision.diagnostics.push(format!(
                "agent `{}` is {}, and suspended or decommissioned agents are denied every request",
                agent.name, agent.status
            ));
            return decision;
        }

        let Some(&action_position) = self.action_index.get(request.action) else {
            decision.diagnostics.push(format!(
                "action `{}` is not declared in the schema: no entitlement or custom policy uses it",
                request.action
            ));
            return decision;
        };
        let Some(action) = self.actions.get(action_position) else {
            return decision;
        };

        let global = action.global.set_for(request.resource);
        let slice = agent.slice(action_position);
        let own = slice.map(|slice| slice.set.set_for(request.resource));
        let sets: [Option<&PolicySet>; 2] = [Some(global), own];
        let sets = sets.into_iter().flatten().filter(|set| !set.is_empty());

        let context = match self.context(&action.uid, &request.context, &mut decision.diagnostics) {
            Ok(context) => context,
            Err(message) => {
                decision.diagnostics.push(message);
                return decision;
            }
        };
        if sets.clone().next().is_none() {
            // No policy can apply, so Cedar would deny without reasons.
            return decision;
        }
        let (cedar_request, entities) = match self.cedar_inputs(agent, action, request, context) {
            Ok(inputs) => inputs,
            Err(message) => {
                decision.diagnostics.push(message);
                return decision;
            }
        };

        let mut combined = Combined::default();
        for set in sets {
            let response = self
                .authorizer
                .is_authorized(&cedar_request, set, &entities);
            combined.add(&response, &mut decision.diagnostics);
        }
        combined.decide(&mut decision);

        if let (Verdict::Allow, Some(slice)) = (decision.decision, slice) {
            decision.entitlements = slice
                .entitlements
                .iter()
                .filter(|(id, _)| decision.policies.contains(id))
                .map(|(_, entitlement)| entitlement.clone())
                .collect();
        }
        decision
    }

    /// Finds the agent a principal names.
    fn find_agent(&self, principal: PrincipalRef<'_>) -> Option<&AgentSlot> {
        let position = match principal {
            PrincipalRef::Agent(name) => self.agent_index.get(name.as_str()),
            PrincipalRef::SpiffeId(id) => self.spiffe_index.get(id.as_str()),
        }?;
        self.agents.get(*position)
    }

    /// Builds the Cedar context from the request's JSON object.
    ///
    /// Attributes the schema does not declare are dropped with a diagnostic, so a caller that
    /// sends extra fields still gets a decision. Declared attributes must have their declared
    /// types: a wrong type would make Cedar skip every policy that reads the attribute, including
    /// a `forbid`, so the request is denied instead.
    fn context(
        &self,
        action: &EntityUid,
        value: &serde_json::Value,
        diagnostics: &mut Vec<String>,
    ) -> Result<Context, String> {
        let object = match value {
            serde_json::Value::Null => return Ok(Context::empty()),
            serde_json::Value::Object(object) if object.is_empty() => {
                return Ok(Context::empty());
            }
            serde_json::Value::Object(object) => object,
            other => {
                return Err(format!(
                    "invalid context: expected a JSON object or null, got {}",
                    json_type_name(other)
                ));
            }
        };

        let declared = self.schema.context_attributes();
        let mut declared_values = serde_json::Map::new();
        for (name, attribute) in object {
            if declared.contains_key(name) {
                declared_values.insert(name.clone(), attribute.clone());
            } else {
                diagnostics.push(format!(
                    "context attribute `{name}` is not declared in the schema and was ignored"
                ));
            }
        }
        if declared_values.is_empty() {
            return Ok(Context::empty());
        }
        // Parsing with the schema only resolves entity and extension values; `validate` checks
        // the attribute types.
        let schema = self.schema.cedar_schema();
        let context = Context::from_json_value(
            serde_json::Value::Object(declared_values),
            Some((schema, action)),
        )
        .map_err(|error| format!("invalid context: {error}"))?;
        context
            .validate(schema, action)
            .map_err(|error| format!("invalid context: {error}"))?;
        Ok(context)
    }

    /// Builds the Cedar request and the two entities it needs: the agent and the resource.
    fn cedar_inputs(
        &self,
        agent: &AgentSlot,
        action: &ActionSlot,
        request: &Request<'_>,
        context: Context,
    ) -> Result<(cedar_policy::Request, Entities), String> {
        let resource = self.resource_entity(request.resource)?;
        let resource_uid = resource.uid();
        let entities = agent
            .entities
            .clone()
            .add_entities([resource], None)
            .map_err(|error| format!("invalid entities for the request: {error}"))?;
        let cedar_request = cedar_policy::Request::new(
            agent.uid.clone(),
            action.uid.clone(),
            resource_uid,
            context,
            None,
        )
        .map_err(|error| format!("invalid request: {error}"))?;
        Ok((cedar_request, entities))
    }
}

/// Returns the JSON type of a value, with an article, for error messages.
fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The satisfied policies of several disjoint policy sets, combined into the decision of their
/// union.
///
/// Cedar denies when a forbid is satisfied and reports the satisfied forbids; otherwise it allows
/// when a permit is satisfied and reports the satisfied permits. A deny response with reasons
/// therefore carries satisfied forbids, and an allow response satisfied permits.
#[derive(Default)]
struct Combined {
    forbids: Vec<String>,
    permits: Vec<String>,
}

impl Combined {
    /// Adds one response, and its evaluation errors to `diagnostics`.
    fn add(&mut self, response: &Response, diagnostics: &mut Vec<String>) {
        let reasons = response
            .diagnostics()
            .reason()
            .map(|id| policy_id_str(id).to_owned());
        match response.decision() {
            cedar_policy::Decision::Deny => self.forbids.extend(reasons),
            cedar_policy::Decision::Allow => self.permits.extend(reasons),
        }
        diagnostics.extend(
            response
                .diagnostics()
                .errors()
                .map(|error| error.to_string()),
        );
    }

    /// Sets the verdict and the determining policies: any forbid denies, otherwise any permit
    /// allows, otherwise the decision stays a deny without policies.
    fn decide(mut self, decision: &mut Decision) {
        if !self.forbids.is_empty() {
            self.forbids.sort();
            decision.decision = Verdict::Deny;
            decision.policies = self.forbids;
        } else if !self.permits.is_empty() {
            self.permits.sort();
            decision.decision = Verdict::Allow;
            decision.policies = self.permits;
        }
    }
}

//! Issue 18: the admin API's policy simulator agrees with the engine over the decision-vector
//! corpus. Every vector that `SimulateCustomPolicy` can express (identity policies, one
//! boundary, one resource policy, organization levels of SCPs, context entries; a caller that
//! is an IAM user or role) is simulated and must reach the engine's decision and the
//! vector's expectation; where the vector's policies can be stored on an entity,
//! `SimulatePrincipalPolicy` on it must reach the same decision as the sidecar's path (the
//! tenant compiled into a snapshot, the principal resolved, the request evaluated).

use std::sync::Arc;

use iamlet::authz::{evaluate, Outcome};
use iamlet::control_plane::{dispatch, AdminError, Dispatched};
use iamlet::directory::{IdGenerator, PasswordHasher, Tenant};
use iamlet::simulate::{policy_text, Expected, Vector};
use iamlet::snapshot::{AwsManagedCatalog, SnapshotVersion, TenantSnapshot};
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;
const HASHER: PasswordHasher = PasswordHasher::with_iterations(2);

struct Fixture {
    tenant: Tenant,
    ids: IdGenerator,
}

impl Fixture {
    fn new(account: &str) -> Self {
        Self {
            tenant: Tenant::new(account, 0),
            ids: IdGenerator::seeded(1),
        }
    }

    fn call(&mut self, action: &str, parameters: &Value) -> Result<Dispatched, AdminError> {
        dispatch(
            &mut self.tenant,
            &mut self.ids,
            HASHER,
            NOW,
            action,
            parameters,
        )
    }
}

fn results(out: &Value) -> &Vec<Value> {
    out["EvaluationResults"]
        .as_array()
        .unwrap_or_else(|| panic!("EvaluationResults is not a list: {out}"))
}

/// How a vector reads as simulator parameters, or why it cannot.
fn express(vector: &Value) -> Result<(Value, String, String), String> {
    let policies = &vector["policies"];
    for key in ["session", "rcp", "vpc_endpoint"] {
        if policies.get(key).is_some_and(|v| !v.is_null()) {
            return Err(format!("{key} policies (the simulator takes none)"));
        }
    }
    let request = &vector["request"];
    let principal = request["principal"]
        .as_str()
        .ok_or("a principal that is not an ARN")?;
    let parts: Vec<&str> = principal.splitn(6, ':').collect();
    // The simulator's caller is never a service-linked role nor in the organization's
    // management account: SCPs always apply to it.
    let environment = &vector["environment"];
    if environment["principal_is_service_linked_role"] == json!(true) {
        return Err("a service-linked role as the caller".into());
    }
    if let Some(management) = environment["organization_management_account"].as_str() {
        if parts.get(4) == Some(&management) {
            return Err("a caller in the organization's management account".into());
        }
    }
    if parts.len() != 6
        || parts[2] != "iam"
        || !(parts[5].starts_with("user/") || parts[5].starts_with("role/"))
    {
        return Err("a caller that is not an IAM user or role (CallerArn takes users, groups and roles only)".into());
    }
    let texts = |key: &str| -> Vec<String> {
        match policies.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(docs)) => docs.iter().filter_map(policy_text).collect(),
            Some(doc) => policy_text(doc).into_iter().collect(),
        }
    };
    let boundary = texts("permission_boundary");
    if boundary.len() > 1 {
        return Err("several permissions boundaries".into());
    }
    let mut context = Vec::new();
    if let Some(entries) = request.get("context").and_then(Value::as_object) {
        for (key, value) in entries {
            let kind = |v: &Value| match v {
                Value::Number(_) => "numeric",
                Value::Bool(_) => "boolean",
                _ => "string",
            };
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let entry = match value {
                Value::Array(items) => json!({
                    "ContextKeyName": key,
                    "ContextKeyValues": items.iter().map(text).collect::<Vec<_>>(),
                    "ContextKeyType": format!("{}List", items.first().map_or("string", kind)),
                }),
                other => json!({
                    "ContextKeyName": key,
                    "ContextKeyValues": [text(other)],
                    "ContextKeyType": kind(other),
                }),
            };
            context.push(entry);
        }
    }
    let mut params = json!({
        "PolicyInputList": texts("identity"),
        "ActionNames": [request["action"]],
        "ResourceArns": [request["resource"]],
        "CallerArn": principal,
        "ContextEntries": context,
    });
    if let Some(owner) = request.get("resource_account").and_then(Value::as_str) {
        params["ResourceOwner"] = json!(format!("arn:aws:iam::{owner}:root"));
    }
    if !boundary.is_empty() {
        params["PermissionsBoundaryPolicyInputList"] = json!(boundary);
    }
    if let Some(resource) = texts("resource").pop() {
        params["ResourcePolicy"] = json!(resource);
    }
    if let Some(levels) = policies["scp"].as_array() {
        let levels: Vec<Value> = levels
            .iter()
            .map(|level| {
                let docs: Vec<String> = level["policies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(policy_text)
                    .collect();
                json!({"ServiceControlPolicyInputList": docs})
            })
            .collect();
        params["OrderedOrganizationPolicyInputList"] = json!(levels);
    }
    Ok((params, parts[4].to_owned(), parts[5].to_owned()))
}

fn engine_word(decision: &str) -> &'static str {
    match decision {
        "Allow" => "allowed",
        "ExplicitDeny" => "explicitDeny",
        _ => "implicitDeny",
    }
}

fn outcome_of(word: &str) -> Outcome {
    match word {
        "allowed" => Outcome::Allow,
        "explicitDeny" => Outcome::ExplicitDeny,
        _ => Outcome::ImplicitDeny,
    }
}

/// The decision of a one-action, one-resource simulation, checked for agreement between
/// the top level and the resource's own result.
fn decision_of(out: &Value, id: &str) -> String {
    let r = &results(out)[0];
    let top = r["EvalDecision"]
        .as_str()
        .unwrap_or_else(|| panic!("{id}: no decision in {r}"));
    // A simulation on `*` has no resource-specific results (AWS reports it at the top).
    if let Some(specific) = r.get("ResourceSpecificResults") {
        assert_eq!(
            specific[0]["EvalResourceDecision"], top,
            "{id}: top level and resource disagree"
        );
    } else {
        assert_eq!(r["EvalResourceName"], "*", "{id}");
    }
    top.to_owned()
}

/// Stores the vector's principal with its policies in a tenant, through the admin API;
/// `Err` names the write-time rule of IAM's that refuses them.
fn store_principal(f: &mut Fixture, entity: &str, params: &Value) -> Result<(), String> {
    let (kind, rest) = entity.split_once('/').ok_or("no entity name")?;
    let (path, name) = match rest.rsplit_once('/') {
        Some((path, name)) => (format!("/{path}/"), name),
        None => ("/".to_owned(), rest),
    };
    let refused = |e: AdminError| format!("IAM refuses storing it: {}", e.code().as_str());
    let (noun, create) = if kind == "user" {
        ("User", json!({"UserName": name, "Path": path}))
    } else {
        (
            "Role",
            json!({"RoleName": name, "Path": path, "AssumeRolePolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#}),
        )
    };
    f.call(&format!("Create{noun}"), &create).map_err(refused)?;
    for (i, text) in params["PolicyInputList"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        f.call(
            &format!("Put{noun}Policy"),
            &json!({format!("{noun}Name"): name, "PolicyName": format!("p{i}"), "PolicyDocument": text}),
        )
        .map_err(refused)?;
    }
    if let Some(boundary) = params["PermissionsBoundaryPolicyInputList"].get(0) {
        let created = f
            .call(
                "CreatePolicy",
                &json!({"PolicyName": "boundary", "PolicyDocument": boundary}),
            )
            .map_err(refused)?;
        let arn = created.result["Policy"]["Arn"].clone();
        f.call(
            &format!("Put{noun}PermissionsBoundary"),
            &json!({format!("{noun}Name"): name, "PermissionsBoundary": arn}),
        )
        .map_err(refused)?;
    }
    Ok(())
}

#[test]
fn simulations_agree_with_the_engine_on_every_expressible_corpus_vector() {
    let corpus = include_str!("corpus/vectors.jsonl");
    let mut custom = 0;
    let mut principal = 0;
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut principal_skipped: Vec<(String, String)> = Vec::new();
    let catalog = AwsManagedCatalog::compile();
    for line in corpus.lines().filter(|l| !l.trim().is_empty()) {
        let raw: Value = serde_json::from_str(line).expect("vector JSON");
        let id = raw["id"].as_str().unwrap_or("?").to_owned();
        let vector = Vector::parse(line).expect("the corpus parses");
        let engine = vector.run();
        let (params, account, entity) = match express(&raw) {
            Ok(x) => x,
            Err(reason) => {
                skipped.push((id, reason));
                continue;
            }
        };

        let mut f = Fixture::new(&account);
        let out = f
            .call("SimulateCustomPolicy", &params)
            .unwrap_or_else(|e| panic!("{id}: SimulateCustomPolicy failed: {} {e}", e.code()));
        assert!(!out.changed);
        let decision = decision_of(&out.result, &id);
        assert_eq!(
            decision,
            engine_word(engine.decision),
            "{id}: SimulateCustomPolicy and the engine disagree"
        );
        if let Some(expected) = vector.expected {
            assert!(
                expected.accepts(outcome_of(&decision)),
                "{id}: expected {}, simulated {decision}",
                Expected::as_str(expected)
            );
        }
        custom += 1;

        let stored = if !raw["request"]["principal"]
            .as_str()
            .is_some_and(|p| p.starts_with("arn:aws:"))
        {
            Err("a principal of another partition (a tenant's entities are in aws)".to_owned())
        } else if params.get("OrderedOrganizationPolicyInputList").is_some() {
            Err("SCPs at several organization levels (a tenant's SCPs are one level)".to_owned())
        } else {
            store_principal(&mut f, &entity, &params)
        };
        match stored {
            Err(reason) => principal_skipped.push((id, reason)),
            Ok(()) => {
                let mut by_principal = json!({
                    "PolicySourceArn": raw["request"]["principal"],
                    "ActionNames": params["ActionNames"],
                    "ResourceArns": params["ResourceArns"],
                    "ContextEntries": params["ContextEntries"],
                });
                for key in ["ResourceOwner", "ResourcePolicy"] {
                    if let Some(v) = params.get(key) {
                        by_principal[key] = v.clone();
                    }
                }
                let out = f
                    .call("SimulatePrincipalPolicy", &by_principal)
                    .unwrap_or_else(|e| {
                        panic!("{id}: SimulatePrincipalPolicy failed: {} {e}", e.code())
                    });
                let simulated = decision_of(&out.result, &id);
                assert_eq!(
                    simulated,
                    engine_word(engine.decision),
                    "{id}: SimulatePrincipalPolicy and the engine disagree"
                );
                // The sidecar's path: the tenant compiled into a snapshot, the principal
                // resolved against it, the request evaluated. (`Authorize` also fills the
                // keys that follow from the principal; the simulator, as AWS's, takes the
                // context as given, so both are run on the vector's context.)
                let snapshot = TenantSnapshot::compile(
                    Arc::new(f.tenant.clone()),
                    SnapshotVersion::new(1, 1),
                    &catalog,
                )
                .unwrap_or_else(|e| panic!("{id}: the tenant compiles: {e}"));
                let resolved = snapshot
                    .resolve(vector.request.principal())
                    .unwrap_or_else(|| panic!("{id}: the principal resolves"));
                let authorize = evaluate(
                    &resolved.policy_set(vector.policy_set().resource, &[]),
                    &vector.request,
                );
                assert_eq!(
                    simulated,
                    engine_word(authorize.outcome.as_str()),
                    "{id}: SimulatePrincipalPolicy and the snapshot's decision disagree"
                );
                principal += 1;
            }
        }
    }
    let total = corpus.lines().filter(|l| !l.trim().is_empty()).count();
    eprintln!(
        "corpus: {total} vectors; SimulateCustomPolicy expressed {custom}, skipped {}; SimulatePrincipalPolicy expressed {principal}, skipped {} more",
        skipped.len(),
        principal_skipped.len()
    );
    for (id, reason) in skipped.iter().chain(&principal_skipped) {
        eprintln!("  skipped {id}: {reason}");
    }
    assert_eq!(custom + skipped.len(), total);
    // Most of the corpus is expressible: a change that makes the simulator refuse vectors
    // shows here.
    assert!(custom >= 79, "only {custom} vectors expressed");
    assert!(
        principal >= 71,
        "only {principal} vectors stored and simulated"
    );
}

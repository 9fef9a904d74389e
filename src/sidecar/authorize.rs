//! `iamlet.v1.Authorizer`: decisions for applications, from the snapshot store only.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::authz::{
    evaluate, evaluate_explained, Context, Decision, Principal, Request as AuthzRequest,
};
use crate::policy::{
    CompiledPolicy, ContextValue, ParseOptions, PolicyDocument, PolicyKind, Timestamp,
};
use crate::proto::v1 as pb;
use crate::snapshot::{SnapshotStore, SnapshotVersion, TenantSnapshot};

/// `iamlet.v1.Authorizer`.
#[derive(Debug, Clone)]
pub struct AuthorizerService {
    store: Arc<SnapshotStore>,
}

/// A request decoded at the edge.
struct Decoded {
    principal: Principal,
    request: AuthzRequest,
    resource_tenant: Option<String>,
    inline_policy: Option<String>,
    explain: bool,
    min_version: Option<SnapshotVersion>,
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

// === impl AuthorizerService ===

impl AuthorizerService {
    /// Decides from `store`.
    pub fn new(store: Arc<SnapshotStore>) -> Self {
        Self { store }
    }

    /// The tonic server.
    pub fn into_server(self) -> pb::authorizer_server::AuthorizerServer<Self> {
        pb::authorizer_server::AuthorizerServer::new(self)
    }

    fn decode(message: pb::AuthorizeRequest, now: Timestamp) -> Result<Decoded, Status> {
        let pb::AuthorizeRequest {
            caller,
            action,
            resource,
            resource_tenant,
            resource_policy_json,
            context,
            explain,
            min_version,
        } = message;
        let principal = match caller {
            Some(pb::authorize_request::Caller::PrincipalArn(arn)) => {
                Principal::parse(&arn).map_err(|e| invalid("principal_arn", e))?
            }
            None => return Err(invalid("caller", "missing: give principal_arn")),
        };
        let mut ctx = Context::new();
        for (key, value) in context {
            if is_principal_key(&key) {
                // These follow from the principal; a caller cannot choose them.
                continue;
            }
            match value.value {
                Some(pb::context_value::Value::StringValue(s))
                | Some(pb::context_value::Value::NumberValue(s))
                | Some(pb::context_value::Value::DateValue(s)) => ctx.insert_str(&key, &s),
                Some(pb::context_value::Value::BoolValue(b)) => {
                    ctx.insert(&key, ContextValue::from_bool(b))
                }
                Some(pb::context_value::Value::ListValue(list)) => {
                    ctx.insert_multi(
                        &key,
                        list.values.into_iter().map(ContextValue::new).collect(),
                    );
                }
                None => return Err(invalid(&format!("context[{key}]"), "no value")),
            }
        }
        ctx.insert_if_absent("aws:CurrentTime", ContextValue::from_timestamp(now));
        ctx.insert_if_absent("aws:EpochTime", ContextValue::from_i64(now.epoch_seconds()));
        let request = AuthzRequest::try_new(principal.clone(), &action, &resource)
            .map_err(|e| {
                invalid(
                    if action.contains(':') {
                        "resource"
                    } else {
                        "action"
                    },
                    e,
                )
            })?
            .with_context(ctx);
        Ok(Decoded {
            principal,
            request,
            resource_tenant: Some(resource_tenant).filter(|t| !t.is_empty()),
            inline_policy: Some(resource_policy_json).filter(|p| !p.trim().is_empty()),
            explain,
            min_version: min_version.map(SnapshotVersion::from),
        })
    }

    fn load(&self, tenant: &str) -> Result<Arc<TenantSnapshot>, Status> {
        self.store.load(tenant).ok_or_else(|| {
            Status::not_found(format!("tenant `{tenant}` is not served by this sidecar"))
        })
    }
}

/// Keys the sidecar sets from the principal (IAM-SEMANTICS §3.7).
fn is_principal_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.starts_with("aws:principaltag/")
        || matches!(
            key.as_str(),
            "aws:principalarn"
                | "aws:principalaccount"
                | "aws:principaltype"
                | "aws:userid"
                | "aws:username"
        )
}

fn kind_pb(kind: PolicyKind) -> i32 {
    let kind = match kind {
        PolicyKind::Identity => pb::PolicyKind::Identity,
        PolicyKind::Resource => pb::PolicyKind::Resource,
        PolicyKind::Trust => pb::PolicyKind::Trust,
        PolicyKind::Boundary => pb::PolicyKind::Boundary,
        PolicyKind::Session => pb::PolicyKind::Session,
        PolicyKind::Scp => pb::PolicyKind::Scp,
        PolicyKind::Rcp => pb::PolicyKind::Rcp,
        PolicyKind::VpcEndpoint => pb::PolicyKind::VpcEndpoint,
    };
    kind as i32
}

fn statement_pb(s: &crate::authz::StatementRef) -> pb::StatementRef {
    pb::StatementRef {
        policy: s.policy.to_string(),
        index: s.index,
        sid: s.sid.as_deref().unwrap_or("").to_owned(),
    }
}

#[tonic::async_trait]
impl pb::authorizer_server::Authorizer for AuthorizerService {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let mut decoded = Self::decode(request.into_inner(), Timestamp::now())?;
        let caller_tenant = decoded
            .principal
            .account()
            .ok_or_else(|| invalid("principal_arn", "the caller must belong to a tenant"))?
            .to_owned();
        // One load per tenant per request: every part of the decision sees one version.
        let snapshot = self.load(&caller_tenant)?;
        if let Some(min) = decoded.min_version {
            if snapshot.version() < min {
                return Err(Status::failed_precondition(format!(
                    "tenant `{caller_tenant}` is at version {}, older than the {min} asked for",
                    snapshot.version()
                )));
            }
        }
        let resolved = snapshot.resolve(&decoded.principal).ok_or_else(|| {
            Status::not_found(format!(
                "principal `{}` does not exist in tenant `{caller_tenant}`",
                decoded.principal
            ))
        })?;
        resolved.fill_context(&decoded.principal, decoded.request.context_mut());

        let resource_tenant = decoded
            .resource_tenant
            .clone()
            .or_else(|| decoded.request.resource().account().map(str::to_owned))
            .unwrap_or_else(|| caller_tenant.clone());
        if resource_tenant != caller_tenant {
            decoded.request = decoded
                .request
                .with_resource_account(resource_tenant.clone());
        }
        let resource_snapshot = if resource_tenant == caller_tenant {
            Some(Arc::clone(&snapshot))
        } else {
            self.store.load(&resource_tenant)
        };
        let action = decoded.request.action();
        let is_assume_role = action.service() == "sts" && action.name().starts_with("assumerole");
        let inline: Option<CompiledPolicy> = match &decoded.inline_policy {
            Some(text) => {
                let kind = if is_assume_role {
                    PolicyKind::Trust
                } else {
                    PolicyKind::Resource
                };
                let document = PolicyDocument::parse_with(text, ParseOptions::lenient(kind))
                    .map_err(|e| {
                        invalid(
                            "resource_policy_json",
                            format!("{}: {}", e.code(), e.message()),
                        )
                    })?;
                Some(CompiledPolicy::compile(
                    "request#resource-policy",
                    kind,
                    &document,
                ))
            }
            None => None,
        };
        let registered = resource_snapshot.as_ref().and_then(|s| {
            let resource = decoded.request.resource().as_str();
            if is_assume_role {
                let role = resource.rsplit('/').next()?;
                s.role(role)
                    .filter(|r| &*r.arn == resource)
                    .map(|r| Arc::clone(&r.trust))
            } else {
                s.resource_policy(resource).cloned()
            }
        });
        let resource_policy = inline.as_ref().or(registered.as_deref());
        let policies = resolved.policy_set(resource_policy, &[]);
        let (decision, trace): (Decision, _) = if decoded.explain {
            let (d, t) = evaluate_explained(&policies, &decoded.request);
            (d, t.entries)
        } else {
            (evaluate(&policies, &decoded.request), Vec::new())
        };
        let version = snapshot.version();
        Ok(Response::new(pb::AuthorizeResponse {
            decision: match decision.outcome {
                crate::authz::Outcome::Allow => pb::Decision::Allow,
                crate::authz::Outcome::ExplicitDeny => pb::Decision::ExplicitDeny,
                crate::authz::Outcome::ImplicitDeny => pb::Decision::ImplicitDeny,
            } as i32,
            policy_type: decision.policy_type.map_or(0, kind_pb),
            statement: decision.statement.as_ref().map(statement_pb),
            message: decision.message(&decoded.request),
            version: Some(version.into()),
            trace: trace
                .iter()
                .map(|e| pb::TraceEntry {
                    policy_type: kind_pb(e.policy_type),
                    statement: Some(statement_pb(&e.statement)),
                    effect: e.effect.as_str().to_owned(),
                })
                .collect(),
        }))
    }
}

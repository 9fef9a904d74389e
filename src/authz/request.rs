//! An authorization request, normalised once at the edge.

use crate::policy::{ActionName, ResourceName};

use super::context::Context;
use super::principal::Principal;

/// May `principal` perform `action` on `resource`, given `context`?
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    principal: Principal,
    action: ActionName,
    resource: ResourceName,
    resource_account: Option<Box<str>>,
    context: Context,
    environment: Environment,
}

/// Facts about the organization that decide which guardrails apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// The organization's management account: SCPs never restrict its principals and RCPs
    /// never restrict its resources.
    pub management_account: Option<Box<str>>,
    /// The caller is a service-linked role, which SCPs and RCPs do not restrict.
    pub principal_is_service_linked_role: bool,
}

/// A request that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The action is not `service:Name`.
    #[error("invalid action `{0}`: expected `service:Name`")]
    InvalidAction(String),
    /// The resource is empty.
    #[error("the resource is empty: give an ARN or `*`")]
    EmptyResource,
}

// === impl Request ===

impl Request {
    /// Builds a request; the action must be `service:Name` and the resource an ARN or `*`.
    pub fn try_new(
        principal: Principal,
        action: &str,
        resource: &str,
    ) -> Result<Self, RequestError> {
        let action = ActionName::new(action)
            .filter(|a| !a.service().is_empty() && !a.name().is_empty())
            .ok_or_else(|| RequestError::InvalidAction(action.to_owned()))?;
        if resource.is_empty() {
            return Err(RequestError::EmptyResource);
        }
        Ok(Self {
            principal,
            action,
            resource: ResourceName::new(resource),
            resource_account: None,
            context: Context::new(),
            environment: Environment::default(),
        })
    }

    /// Sets the account that owns the resource (otherwise read from the resource ARN, or taken
    /// to be the caller's account when the ARN names none, as S3 bucket ARNs do).
    #[must_use]
    pub fn with_resource_account(mut self, account: impl Into<Box<str>>) -> Self {
        self.resource_account = Some(account.into());
        self
    }

    /// Sets the request context.
    #[must_use]
    pub fn with_context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// Sets the organization facts.
    #[must_use]
    pub fn with_environment(mut self, environment: Environment) -> Self {
        self.environment = environment;
        self
    }

    /// The caller.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The action.
    pub fn action(&self) -> &ActionName {
        &self.action
    }

    /// The resource.
    pub fn resource(&self) -> &ResourceName {
        &self.resource
    }

    /// The request context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The request context, to add keys.
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.context
    }

    /// The organization facts.
    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// The account that owns the resource, when it can be known.
    pub fn resource_account(&self) -> Option<&str> {
        self.resource_account
            .as_deref()
            .or_else(|| self.resource.account())
            .or_else(|| self.principal.account())
    }
}

//! Service-linked roles, their deletion tasks, and the account's STS preferences.
//!
//! A service-linked role is a role at `/aws-service-role/{service}/` whose trust policy lets
//! one AWS service assume it. The service owns it: its trust policy, policies and boundary
//! cannot be changed and it cannot be deleted through `DeleteRole`, only through
//! `DeleteServiceLinkedRole`; only its description can be edited. iamlet creates them for the
//! services of [`SERVICE_LINKED_ROLES`], with AWS's role names. Their permissions policies
//! are AWS-managed policies that iamlet's catalog does not hold (no AWS service runs against
//! iamlet), so the roles are created without attached policies: attaching an ARN the catalog
//! lacks would leave the tenant's snapshot with a dangling policy.
//!
//! `DeleteServiceLinkedRole` is asynchronous in AWS: the service first checks that nothing of
//! its own still uses the role. iamlet hosts no resources of those services, so the task
//! succeeds at once; the tenant keeps the newest [`RETAINED_DELETION_TASKS`] tasks for
//! `GetServiceLinkedRoleDeletionStatus`.

use super::{key, no_such_role, quota_exceeded};
use crate::directory::validate::{self, MAX_SESSION_DURATION_RANGE};
use crate::directory::{
    DeletionTaskStatus, DirectoryError, GlobalEndpointTokenVersion, IdGenerator, IdPrefix, Role,
    ServiceLinkedRoleDeletion, Tenant,
};

/// A service iamlet creates a service-linked role for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLinkedRoleSpec {
    /// The service principal (`autoscaling.amazonaws.com`), case-sensitive as AWS's.
    pub service: &'static str,
    /// The role's name (`AWSServiceRoleForAutoScaling`); a custom suffix follows an `_`.
    pub role_name: &'static str,
    /// The AWS-managed policy AWS attaches to it (under `/aws-service-role/`), for reference:
    /// iamlet's catalog does not hold it, so it is not attached.
    pub managed_policy: Option<&'static str>,
    /// Whether the service accepts `CustomSuffix` (several roles for one service).
    pub custom_suffix: bool,
}

/// The path every service-linked role is under.
pub const SERVICE_ROLE_PATH_PREFIX: &str = "/aws-service-role/";

/// How many finished deletion tasks a tenant keeps (oldest dropped first).
pub const RETAINED_DELETION_TASKS: usize = 100;

const fn spec(
    service: &'static str,
    role_name: &'static str,
    managed_policy: &'static str,
    custom_suffix: bool,
) -> ServiceLinkedRoleSpec {
    ServiceLinkedRoleSpec {
        service,
        role_name,
        managed_policy: Some(managed_policy),
        custom_suffix,
    }
}

/// The services with service-linked roles, by service principal, with AWS's role names and
/// policies (AWS's documentation of each service's service-linked role).
#[rustfmt::skip]
pub static SERVICE_LINKED_ROLES: &[ServiceLinkedRoleSpec] = &[
    spec("access-analyzer.amazonaws.com", "AWSServiceRoleForAccessAnalyzer", "AccessAnalyzerServiceRolePolicy", false),
    spec("autoscaling.amazonaws.com", "AWSServiceRoleForAutoScaling", "AutoScalingServiceRolePolicy", true),
    spec("backup.amazonaws.com", "AWSServiceRoleForBackup", "AWSBackupServiceLinkedRolePolicyForBackup", false),
    spec("cloudtrail.amazonaws.com", "AWSServiceRoleForCloudTrail", "CloudTrailServiceRolePolicy", false),
    spec("config.amazonaws.com", "AWSServiceRoleForConfig", "AWSConfigServiceRolePolicy", false),
    spec("connect.amazonaws.com", "AWSServiceRoleForAmazonConnect", "AmazonConnectServiceLinkedRolePolicy", true),
    spec("dynamodb.application-autoscaling.amazonaws.com", "AWSServiceRoleForApplicationAutoScaling_DynamoDBTable", "AWSApplicationAutoscalingDynamoDBTablePolicy", false),
    spec("ecs.amazonaws.com", "AWSServiceRoleForECS", "AmazonECSServiceRolePolicy", false),
    spec("ecs.application-autoscaling.amazonaws.com", "AWSServiceRoleForApplicationAutoScaling_ECSService", "AWSApplicationAutoscalingECSServicePolicy", false),
    spec("eks.amazonaws.com", "AWSServiceRoleForAmazonEKS", "AmazonEKSServiceRolePolicy", false),
    spec("eks-fargate.amazonaws.com", "AWSServiceRoleForAmazonEKSForFargate", "AmazonEKSForFargateServiceRolePolicy", false),
    spec("eks-nodegroup.amazonaws.com", "AWSServiceRoleForAmazonEKSNodegroup", "AWSServiceRoleForAmazonEKSNodegroup", false),
    spec("elasticache.amazonaws.com", "AWSServiceRoleForElastiCache", "ElastiCacheServiceRolePolicy", false),
    spec("elasticbeanstalk.amazonaws.com", "AWSServiceRoleForElasticBeanstalk", "AWSElasticBeanstalkServiceRolePolicy", false),
    spec("elasticfilesystem.amazonaws.com", "AWSServiceRoleForAmazonElasticFileSystem", "AmazonElasticFileSystemServiceRolePolicy", false),
    spec("elasticloadbalancing.amazonaws.com", "AWSServiceRoleForElasticLoadBalancing", "AWSElasticLoadBalancingServiceRolePolicy", false),
    spec("es.amazonaws.com", "AWSServiceRoleForAmazonElasticsearchService", "AmazonElasticsearchServiceRolePolicy", false),
    spec("guardduty.amazonaws.com", "AWSServiceRoleForAmazonGuardDuty", "AmazonGuardDutyServiceRolePolicy", false),
    spec("kafka.amazonaws.com", "AWSServiceRoleForKafka", "KafkaServiceRolePolicy", false),
    spec("lex.amazonaws.com", "AWSServiceRoleForLexBots", "AmazonLexBotPolicy", false),
    spec("lexv2.amazonaws.com", "AWSServiceRoleForLexV2Bots", "AmazonLexV2BotPolicy", true),
    spec("opensearchservice.amazonaws.com", "AWSServiceRoleForAmazonOpenSearchService", "AmazonOpenSearchServiceRolePolicy", false),
    spec("ops.apigateway.amazonaws.com", "AWSServiceRoleForAPIGateway", "APIGatewayServiceRolePolicy", false),
    spec("organizations.amazonaws.com", "AWSServiceRoleForOrganizations", "AWSOrganizationsServiceTrustPolicy", false),
    spec("rds.amazonaws.com", "AWSServiceRoleForRDS", "AmazonRDSServiceRolePolicy", false),
    spec("redshift.amazonaws.com", "AWSServiceRoleForRedshift", "AmazonRedshiftServiceLinkedRolePolicy", false),
    spec("securityhub.amazonaws.com", "AWSServiceRoleForSecurityHub", "AWSSecurityHubServiceRolePolicy", false),
    spec("spot.amazonaws.com", "AWSServiceRoleForEC2Spot", "AWSEC2SpotServiceRolePolicy", false),
    spec("spotfleet.amazonaws.com", "AWSServiceRoleForEC2SpotFleet", "AWSEC2SpotFleetServiceRolePolicy", false),
    spec("ssm.amazonaws.com", "AWSServiceRoleForAmazonSSM", "AmazonSSMServiceRolePolicy", false),
    spec("sso.amazonaws.com", "AWSServiceRoleForSSO", "AWSSSOServiceRolePolicy", false),
    spec("support.amazonaws.com", "AWSServiceRoleForSupport", "AWSSupportServiceRolePolicy", false),
    spec("trustedadvisor.amazonaws.com", "AWSServiceRoleForTrustedAdvisor", "AWSTrustedAdvisorServiceRolePolicy", false),
];

/// The parameters of `CreateServiceLinkedRole`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateServiceLinkedRoleInput {
    /// The service principal (`AWSServiceName`).
    pub service: String,
    /// The role's description.
    pub description: Option<String>,
    /// A suffix for a second role of the same service, where the service allows it.
    pub custom_suffix: Option<String>,
}

// === impl ServiceLinkedRoleSpec ===

impl ServiceLinkedRoleSpec {
    /// The spec of the service with this principal (exact, case-sensitive).
    pub fn find(service: &str) -> Option<&'static Self> {
        SERVICE_LINKED_ROLES.iter().find(|s| s.service == service)
    }

    /// The role's path: `/aws-service-role/{service}/`.
    pub fn path(&self) -> String {
        format!("{SERVICE_ROLE_PATH_PREFIX}{}/", self.service)
    }

    /// The role's name, with `_{suffix}` when there is a custom suffix.
    pub fn role_name_with(&self, suffix: Option<&str>) -> String {
        match suffix {
            Some(s) => format!("{}_{s}", self.role_name),
            None => self.role_name.to_owned(),
        }
    }

    /// The trust policy: the service, and only it, may assume the role.
    fn trust_policy(&self) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{}"}},"Action":"sts:AssumeRole"}}]}}"#,
            self.service
        )
    }
}

// === impl Role ===

impl Role {
    /// Whether AWS (a service) owns the role: its path is under `/aws-service-role/`, which
    /// `CreateRole` refuses.
    pub fn is_service_linked(&self) -> bool {
        self.path.starts_with(SERVICE_ROLE_PATH_PREFIX)
    }
}

// === impl DeletionTaskStatus ===

impl DeletionTaskStatus {
    /// AWS's name (`SUCCEEDED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::InProgress => "IN_PROGRESS",
            Self::Failed => "FAILED",
            Self::NotStarted => "NOT_STARTED",
        }
    }
}

// === impl GlobalEndpointTokenVersion ===

impl GlobalEndpointTokenVersion {
    /// AWS's name (`v1Token`, `v2Token`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1Token => "v1Token",
            Self::V2Token => "v2Token",
        }
    }

    /// The value of `GlobalEndpointTokenVersion` in `GetAccountSummary`'s `SummaryMap`.
    pub fn summary_value(self) -> u32 {
        match self {
            Self::V1Token => 1,
            Self::V2Token => 2,
        }
    }

    /// Parses AWS's name; anything else is AWS's enum `ValidationError`.
    pub fn parse(value: &str) -> Result<Self, DirectoryError> {
        match value {
            "v1Token" => Ok(Self::V1Token),
            "v2Token" => Ok(Self::V2Token),
            _ => Err(validate::validation_error(
                value,
                "globalEndpointTokenVersion",
                "Member must satisfy enum value set: [v1Token, v2Token]",
            )),
        }
    }
}

/// A random version-4 UUID, for deletion task ids.
fn uuid_v4(ids: &mut IdGenerator) -> String {
    let mut b = [0u8; 16];
    ids.fill(&mut b);
    let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15] = b;
    let (b6, b8) = ((b6 & 0x0f) | 0x40, (b8 & 0x3f) | 0x80);
    format!(
        "{b0:02x}{b1:02x}{b2:02x}{b3:02x}-{b4:02x}{b5:02x}-{b6:02x}{b7:02x}-{b8:02x}{b9:02x}-{b10:02x}{b11:02x}{b12:02x}{b13:02x}{b14:02x}{b15:02x}"
    )
}

/// Whether `id` has the form of a deletion task id:
/// `task/aws-service-role/{service}/{role}/{uuid}`, each part non-empty.
fn is_task_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("task/aws-service-role/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty())
}

// === impl Tenant ===

impl Tenant {
    /// Refuses a change to a service-linked role (`UnmodifiableEntity`, AWS's text); a role
    /// that does not exist is `NoSuchEntity`.
    pub(crate) fn check_modifiable_role(&self, name: &str) -> Result<(), DirectoryError> {
        let role = self.role_ref(name)?;
        if role.is_service_linked() {
            return Err(DirectoryError::UnmodifiableEntity(format!(
                "Cannot perform the operation on the protected role '{}' - this role is only modifiable by AWS",
                role.name
            )));
        }
        Ok(())
    }

    /// `CreateServiceLinkedRole`: the service's role, at `/aws-service-role/{service}/`,
    /// trusting the service.
    pub fn create_service_linked_role(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        input: CreateServiceLinkedRoleInput,
    ) -> Result<&Role, DirectoryError> {
        let CreateServiceLinkedRoleInput {
            service,
            description,
            custom_suffix,
        } = input;
        validate::name(&service, "aWSServiceName", 128)?;
        if let Some(d) = &description {
            validate::description(d, "description")?;
        }
        if let Some(s) = &custom_suffix {
            validate::name(s, "customSuffix", 64)?;
        }
        let Some(spec) = ServiceLinkedRoleSpec::find(&service) else {
            return Err(DirectoryError::InvalidInput(format!(
                "Service {} does not support service-linked roles.",
                crate::error::echo(&service)
            )));
        };
        if custom_suffix.is_some() && !spec.custom_suffix {
            return Err(DirectoryError::InvalidInput(format!(
                "Custom suffix is not allowed for {service}"
            )));
        }
        let name = spec.role_name_with(custom_suffix.as_deref());
        validate::name(&name, "roleName", 64)?;
        let k = key(&name);
        if self.roles.contains_key(&k) {
            return Err(DirectoryError::InvalidInput(format!(
                "Service role name {name} has been taken in this account, please try a different suffix."
            )));
        }
        if self.roles.len() >= self.quotas.roles {
            return Err(quota_exceeded("RolesPerAccount", self.quotas.roles));
        }
        let path = spec.path();
        let role = Role {
            arn: self.arn("role", &path, &name),
            name,
            path,
            role_id: ids.unique_id(IdPrefix::Role),
            created_at: now,
            description,
            max_session_duration: MAX_SESSION_DURATION_RANGE.0,
            assume_role_policy: spec.trust_policy(),
            tags: Vec::new(),
            permissions_boundary: None,
            inline_policies: Default::default(),
            attached_policies: Vec::new(),
            sessions_revoked_before: None,
        };
        Ok(self.roles.entry(k).or_insert(role))
    }

    /// `DeleteServiceLinkedRole`: deletes the role and returns the id of its (finished)
    /// deletion task.
    pub fn delete_service_linked_role(
        &mut self,
        ids: &mut IdGenerator,
        now: i64,
        name: &str,
    ) -> Result<String, DirectoryError> {
        let role = self.role_ref(name)?;
        if !role.is_service_linked() {
            return Err(DirectoryError::InvalidInput(format!(
                "Role {} is not a service-linked role; delete it with DeleteRole.",
                role.name
            )));
        }
        let task_id = format!("task{}{}/{}", role.path, role.name, uuid_v4(ids));
        if self.roles.remove(&key(name)).is_none() {
            return Err(no_such_role(name));
        }
        let tasks = &mut self.service_linked_role_deletions;
        tasks.push(ServiceLinkedRoleDeletion {
            task_id: task_id.clone(),
            status: DeletionTaskStatus::Succeeded,
            submitted_at: now,
        });
        let excess = tasks.len().saturating_sub(RETAINED_DELETION_TASKS);
        tasks.drain(..excess);
        Ok(task_id)
    }

    /// `GetServiceLinkedRoleDeletionStatus`.
    pub fn service_linked_role_deletion_status(
        &self,
        task_id: &str,
    ) -> Result<&ServiceLinkedRoleDeletion, DirectoryError> {
        validate::length(task_id, "deletionTaskId", 1, 1_000)?;
        if !is_task_id(task_id) {
            return Err(DirectoryError::InvalidInput(format!(
                "Invalid deletion task id {}: expected task/aws-service-role/SERVICE/ROLE/UUID.",
                crate::error::echo(task_id)
            )));
        }
        self.service_linked_role_deletions
            .iter()
            .find(|t| t.task_id == task_id)
            .ok_or_else(|| {
                DirectoryError::NoSuchEntity(format!(
                    "Deletion task {} cannot be found.",
                    crate::error::echo(task_id)
                ))
            })
    }

    /// `SetSecurityTokenServicePreferences`.
    pub fn set_security_token_service_preferences(
        &mut self,
        version: &str,
    ) -> Result<(), DirectoryError> {
        self.global_endpoint_token_version = GlobalEndpointTokenVersion::parse(version)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

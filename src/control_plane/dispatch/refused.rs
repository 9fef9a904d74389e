//! The operations of AWS's IAM service model that iamlet refuses on purpose, each with why.
//!
//! Every operation of the model is either dispatched (`ACTIONS`) or listed here; a test over
//! the model holds the two lists to that, and the README's coverage table is generated from
//! them. A refused call answers `UnsupportedOperation` with the reason, so a caller learns at
//! once that the operation is not a typo or a missing permission.

/// Groups of refused operations, each with the reason shown to the caller and in the README.
pub(crate) const REFUSED: &[(&[&str], &str)] = &[
    (
        &[
            "UploadServerCertificate",
            "GetServerCertificate",
            "ListServerCertificates",
            "UpdateServerCertificate",
            "DeleteServerCertificate",
            "TagServerCertificate",
            "UntagServerCertificate",
            "ListServerCertificateTags",
        ],
        "server certificates serve AWS's load balancers and CloudFront, which iamlet does not \
         host; keep TLS certificates in the cluster (cert-manager, Kubernetes Secrets)",
    ),
    (
        &[
            "UploadSSHPublicKey",
            "GetSSHPublicKey",
            "ListSSHPublicKeys",
            "UpdateSSHPublicKey",
            "DeleteSSHPublicKey",
        ],
        "SSH public keys authenticate to AWS CodeCommit, which iamlet does not host",
    ),
    (
        &[
            "CreateServiceSpecificCredential",
            "ListServiceSpecificCredentials",
            "ResetServiceSpecificCredential",
            "UpdateServiceSpecificCredential",
            "DeleteServiceSpecificCredential",
        ],
        "service-specific credentials sign in to AWS CodeCommit, Amazon Keyspaces and Amazon \
         Bedrock, which iamlet does not host",
    ),
    (
        &[
            "UploadSigningCertificate",
            "ListSigningCertificates",
            "UpdateSigningCertificate",
            "DeleteSigningCertificate",
        ],
        "X.509 signing certificates sign requests to AWS's SOAP APIs, which iamlet does not \
         serve; callers sign with access keys (SigV4)",
    ),
    (
        &[
            "EnableOrganizationsRootCredentialsManagement",
            "DisableOrganizationsRootCredentialsManagement",
            "EnableOrganizationsRootSessions",
            "DisableOrganizationsRootSessions",
            "ListOrganizationsFeatures",
            "GenerateOrganizationsAccessReport",
            "GetOrganizationsAccessReport",
        ],
        "iamlet's tenants are not accounts of an AWS Organizations organization; the operator \
         caps them with service control policies (PutServiceControlPolicy)",
    ),
    (
        &[
            "EnableOutboundWebIdentityFederation",
            "DisableOutboundWebIdentityFederation",
            "GetOutboundWebIdentityFederationInfo",
        ],
        "iamlet's STS does not issue web identity tokens to outside services (outbound \
         identity federation)",
    ),
    (
        &[
            "CreateDelegationRequest",
            "GetDelegationRequest",
            "ListDelegationRequests",
            "UpdateDelegationRequest",
            "AcceptDelegationRequest",
            "AssociateDelegationRequest",
            "RejectDelegationRequest",
            "SendDelegationToken",
        ],
        "delegation requests let AWS partners ask for access through AWS's console; iamlet has \
         no partner channel",
    ),
    (
        &["AcquireRole", "GetRoleTemplateVersion"],
        "role templates are published by AWS; iamlet has none to create roles from",
    ),
    (
        &["GetHumanReadableSummary"],
        "the summary is written by AWS's own service; SimulatePrincipalPolicy and \
         GetAccountAuthorizationDetails show what an entity may do",
    ),
    (
        &["GetAccountProperties", "PutAccountProperties"],
        "account properties are settings of an AWS account that iamlet's tenants do not have",
    ),
];

/// Why `action` is refused, when it is.
pub(crate) fn refusal(action: &str) -> Option<&'static str> {
    REFUSED
        .iter()
        .find(|(actions, _)| actions.contains(&action))
        .map(|(_, reason)| *reason)
}

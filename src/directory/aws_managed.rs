//! A read-only catalog of AWS-managed policies (`arn:aws:iam::aws:policy/...`) that tenants
//! may attach and use as permissions boundaries.
//!
//! The documents of `AmazonS3FullAccess`, `AmazonS3ReadOnlyAccess`, `IAMFullAccess`,
//! `IAMReadOnlyAccess`, `IAMUserChangePassword` and `job-function/ViewOnlyAccess` are copied
//! from `tests/corpus/managed-policies.jsonl`, which comes from iann0036/iam-dataset
//! (MIT licence, Copyright (c) Ian Mckay; provided "as is", without warranty of any kind).
//! `AdministratorAccess` and `PowerUserAccess` are not in that dataset; their documents
//! reproduce AWS's published default versions (v1 and v5) and were not copied from a machine
//! source here: compare them with `aws iam get-policy-version` when updating. `ReadOnlyAccess`
//! (94 KB) is left out on purpose.

/// One AWS-managed policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwsManagedPolicy {
    /// The name (`AdministratorAccess`).
    pub name: &'static str,
    /// The path (`/` or `/job-function/`).
    pub path: &'static str,
    /// The ARN (`arn:aws:iam::aws:policy/AdministratorAccess`).
    pub arn: &'static str,
    /// The document of the default version.
    pub document: &'static str,
}

/// The ARN prefix of every AWS-managed policy.
pub const AWS_MANAGED_ARN_PREFIX: &str = "arn:aws:iam::aws:policy/";

macro_rules! catalog_entry {
    ($path:literal, $name:literal) => {
        AwsManagedPolicy {
            name: $name,
            path: $path,
            arn: concat!("arn:aws:iam::aws:policy", $path, $name),
            document: include_str!(concat!("aws_managed/", $name, ".json")),
        }
    };
}

static CATALOG: &[AwsManagedPolicy] = &[
    catalog_entry!("/", "AdministratorAccess"),
    catalog_entry!("/", "AmazonS3FullAccess"),
    catalog_entry!("/", "AmazonS3ReadOnlyAccess"),
    catalog_entry!("/", "IAMFullAccess"),
    catalog_entry!("/", "IAMReadOnlyAccess"),
    catalog_entry!("/", "IAMUserChangePassword"),
    catalog_entry!("/", "PowerUserAccess"),
    catalog_entry!("/job-function/", "ViewOnlyAccess"),
];

/// The AWS-managed policy with this ARN, if the catalog has it.
pub fn aws_managed_policy(arn: &str) -> Option<&'static AwsManagedPolicy> {
    CATALOG.iter().find(|p| p.arn == arn)
}

/// Every policy of the catalog, ordered by name.
pub fn aws_managed_policies() -> &'static [AwsManagedPolicy] {
    CATALOG
}

/// Whether `arn` is in AWS's managed-policy namespace (whether or not the catalog has it).
pub fn is_aws_managed_arn(arn: &str) -> bool {
    arn.starts_with(AWS_MANAGED_ARN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ParseOptions, PolicyDocument, PolicyKind};

    #[test]
    fn every_document_parses_as_an_identity_policy() {
        for policy in aws_managed_policies() {
            PolicyDocument::parse_with(
                policy.document,
                ParseOptions::aws_managed(PolicyKind::Identity),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", policy.name));
            assert_eq!(aws_managed_policy(policy.arn), Some(policy));
            assert!(is_aws_managed_arn(policy.arn));
        }
        let names: Vec<_> = aws_managed_policies().iter().map(|p| p.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn arns_have_aws_shape() {
        let admin = aws_managed_policy("arn:aws:iam::aws:policy/AdministratorAccess").unwrap();
        assert_eq!(admin.name, "AdministratorAccess");
        assert!(
            aws_managed_policy("arn:aws:iam::aws:policy/job-function/ViewOnlyAccess").is_some()
        );
        assert!(aws_managed_policy("arn:aws:iam::aws:policy/ViewOnlyAccess").is_none());
        assert!(aws_managed_policy("arn:aws:iam::aws:policy/ReadOnlyAccess").is_none());
        assert!(!is_aws_managed_arn("arn:aws:iam::111122223333:policy/x"));
    }

    /// The copied documents are the dataset's, value for value.
    #[test]
    fn copied_documents_match_the_corpus() {
        let corpus = include_str!("../../tests/corpus/managed-policies.jsonl");
        let mut matched = 0;
        for line in corpus.lines() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(policy) = entry["arn"].as_str().and_then(aws_managed_policy) else {
                continue;
            };
            let ours: serde_json::Value = serde_json::from_str(policy.document).unwrap();
            assert_eq!(ours, entry["document"], "{}", policy.name);
            matched += 1;
        }
        assert_eq!(matched, 6);
    }
}

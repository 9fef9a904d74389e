use super::*;

fn shipped() -> &'static ActionCatalog {
    match catalog() {
        Ok(c) => c,
        Err(e) => unreachable!("the shipped catalogue does not parse: {e}"),
    }
}

#[test]
fn shipped_catalogue_parses_with_every_service_and_action() {
    let c = shipped();
    assert_eq!(c.services().count(), 455);
    let actions: usize = c.services().map(|s| s.actions().count()).sum();
    assert_eq!(actions, 21_788);
}

#[test]
fn s3_get_object() {
    let c = shipped();
    let (service, action) = c.action("S3:getobject").unwrap_or_else(|| unreachable!());
    assert_eq!(service.prefix(), "s3");
    assert_eq!(service.name(), "Amazon S3");
    assert_eq!(action.name(), "GetObject");
    assert_eq!(action.access_level(), AccessLevel::Read);
    let names: Vec<&str> = action.resource_types().iter().map(|r| r.name()).collect();
    assert_eq!(names, ["accesspointobject", "object"]);
    assert!(action.resource_types().iter().all(|r| !r.required()));
    assert!(action.supports_condition_key(service, "s3:ExistingObjectTag/team"));
    assert!(action.supports_condition_key(service, "S3:TLSVERSION"));
    assert!(action.supports_condition_key(service, "aws:SourceIp"));
    assert!(action.supports_condition_key(service, "aws:PrincipalTag/dept"));
    assert!(!action.supports_condition_key(service, "s3:x-amz-acl"));
    assert!(!action.supports_condition_key(service, "s3:ExistingObjectTag/"));
    let object = service
        .resource_type("object")
        .unwrap_or_else(|| unreachable!());
    assert_eq!(
        object.arn_format(),
        "arn:${Partition}:s3:::${BucketName}/${ObjectName}"
    );
    assert!(object.matches_arn("arn:aws:s3:::bucket/a/b:c.txt"));
    assert!(!object.matches_arn("arn:aws:s3:::bucket"));
    assert!(!object.matches_arn("arn:aws:s3:us-east-1::bucket/key"));
    assert_eq!(
        service.condition_key_type("s3:ExistingObjectTag/x"),
        Some("String")
    );
    assert_eq!(service.condition_key_type("s3:TlsVersion"), Some("Numeric"));
    assert_eq!(service.condition_key_type("s3:NoSuchKey"), None);
}

#[test]
fn iam_pass_role() {
    let c = shipped();
    let (service, action) = c.action("iam:PassRole").unwrap_or_else(|| unreachable!());
    assert_eq!(action.access_level(), AccessLevel::Write);
    let resources = action.resource_types();
    assert_eq!(resources.len(), 1);
    assert!(resources.iter().all(|r| r.name() == "role" && r.required()));
    assert!(action.supports_condition_key(service, "iam:PassedToService"));
    assert!(action.supports_condition_key(service, "iam:AssociatedResourceArn"));
    assert!(!action.supports_condition_key(service, "iam:PolicyARN"));
    let role = service
        .resource_type("role")
        .unwrap_or_else(|| unreachable!());
    assert!(role.matches_arn("arn:aws:iam::123456789012:role/path/app"));
    assert!(!role.matches_arn("arn:aws:iam::123456789012:user/alice"));
    assert!(!role.matches_arn("arn:aws:iam:::role/app"));
}

#[test]
fn sts_assume_role() {
    let c = shipped();
    let (service, action) = c.action("sts:AssumeRole").unwrap_or_else(|| unreachable!());
    assert_eq!(service.prefix(), "sts");
    assert_eq!(action.access_level(), AccessLevel::Write);
    assert!(action
        .resource_types()
        .iter()
        .any(|r| r.name() == "role" && r.required()));
    assert!(action.supports_condition_key(service, "sts:ExternalId"));
    assert!(action.supports_condition_key(service, "saml:sub"));
    assert!(action.supports_condition_key(service, "aws:RequestTag/project"));
    assert!(action.supports_condition_key(service, "iam:ResourceTag/project"));
    assert!(!action.supports_condition_key(service, "sts:DurationSeconds"));
}

#[test]
fn access_levels_follow_the_primary_classification() {
    let c = shipped();
    let level = |a: &str| c.action(a).map(|(_, a)| a.access_level());
    assert_eq!(
        level("iam:PutRolePolicy"),
        Some(AccessLevel::PermissionsManagement)
    );
    assert_eq!(level("iam:TagRole"), Some(AccessLevel::Tagging));
    assert_eq!(level("s3:ListAllMyBuckets"), Some(AccessLevel::List));
    assert_eq!(level("s3:GetObjectz"), None);
    assert!(c.action("nosuchservice:GetObject").is_none());
    assert!(c.action("GetObject").is_none());
}

#[test]
fn matching_follows_iam_wildcards() {
    let c = shipped();
    let names = |p: &str| -> Vec<String> {
        c.matching(p)
            .into_iter()
            .map(|(s, a)| format!("{}:{}", s.prefix(), a.name()))
            .collect()
    };
    let total: usize = c.services().map(|s| s.actions().count()).sum();
    assert_eq!(c.matching("*").len(), total);
    assert_eq!(c.matching("*:*").len(), total);
    assert_eq!(names("IAM:passrole"), ["iam:PassRole"]);
    let policy = names("iam:*Policy");
    assert!(policy.contains(&"iam:PutRolePolicy".to_string()));
    assert!(policy.iter().all(|n| n.to_lowercase().ends_with("policy")));
    let gets = names("s3:Get*");
    assert!(gets.contains(&"s3:GetObject".to_string()));
    assert!(!gets.contains(&"s3:PutObject".to_string()));
    assert_eq!(names("s?:GetObject"), ["s3:GetObject"]);
    assert!(names("s3:GetObjec?").contains(&"s3:GetObject".to_string()));
    assert!(names("s3").is_empty());
    assert!(names("s3:NoSuchAction*").is_empty());
}

#[test]
fn global_condition_keys() {
    let c = shipped();
    assert!(c.is_global_condition_key("aws:SourceIp"));
    assert!(c.is_global_condition_key("AWS:SOURCEIP"));
    assert!(c.is_global_condition_key("aws:PrincipalTag/team"));
    assert!(c.is_global_condition_key("aws:ResourceTag/a/b"));
    assert!(!c.is_global_condition_key("aws:PrincipalTag/"));
    assert!(!c.is_global_condition_key("aws:NoSuchKey"));
    assert!(!c.is_global_condition_key("s3:prefix"));
    assert_eq!(
        c.global_condition_key_type("aws:MultiFactorAuthAge"),
        Some("Numeric")
    );
}

#[test]
fn templated_service_keys_match_mid_key_variables() {
    let c = shipped();
    let codebuild = c.service("codebuild").unwrap_or_else(|| unreachable!());
    assert!(codebuild
        .condition_key_type("codebuild:secondarySources/src1.location")
        .is_some());
    assert!(codebuild
        .condition_key_type("codebuild:secondarySources/.location")
        .is_none());
}

#[test]
fn malformed_text_is_an_error_with_its_line() {
    let cases: [(&'static str, usize); 5] = [
        ("G\taws:SourceIp\tIPAddress\nK\tx\tString\n", 2),
        (
            "G\taws:SourceIp\tIPAddress\nS\ts3\tAmazon S3\nA\tGetObject\tX\t\t\n",
            3,
        ),
        (
            "G\taws:SourceIp\tIPAddress\nS\ts3\tAmazon S3\nA\tGetObject\tR\t1object\t\n",
            3,
        ),
        (
            "G\taws:SourceIp\tIPAddress\nS\ts3\tAmazon S3\nA\tGetObject\tR\t\t7\n",
            3,
        ),
        ("Z\n", 1),
    ];
    for (text, line) in cases {
        match ActionCatalog::parse(text) {
            Err(CatalogError::Malformed { line: l, .. }) => assert_eq!(l, line, "{text}"),
            Ok(_) => unreachable!("{text} parsed"),
        }
    }
    assert!(ActionCatalog::parse("# nothing\n").is_err());
}

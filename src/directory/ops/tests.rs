//! Tests of the tenant operations: each operation's success path and its errors, and that a
//! failed operation changes nothing.

mod credentials;
mod federation;
mod groups;
mod policies;
mod roles;
mod users;

use crate::directory::{
    CreateRoleInput, CreateUserInput, DirectoryError, IdGenerator, Tag, Tenant,
};

const ACCOUNT: &str = "111122223333";
const NOW: i64 = 1_700_000_000;

const IDENTITY_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;
const TRUST_DOC: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

fn tenant() -> (Tenant, IdGenerator) {
    (Tenant::new(ACCOUNT, NOW), IdGenerator::seeded(1))
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn add_user(t: &mut Tenant, ids: &mut IdGenerator, name: &str) {
    t.create_user(
        ids,
        NOW,
        CreateUserInput {
            name: name.into(),
            ..Default::default()
        },
    )
    .unwrap();
}

fn add_role(t: &mut Tenant, ids: &mut IdGenerator, name: &str) {
    t.create_role(
        ids,
        NOW,
        CreateRoleInput {
            name: name.into(),
            assume_role_policy: TRUST_DOC.into(),
            ..Default::default()
        },
    )
    .unwrap();
}

/// Runs an operation that must fail and checks that it left the tenant as it was.
fn fails(
    t: &mut Tenant,
    op: impl FnOnce(&mut Tenant) -> Result<(), DirectoryError>,
) -> DirectoryError {
    let before = t.clone();
    let err = op(t).expect_err("the operation should fail");
    assert_eq!(*t, before, "a failed operation changed the tenant ({err})");
    err
}

#[test]
fn helpers_and_snapshot_documents() {
    let (mut t, mut ids) = tenant();
    add_user(&mut t, &mut ids, "alice");
    assert_eq!(
        t.managed_policy_document("arn:aws:iam::aws:policy/AdministratorAccess")
            .map(|d| d.contains("\"*\"")),
        Some(true)
    );
    assert_eq!(
        t.managed_policy_document("arn:aws:iam::111122223333:policy/none"),
        None
    );
}

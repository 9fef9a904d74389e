//! The admin API secured with IAM, over real gRPC: who may call it (root keys, users' keys,
//! role sessions, the operator; SigV4 or plain keys) and what each may do, as AWS authorizes
//! its own IAM API.

use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Code;

use iamlet::client::{sign_admin_call, Profile};
use iamlet::directory::Secret;
use iamlet::grpc::{aws_error_code, signed_admin_request};
use iamlet::policy::Timestamp;
use iamlet::proto::v1 as pb;

use super::credentials::{Creds, Fixture, A, B, OPERATOR_KEY_ID, OPERATOR_SECRET};

type AdminClient = pb::admin_client::AdminClient<Channel>;

/// The boundary of the delegated-admin pattern.
const BOUNDARY: &str = "arn:aws:iam::111122223333:policy/DevBoundary";

fn profile(creds: &Creds) -> Profile {
    Profile {
        access_key_id: creds.id.clone(),
        secret_access_key: Secret::new(creds.secret.clone()),
        session_token: (!creds.token.is_empty()).then(|| creds.token.clone()),
    }
}

fn operator() -> Creds {
    Creds {
        id: OPERATOR_KEY_ID.into(),
        secret: OPERATOR_SECRET.into(),
        token: String::new(),
    }
}

fn root(fx: &Fixture, index: usize) -> Creds {
    Creds {
        id: fx.roots[index].0.clone(),
        secret: fx.roots[index].1.clone(),
        token: String::new(),
    }
}

async fn client(fx: &Fixture) -> AdminClient {
    AdminClient::connect(format!("http://{}", fx.cp_addr))
        .await
        .unwrap()
}

/// One IAM action as `creds`, signed with SigV4 as the CLI signs.
async fn call(
    fx: &Fixture,
    creds: &Creds,
    tenant: &str,
    action: &str,
    params: &Value,
) -> Result<Value, tonic::Status> {
    let request = pb::CallRequest {
        tenant: tenant.into(),
        action: action.into(),
        parameters_json: params.to_string(),
    };
    let answer = client(fx)
        .await
        .call(signed_admin_request(request, "Call", Some(&profile(creds))))
        .await?;
    Ok(serde_json::from_str(&answer.into_inner().result_json).unwrap())
}

/// Asserts `result` is AWS's `AccessDenied` with a message starting with `message`.
fn assert_denied(result: Result<Value, tonic::Status>, message: &str) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(aws_error_code(&status).as_deref(), Some("AccessDenied"));
    assert!(
        status.message().starts_with(message),
        "expected `{message}`,\n got `{}`",
        status.message()
    );
}

fn assert_refused(result: Result<Value, tonic::Status>, code: &str) {
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert_eq!(aws_error_code(&status).as_deref(), Some(code), "{status:?}");
}

/// The role `iam-admin` of tenant A (`iam:*`, trusting the account) and a user `ops` who
/// may assume it, once the sidecar has both.
async fn iam_admin_role(fx: &Fixture) -> (String, Creds) {
    let (role_arn, _) = fx.role(
        A,
        "iam-admin",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}"#,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#,
    );
    let caller = fx.user_with_key(
        A,
        "ops",
        Some(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#,
        ),
    );
    fx.synced().await;
    (role_arn, caller)
}

async fn events(fx: &Fixture, tenant: &str) -> Vec<pb::AuditEvent> {
    client(fx)
        .await
        .list_events(signed_admin_request(
            pb::ListEventsRequest {
                tenant: tenant.into(),
                after_id: 0,
                limit: 1000,
            },
            "ListEvents",
            Some(&profile(&operator())),
        ))
        .await
        .unwrap()
        .into_inner()
        .events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privileged_user_can_do_exactly_what_its_policy_allows() {
    let fx = Fixture::start("admin-least").await;
    let dev = fx.user_with_key(
        A,
        "dev",
        Some(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":["iam:CreateUser","iam:TagUser"],
                 "Resource":"arn:aws:iam::111122223333:user/team/*"},
                {"Effect":"Allow","Action":"iam:GetUser",
                 "Resource":"arn:aws:iam::111122223333:user/${aws:username}"},
                {"Effect":"Allow","Action":"iam:ListUsers","Resource":"*"}]}"#,
        ),
    );
    let created = call(
        &fx,
        &dev,
        A,
        "CreateUser",
        &json!({"UserName": "x", "Path": "/team/"}),
    )
    .await
    .unwrap();
    assert_eq!(
        created["User"]["Arn"],
        "arn:aws:iam::111122223333:user/team/x"
    );
    let listed = call(&fx, &dev, A, "ListUsers", &json!({})).await.unwrap();
    assert_eq!(listed["Users"].as_array().unwrap().len(), 2);
    // Without `UserName`, a user acts on itself.
    let me = call(&fx, &dev, A, "GetUser", &json!({})).await.unwrap();
    assert_eq!(me["User"]["UserName"], "dev");

    assert_denied(
        call(&fx, &dev, A, "CreateUser", &json!({"UserName": "y"})).await,
        "User: arn:aws:iam::111122223333:user/dev is not authorized to perform: iam:CreateUser \
         on resource: arn:aws:iam::111122223333:user/y because no identity-based policy allows \
         the iam:CreateUser action",
    );
    assert_denied(
        call(&fx, &dev, A, "DeleteUser", &json!({"UserName": "x"})).await,
        "User: arn:aws:iam::111122223333:user/dev is not authorized to perform: iam:DeleteUser \
         on resource: arn:aws:iam::111122223333:user/team/x",
    );
    assert_denied(
        call(&fx, &dev, A, "CreateAccessKey", &json!({"UserName": "x"})).await,
        "User: arn:aws:iam::111122223333:user/dev is not authorized to perform: \
         iam:CreateAccessKey",
    );
    // Nothing of the denied calls happened.
    assert!(!fx.cp.tenant(A).unwrap().0.users.contains_key("y"));
    assert!(fx.cp.tenant(A).unwrap().0.users.contains_key("x"));

    // Each denial is in the audit trail with the caller and where it came from.
    let denied: Vec<_> = events(&fx, A)
        .await
        .into_iter()
        .filter(|e| e.outcome == "AccessDenied")
        .collect();
    let actions: Vec<&str> = denied.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["CreateUser", "DeleteUser", "CreateAccessKey"]);
    assert!(denied
        .iter()
        .all(|e| e.actor == "arn:aws:iam::111122223333:user/dev" && e.source == "127.0.0.1"));

    // An AWS-managed policy attached "directly": read-only IAM.
    let auditor = fx.user_with_key(A, "auditor", None);
    call(
        &fx,
        &root(&fx, 0),
        A,
        "AttachUserPolicy",
        &json!({"UserName": "auditor", "PolicyArn": "arn:aws:iam::aws:policy/IAMReadOnlyAccess"}),
    )
    .await
    .unwrap();
    call(&fx, &auditor, A, "ListUsers", &json!({}))
        .await
        .unwrap();
    call(&fx, &auditor, A, "GetUser", &json!({"UserName": "dev"}))
        .await
        .unwrap();
    assert_denied(
        call(&fx, &auditor, A, "CreateUser", &json!({"UserName": "z"})).await,
        "User: arn:aws:iam::111122223333:user/auditor is not authorized to perform: \
         iam:CreateUser",
    );
    // The predefined policies are AWS's: no tenant changes them, not even its root user.
    let edit = call(
        &fx,
        &root(&fx, 0),
        A,
        "CreatePolicyVersion",
        &json!({"PolicyArn": "arn:aws:iam::aws:policy/IAMReadOnlyAccess",
                "PolicyDocument": r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
                "SetAsDefault": true}),
    )
    .await;
    assert!(edit.is_err(), "{edit:?}");
    assert_denied(
        call(&fx, &auditor, A, "CreateUser", &json!({"UserName": "z"})).await,
        "User: arn:aws:iam::111122223333:user/auditor",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delegated_admin_pattern_holds() {
    let fx = Fixture::start("admin-delegated").await;
    let root = root(&fx, 0);
    call(
        &fx,
        &root,
        A,
        "CreatePolicy",
        &json!({"PolicyName": "DevBoundary", "PolicyDocument":
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#}),
    )
    .await
    .unwrap();
    // AWS's delegated-administrator example: users may be created and changed only with the
    // boundary; the boundary can be neither removed nor edited.
    let delegate = fx.user_with_key(
        A,
        "delegate",
        Some(
            r#"{"Version":"2012-10-17","Statement":[
                {"Sid":"CreateOrChangeOnlyWithBoundary","Effect":"Allow",
                 "Action":["iam:CreateUser","iam:AttachUserPolicy","iam:DetachUserPolicy",
                           "iam:PutUserPolicy","iam:DeleteUserPolicy",
                           "iam:PutUserPermissionsBoundary"],
                 "Resource":"*",
                 "Condition":{"StringEquals":{"iam:PermissionsBoundary":
                     "arn:aws:iam::111122223333:policy/DevBoundary"}}},
                {"Sid":"ReadIAM","Effect":"Allow","Action":["iam:Get*","iam:List*"],"Resource":"*"},
                {"Sid":"NoBoundaryPolicyEdit","Effect":"Deny",
                 "Action":["iam:CreatePolicyVersion","iam:DeletePolicy","iam:DeletePolicyVersion",
                           "iam:SetDefaultPolicyVersion"],
                 "Resource":"arn:aws:iam::111122223333:policy/DevBoundary"},
                {"Sid":"NoBoundaryUserDelete","Effect":"Deny",
                 "Action":"iam:DeleteUserPermissionsBoundary","Resource":"*"}]}"#,
        ),
    );
    let denied = "User: arn:aws:iam::111122223333:user/delegate is not authorized to perform: ";

    assert_denied(
        call(&fx, &delegate, A, "CreateUser", &json!({"UserName": "bob"})).await,
        &format!("{denied}iam:CreateUser on resource: arn:aws:iam::111122223333:user/bob"),
    );
    assert_denied(
        call(
            &fx,
            &delegate,
            A,
            "CreateUser",
            &json!({"UserName": "bob", "PermissionsBoundary": "arn:aws:iam::aws:policy/PowerUserAccess"}),
        )
        .await,
        &format!("{denied}iam:CreateUser"),
    );
    call(
        &fx,
        &delegate,
        A,
        "CreateUser",
        &json!({"UserName": "bob", "PermissionsBoundary": BOUNDARY}),
    )
    .await
    .unwrap();
    // Bob may be given anything: his boundary caps it.
    call(
        &fx,
        &delegate,
        A,
        "AttachUserPolicy",
        &json!({"UserName": "bob", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    )
    .await
    .unwrap();

    // No way out of the boundary.
    for (action, params) in [
        // Naming the boundary in a request that does not set it proves nothing.
        (
            "AttachUserPolicy",
            json!({"UserName": "delegate", "PermissionsBoundary": BOUNDARY,
                   "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        ),
        // Policies for users without the boundary, the delegate included.
        (
            "AttachUserPolicy",
            json!({"UserName": "delegate", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        ),
        (
            "PutUserPolicy",
            json!({"UserName": "delegate", "PolicyName": "more", "PolicyDocument":
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#}),
        ),
        // Another boundary for bob, or none.
        (
            "PutUserPermissionsBoundary",
            json!({"UserName": "bob", "PermissionsBoundary": "arn:aws:iam::aws:policy/AdministratorAccess"}),
        ),
        ("DeleteUserPermissionsBoundary", json!({"UserName": "bob"})),
        // A laxer boundary document.
        (
            "CreatePolicyVersion",
            json!({"PolicyArn": BOUNDARY, "SetAsDefault": true, "PolicyDocument":
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#}),
        ),
        ("DeletePolicy", json!({"PolicyArn": BOUNDARY})),
        // Credentials of other users.
        ("CreateAccessKey", json!({"UserName": "delegate-admin"})),
    ] {
        assert_denied(
            call(&fx, &delegate, A, action, &params).await,
            &format!("{denied}iam:{action}"),
        );
    }
    let tenant = fx.cp.tenant(A).unwrap().0;
    assert_eq!(
        tenant.users["bob"].permissions_boundary.as_deref(),
        Some(BOUNDARY)
    );
    assert!(tenant.users["delegate"].attached_policies.is_empty());

    // Bob, with AdministratorAccess under the boundary, administers nothing.
    let bob = {
        let (key, _) = fx.call(A, "CreateAccessKey", &json!({"UserName": "bob"}));
        Creds {
            id: key["AccessKey"]["AccessKeyId"].as_str().unwrap().into(),
            secret: key["AccessKey"]["SecretAccessKey"].as_str().unwrap().into(),
            token: String::new(),
        }
    };
    assert_denied(
        call(&fx, &bob, A, "CreateUser", &json!({"UserName": "mallory"})).await,
        "User: arn:aws:iam::111122223333:user/bob is not authorized to perform: iam:CreateUser \
         on resource: arn:aws:iam::111122223333:user/mallory because no permissions boundary policy \
         allows the iam:CreateUser action",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_bootstrap_works_once_and_is_audited() {
    let fx = Fixture::start("admin-root").await;
    const C: &str = "777788889999";
    let ops = profile(&operator());
    let create = || {
        signed_admin_request(
            pb::CreateTenantRequest {
                account_id: C.into(),
                alias: "tenant-c".into(),
            },
            "CreateTenant",
            Some(&ops),
        )
    };
    let created = client(&fx)
        .await
        .create_tenant(create())
        .await
        .unwrap()
        .into_inner();
    let root = Creds {
        id: created.root_access_key_id.clone(),
        secret: created.root_secret_access_key.clone(),
        token: String::new(),
    };
    assert!(root.id.starts_with("AKIA") && root.secret.len() == 40);
    // Shown once: the tenant exists now, and asking again shows nothing.
    let again = client(&fx).await.create_tenant(create()).await.unwrap_err();
    assert_eq!(
        aws_error_code(&again).as_deref(),
        Some("EntityAlreadyExists")
    );
    // A root key can be replaced (say it leaked): the operator deletes it and makes another.
    call(&fx, &operator(), C, "DeleteRootAccessKey", &json!({}))
        .await
        .unwrap();
    assert_refused(
        call(&fx, &root, C, "ListUsers", &json!({})).await,
        "InvalidClientTokenId",
    );
    let replaced = call(&fx, &operator(), C, "CreateRootAccessKey", &json!({}))
        .await
        .unwrap();
    let root = Creds {
        id: replaced["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .into(),
        secret: replaced["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .into(),
        token: String::new(),
    };

    // The root user bootstraps an administrator, who then works without root.
    call(&fx, &root, C, "CreateUser", &json!({"UserName": "admin"}))
        .await
        .unwrap();
    call(
        &fx,
        &root,
        C,
        "AttachUserPolicy",
        &json!({"UserName": "admin", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
    )
    .await
    .unwrap();
    let key = call(
        &fx,
        &root,
        C,
        "CreateAccessKey",
        &json!({"UserName": "admin"}),
    )
    .await
    .unwrap();
    let admin = Creds {
        id: key["AccessKey"]["AccessKeyId"].as_str().unwrap().into(),
        secret: key["AccessKey"]["SecretAccessKey"].as_str().unwrap().into(),
        token: String::new(),
    };
    call(&fx, &admin, C, "CreateUser", &json!({"UserName": "carol"}))
        .await
        .unwrap();

    // The root user manages its tenant, never the platform.
    assert_denied(
        client(&fx)
            .await
            .delete_tenant(signed_admin_request(
                pb::DeleteTenantRequest {
                    account_id: C.into(),
                },
                "DeleteTenant",
                Some(&profile(&root)),
            ))
            .await
            .map(|_| Value::Null),
        "User: arn:aws:iam::777788889999:root is not authorized to perform: iamlet:DeleteTenant",
    );
    assert_denied(
        call(
            &fx,
            &root,
            C,
            "PutServiceControlPolicy",
            &json!({"PolicyName": "x", "PolicyDocument": "{}"}),
        )
        .await,
        "User: arn:aws:iam::777788889999:root is not authorized to perform: \
         iam:PutServiceControlPolicy",
    );
    // The operator's SCP caps even the root user.
    call(
        &fx,
        &operator(),
        C,
        "PutServiceControlPolicy",
        &json!({"PolicyName": "no-user-deletes", "PolicyDocument":
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":"iam:DeleteUser","Resource":"*"}]}"#}),
    )
    .await
    .unwrap();
    assert_denied(
        call(&fx, &root, C, "DeleteUser", &json!({"UserName": "carol"})).await,
        "User: arn:aws:iam::777788889999:root is not authorized to perform: iam:DeleteUser on \
         resource: arn:aws:iam::777788889999:user/carol with an explicit deny in a service \
         control policy",
    );

    // The audit trail: who made each change; root's use is flagged in the events.
    let changes = client(&fx)
        .await
        .list_changes(signed_admin_request(
            pb::ListChangesRequest {
                tenant: C.into(),
                after_seq: 0,
                limit: 100,
            },
            "ListChanges",
            Some(&profile(&admin)),
        ))
        .await
        .unwrap()
        .into_inner()
        .changes;
    let actors: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c.action.as_str(), c.actor.as_str()))
        .collect();
    assert_eq!(
        actors,
        [
            ("CreateTenant", "operator:test"),
            ("DeleteRootAccessKey", "operator:test"),
            ("CreateRootAccessKey", "operator:test"),
            ("CreateUser", "arn:aws:iam::777788889999:root"),
            ("AttachUserPolicy", "arn:aws:iam::777788889999:root"),
            ("CreateAccessKey", "arn:aws:iam::777788889999:root"),
            ("CreateUser", "arn:aws:iam::777788889999:user/admin"),
            ("PutServiceControlPolicy", "operator:test"),
        ]
    );
    let root_events: Vec<(String, String)> = events(&fx, C)
        .await
        .into_iter()
        .filter(|e| e.root)
        .map(|e| (e.action, e.outcome))
        .collect();
    let expected: Vec<(String, String)> = [
        ("CreateUser", "Allowed"),
        ("AttachUserPolicy", "Allowed"),
        ("CreateAccessKey", "Allowed"),
        ("DeleteTenant", "AccessDenied"),
        ("PutServiceControlPolicy", "AccessDenied"),
        ("DeleteUser", "AccessDenied"),
    ]
    .iter()
    .map(|(a, o)| ((*a).to_owned(), (*o).to_owned()))
    .collect();
    assert_eq!(root_events, expected);

    // Secrets were shown once and are stored sealed: neither the audit trail, the export,
    // nor a copy of the database (with its write-ahead log) holds one in plain text.
    let export = fx.cp.export(C).unwrap().to_json().unwrap();
    let trail = format!("{changes:?}");
    let mut database = std::fs::read(&fx.db).unwrap();
    if let Ok(wal) = std::fs::read(fx.db.with_extension("db-wal")) {
        database.extend(wal);
    }
    let database = String::from_utf8_lossy(&database);
    for secret in [&root.secret, &admin.secret] {
        assert!(!export.contains(secret.as_str()));
        assert!(!trail.contains(secret.as_str()));
        assert!(
            !database.contains(secret.as_str()),
            "a secret in the database"
        );
    }
    assert!(
        database.contains(&admin.id),
        "the database is the one written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_credentials_never_act_on_another_tenant() {
    let fx = Fixture::start("admin-cross").await;
    let root_a = root(&fx, 0);
    let (_, before) = fx.cp.tenant(B).unwrap();
    assert_denied(
        call(
            &fx,
            &root_a,
            B,
            "CreateUser",
            &json!({"UserName": "intruder"}),
        )
        .await,
        "User: arn:aws:iam::111122223333:root is not authorized to act on account 444455556666",
    );
    assert_denied(
        call(&fx, &root_a, B, "ListUsers", &json!({})).await,
        "User: arn:aws:iam::111122223333:root is not authorized",
    );
    let listing = client(&fx)
        .await
        .list_changes(signed_admin_request(
            pb::ListChangesRequest {
                tenant: B.into(),
                after_seq: 0,
                limit: 10,
            },
            "ListChanges",
            Some(&profile(&root_a)),
        ))
        .await
        .unwrap_err();
    assert_eq!(aws_error_code(&listing).as_deref(), Some("AccessDenied"));
    let export = client(&fx)
        .await
        .export_tenant(signed_admin_request(
            pb::ExportTenantRequest { tenant: B.into() },
            "ExportTenant",
            Some(&profile(&root_a)),
        ))
        .await
        .unwrap_err();
    assert_eq!(aws_error_code(&export).as_deref(), Some("AccessDenied"));
    let spec = json!({"AccountId": B, "Users": [{"UserName": "intruder"}]}).to_string();
    let apply = client(&fx)
        .await
        .apply_tenant(signed_admin_request(
            pb::ApplyTenantRequest {
                spec_json: spec,
                dry_run: false,
            },
            "ApplyTenant",
            Some(&profile(&root_a)),
        ))
        .await
        .unwrap_err();
    assert_eq!(aws_error_code(&apply).as_deref(), Some("AccessDenied"));
    // A's key with B's root secret is nobody.
    let mixed = Creds {
        secret: fx.roots[1].1.clone(),
        ..root_a.clone()
    };
    assert_refused(
        call(&fx, &mixed, B, "ListUsers", &json!({})).await,
        "SignatureDoesNotMatch",
    );
    // B is as it was, and the attempts are in B's trail.
    assert_eq!(fx.cp.tenant(B).unwrap().1, before);
    let denied = events(&fx, B).await;
    assert!(denied
        .iter()
        .filter(|e| e.outcome == "AccessDenied")
        .all(|e| e.actor == "arn:aws:iam::111122223333:root"));
    assert_eq!(
        denied
            .iter()
            .filter(|e| e.outcome == "AccessDenied")
            .count(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_expired_credentials_are_refused() {
    let fx = Fixture::start("admin-tamper").await;
    let root_a = root(&fx, 0);
    let list = json!({});

    // Plain keys: a wrong secret; a deactivated key; no credentials at all.
    let plain = |creds: &Creds| {
        let mut request = tonic::Request::new(pb::CallRequest {
            tenant: A.into(),
            action: "ListUsers".into(),
            parameters_json: "{}".into(),
        });
        let metadata = request.metadata_mut();
        metadata.insert("x-iamlet-access-key-id", creds.id.parse().unwrap());
        metadata.insert("x-iamlet-secret-access-key", creds.secret.parse().unwrap());
        request
    };
    let wrong = root_a.with_secret("0000000000000000000000000000000000000000");
    let refused = client(&fx).await.call(plain(&wrong)).await.unwrap_err();
    assert_eq!(
        aws_error_code(&refused).as_deref(),
        Some("InvalidClientTokenId")
    );
    assert!(!refused.message().contains(&root_a.secret));
    client(&fx).await.call(plain(&root_a)).await.unwrap();
    let anonymous = client(&fx)
        .await
        .call(pb::CallRequest {
            tenant: A.into(),
            action: "ListUsers".into(),
            parameters_json: "{}".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        aws_error_code(&anonymous).as_deref(),
        Some("MissingAuthenticationToken")
    );

    let user = fx.user_with_key(A, "u", None);
    fx.call(
        A,
        "UpdateAccessKey",
        &json!({"UserName": "u", "AccessKeyId": user.id, "Status": "Inactive"}),
    );
    assert_refused(
        call(&fx, &user, A, "GetUser", &list).await,
        "InvalidClientTokenId",
    );

    // SigV4: a wrong secret; a signature over another message; one signed ten minutes ago.
    assert_refused(
        call(&fx, &wrong, A, "ListUsers", &list).await,
        "SignatureDoesNotMatch",
    );
    let message = |tenant: &str| pb::CallRequest {
        tenant: tenant.into(),
        action: "ListUsers".into(),
        parameters_json: "{}".into(),
    };
    let signed_for = |payload: &pb::CallRequest, at: Timestamp| {
        sign_admin_call(
            "Call",
            &prost::Message::encode_to_vec(payload),
            &root_a.id,
            &root_a.secret,
            None,
            at,
        )
    };
    let with_headers = |message: pb::CallRequest, headers: Vec<(&'static str, String)>| {
        let mut request = tonic::Request::new(message);
        for (name, value) in headers {
            request.metadata_mut().insert(name, value.parse().unwrap());
        }
        request
    };
    let swapped = with_headers(message(B), signed_for(&message(A), Timestamp::now()));
    let refused = client(&fx).await.call(swapped).await.unwrap_err();
    assert_eq!(
        aws_error_code(&refused).as_deref(),
        Some("SignatureDoesNotMatch")
    );
    let old = Timestamp::from_epoch_seconds(Timestamp::now().epoch_seconds() - 600);
    let stale = with_headers(message(A), signed_for(&message(A), old));
    let refused = client(&fx).await.call(stale).await.unwrap_err();
    assert_eq!(
        aws_error_code(&refused).as_deref(),
        Some("SignatureDoesNotMatch")
    );
    assert!(
        refused.message().starts_with("Signature expired"),
        "{refused:?}"
    );
    let fresh = with_headers(message(A), signed_for(&message(A), Timestamp::now()));
    client(&fx).await.call(fresh).await.unwrap();

    // A role session: genuine, then with its token tampered with.
    let (role_arn, caller) = iam_admin_role(&fx).await;
    let session = fx.session(&caller, &role_arn, "s1").await;
    call(&fx, &session, A, "ListUsers", &list).await.unwrap();
    let mut token = session.token.clone().into_bytes();
    let at = token.len() - 10;
    token[at] = if token[at] == b'A' { b'B' } else { b'A' };
    let tampered = Creds {
        token: String::from_utf8(token).unwrap(),
        ..session.clone()
    };
    assert_refused(
        call(&fx, &tampered, A, "ListUsers", &list).await,
        "InvalidClientTokenId",
    );

    // Each failure is in the trail with the key id, never a secret.
    let failures: Vec<_> = events(&fx, A)
        .await
        .into_iter()
        .filter(|e| e.outcome == "AuthFailure")
        .collect();
    assert_eq!(failures.len(), 6, "{failures:?}");
    for event in &failures {
        assert!(event.actor.starts_with("AKIA") || event.actor.starts_with("ASIA"));
        assert!(!format!("{event:?}").contains(&root_a.secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_sessions_act_with_their_role_and_session_policy() {
    let fx = Fixture::start("admin-session").await;
    let (role_arn, caller) = iam_admin_role(&fx).await;
    let full = fx.session(&caller, &role_arn, "full").await;
    call(
        &fx,
        &full,
        A,
        "CreateUser",
        &json!({"UserName": "made-by-role"}),
    )
    .await
    .unwrap();
    let changes = fx.cp.changes(A, 0, 100).unwrap();
    assert_eq!(
        changes.last().unwrap().actor,
        "arn:aws:sts::111122223333:assumed-role/iam-admin/full"
    );

    // A session policy narrows the session to reading.
    let issued = fx
        .assume_role(pb::AssumeRoleRequest {
            caller: caller.sts(),
            role_arn: role_arn.clone(),
            role_session_name: "read".into(),
            policy: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:List*","Resource":"*"}]}"#.into(),
            ..pb::AssumeRoleRequest::default()
        })
        .await
        .unwrap();
    let c = issued.credentials.unwrap();
    let read = Creds {
        id: c.access_key_id,
        secret: c.secret_access_key,
        token: c.session_token,
    };
    call(&fx, &read, A, "ListUsers", &json!({})).await.unwrap();
    assert_denied(
        call(&fx, &read, A, "CreateUser", &json!({"UserName": "nope"})).await,
        "User: arn:aws:sts::111122223333:assumed-role/iam-admin/read is not authorized to \
         perform: iam:CreateUser on resource: arn:aws:iam::111122223333:user/nope because no \
         session policy allows the iam:CreateUser action",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changes_its_own_password_with_the_predefined_policy() {
    let fx = Fixture::start("admin-password").await;
    let carol = fx.user_with_key(A, "carol", None);
    fx.user_with_key(A, "dave", None);
    for user in ["carol", "dave"] {
        fx.call(
            A,
            "CreateLoginProfile",
            &json!({"UserName": user, "Password": "First-Passw0rd!", "PasswordResetRequired": true}),
        );
    }
    let change =
        |old: &str, new: &str| json!({"OldPassword": old, "NewPassword": new, "UserName": "dave"});
    // Nothing attached: not even one's own password.
    assert_denied(
        call(
            &fx,
            &carol,
            A,
            "ChangePassword",
            &change("First-Passw0rd!", "Second-Passw0rd!"),
        )
        .await,
        "User: arn:aws:iam::111122223333:user/carol is not authorized to perform: \
         iam:ChangePassword on resource: arn:aws:iam::111122223333:user/carol",
    );
    call(
        &fx,
        &root(&fx, 0),
        A,
        "AttachUserPolicy",
        &json!({"UserName": "carol", "PolicyArn": "arn:aws:iam::aws:policy/IAMUserChangePassword"}),
    )
    .await
    .unwrap();
    let wrong = call(
        &fx,
        &carol,
        A,
        "ChangePassword",
        &change("Guess-Passw0rd!", "Second-Passw0rd!"),
    )
    .await
    .unwrap_err();
    assert_eq!(aws_error_code(&wrong).as_deref(), Some("AccessDenied"));
    // The `UserName` sent is ignored: a user changes its own password only.
    call(
        &fx,
        &carol,
        A,
        "ChangePassword",
        &change("First-Passw0rd!", "Second-Passw0rd!"),
    )
    .await
    .unwrap();
    let tenant = fx.cp.tenant(A).unwrap().0;
    let profile = |user: &str| tenant.users[user].login_profile.clone().unwrap();
    assert!(iamlet::directory::verify_password(
        &profile("carol").password_hash,
        "Second-Passw0rd!"
    ));
    assert!(!profile("carol").password_reset_required);
    assert!(iamlet::directory::verify_password(
        &profile("dave").password_hash,
        "First-Passw0rd!"
    ));
    // Nobody else's, and never in the audit trail.
    assert_denied(
        call(
            &fx,
            &carol,
            A,
            "UpdateLoginProfile",
            &json!({"UserName": "dave", "Password": "Taken-Passw0rd!"}),
        )
        .await,
        "User: arn:aws:iam::111122223333:user/carol is not authorized to perform: \
         iam:UpdateLoginProfile",
    );
    let trail = format!("{:?}", fx.cp.changes(A, 0, 100).unwrap());
    assert!(trail.contains("ChangePassword"));
    assert!(!trail.contains("Second-Passw0rd!"));
    // The root user is not an IAM user.
    let refused = call(&fx, &root(&fx, 0), A, "ChangePassword", &change("a", "b"))
        .await
        .unwrap_err();
    assert_eq!(aws_error_code(&refused).as_deref(), Some("InvalidUserType"));
}

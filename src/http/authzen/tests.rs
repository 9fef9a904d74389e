use super::*;

use crate::policy::KeyValues;

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";

fn one(body: &Value) -> Result<AuthorizeInput, AuthZenError> {
    AccessEvaluation::try_from(body).map(|e| e.0)
}

fn member_of_error(e: AuthZenError) -> String {
    match e {
        AuthZenError::Invalid { member, .. } => member,
        other => panic!("not an invalid member: {other}"),
    }
}

fn single(context: &Value) -> Value {
    json!({
        "subject": {"type": "iam_principal", "id": ALICE},
        "action": {"name": "s3:GetObject"},
        "resource": {"type": "s3_object", "id": "demo-data/home/alice/notes.txt"},
        "context": context,
    })
}

#[test]
fn a_principal_subject_maps_to_its_arn_and_s3_types_to_their_arns() {
    let input = one(&single(&json!({}))).unwrap();
    assert!(matches!(&input.caller, CallerId::PrincipalArn(a) if a == ALICE));
    assert_eq!(input.action, "s3:GetObject");
    assert_eq!(
        input.resource,
        "arn:aws:s3:::demo-data/home/alice/notes.txt"
    );
    let bucket = |kind: &str, id: &str| {
        let mut body = single(&json!({}));
        body["resource"] = json!({"type": kind, "id": id});
        one(&body)
    };
    assert_eq!(
        bucket("s3_bucket", "demo-data").unwrap().resource,
        "arn:aws:s3:::demo-data"
    );
    assert_eq!(bucket("queue", "*").unwrap().resource, "*");
    assert_eq!(
        bucket("queue", "arn:aws:sqs:us-east-1:111122223333:q")
            .unwrap()
            .resource,
        "arn:aws:sqs:us-east-1:111122223333:q"
    );
    assert_eq!(
        member_of_error(bucket("queue", "q").unwrap_err()),
        "resource.id"
    );
    assert_eq!(
        member_of_error(bucket("s3_bucket", "a/b").unwrap_err()),
        "resource.id"
    );
    assert_eq!(
        member_of_error(bucket("s3_object", "bucket").unwrap_err()),
        "resource.id"
    );
    // `properties.arn` wins over the id.
    let mut body = single(&json!({}));
    body["resource"] =
        json!({"type": "queue", "id": "q", "properties": {"arn": "arn:aws:sqs:::q"}});
    assert_eq!(one(&body).unwrap().resource, "arn:aws:sqs:::q");
}

#[test]
fn an_access_key_subject_carries_its_secret_and_token() {
    let mut body = single(&json!({}));
    body["subject"] = json!({"type": "access_key", "id": "AKIAEXAMPLE",
        "properties": {"secret_access_key": "s3cr3t", "session_token": "tok"}});
    match one(&body).unwrap().caller {
        CallerId::Keys {
            access_key_id,
            secret,
            session_token,
        } => {
            assert_eq!(access_key_id, "AKIAEXAMPLE");
            assert_eq!(secret, "s3cr3t");
            assert_eq!(session_token.as_deref(), Some("tok"));
        }
        other => panic!("{other:?}"),
    }
    body["subject"]["properties"] = json!({"access_key_id": "OTHER", "secret_access_key": "s"});
    assert_eq!(
        member_of_error(one(&body).unwrap_err()),
        "subject.properties.access_key_id"
    );
    body["subject"]["properties"] = json!({});
    let e = one(&body).unwrap_err();
    assert_eq!(
        e.to_string(),
        "subject.properties.secret_access_key: missing"
    );
}

#[test]
fn context_values_become_condition_keys_and_objects_are_refused() {
    let input = one(&single(&json!({
        "aws:SourceIp": "10.1.2.3",
        "s3:max-keys": 10,
        "aws:SecureTransport": true,
        "aws:TagKeys": ["a", "b"],
    })))
    .unwrap();
    let get = |k: &str| input.context.get(k);
    assert!(matches!(get("aws:sourceip"), Some(KeyValues::Single(v)) if v.as_str() == "10.1.2.3"));
    assert!(matches!(get("s3:max-keys"), Some(KeyValues::Single(v)) if v.as_str() == "10"));
    assert!(
        matches!(get("aws:securetransport"), Some(KeyValues::Single(v)) if v.as_str() == "true")
    );
    assert!(matches!(get("aws:tagkeys"), Some(KeyValues::Multi(vs)) if vs.len() == 2));
    for bad in [
        json!({"k": {"nested": 1}}),
        json!({"k": [[1]]}),
        json!({"k": null}),
        json!({"k": [{"a": 1}]}),
    ] {
        assert_eq!(
            member_of_error(one(&single(&bad)).unwrap_err()),
            "context.k"
        );
    }
    assert_eq!(
        member_of_error(one(&single(&json!([1]))).unwrap_err()),
        "context"
    );
    let e = one(&single(&json!({"A:b": "1", "a:B": "2"}))).unwrap_err();
    assert!(e.to_string().starts_with("context: "), "{e}");
    let e = one(&single(&json!({"k": "x".repeat(5000)}))).unwrap_err();
    assert!(e.to_string().contains("longer than 4096"), "{e}");
}

#[test]
fn missing_and_mistyped_members_are_named() {
    let cases = [
        (
            json!({"action": {"name": "a:b"}, "resource": {"type": "t", "id": "*"}}),
            "subject",
        ),
        (
            json!({"subject": {"type": "iam_principal"}, "action": {"name": "a:b"}, "resource": {"type": "t", "id": "*"}}),
            "subject.id",
        ),
        (
            json!({"subject": {"type": "user", "id": "x"}, "action": {"name": "a:b"}, "resource": {"type": "t", "id": "*"}}),
            "subject.type",
        ),
        (
            json!({"subject": {"type": "iam_principal", "id": ALICE}, "action": {"name": 1}, "resource": {"type": "t", "id": "*"}}),
            "action.name",
        ),
        (
            json!({"subject": {"type": "iam_principal", "id": ALICE}, "action": "a:b", "resource": {"type": "t", "id": "*"}}),
            "action",
        ),
        (
            json!({"subject": {"type": "iam_principal", "id": ALICE}, "action": {"name": "a:b"}, "resource": {"id": "*"}}),
            "resource.type",
        ),
    ];
    for (body, member) in cases {
        assert_eq!(member_of_error(one(&body).unwrap_err()), member);
    }
    assert_eq!(member_of_error(one(&json!([])).unwrap_err()), "request");
}

#[test]
fn evaluations_inherit_the_top_level_members_and_may_replace_them() {
    let body = json!({
        "subject": {"type": "iam_principal", "id": ALICE},
        "action": {"name": "s3:GetObject"},
        "context": {"k": "top"},
        "evaluations": [
            {"resource": {"type": "s3_object", "id": "b/1"}},
            {"resource": {"type": "s3_object", "id": "b/2"}, "action": {"name": "s3:PutObject"},
             "context": {"j": "own"}},
        ],
        "options": {"evaluations_semantic": "permit_on_first_permit"},
    });
    let request = AccessEvaluations::try_from(&body).unwrap();
    assert!(request.batch);
    assert_eq!(request.semantic, EvaluationsSemantic::PermitOnFirstPermit);
    let [first, second] = request.inputs.as_slice() else {
        panic!("two evaluations");
    };
    assert_eq!(
        (first.action.as_str(), first.resource.as_str()),
        ("s3:GetObject", "arn:aws:s3:::b/1")
    );
    assert!(first.context.get("k").is_some());
    assert_eq!(
        (second.action.as_str(), second.resource.as_str()),
        ("s3:PutObject", "arn:aws:s3:::b/2")
    );
    // A context of its own replaces the default, as every member does.
    assert!(second.context.get("k").is_none() && second.context.get("j").is_some());

    // A member missing everywhere is named where the evaluation would have given it.
    let body = json!({"subject": {"type": "iam_principal", "id": ALICE},
        "evaluations": [{"action": {"name": "a:b"}, "resource": {"type": "t", "id": "*"}},
                        {"action": {"name": "a:b"}, "resource": {"type": "t", "id": 7}}]});
    assert_eq!(
        member_of_error(AccessEvaluations::try_from(&body).unwrap_err()),
        "evaluations[1].resource.id"
    );
    let body =
        json!({"evaluations": [{"action": {"name": "a:b"}, "resource": {"type": "t", "id": "*"}}]});
    assert_eq!(
        member_of_error(AccessEvaluations::try_from(&body).unwrap_err()),
        "subject"
    );
}

#[test]
fn evaluations_without_a_list_are_one_evaluation_and_options_are_checked() {
    let request = AccessEvaluations::try_from(&single(&json!({}))).unwrap();
    assert!(!request.batch);
    assert_eq!(request.inputs.len(), 1);
    assert_eq!(request.semantic, EvaluationsSemantic::ExecuteAll);
    let mut body = single(&json!({}));
    body["options"] = json!({"evaluations_semantic": "first_wins"});
    assert_eq!(
        member_of_error(AccessEvaluations::try_from(&body).unwrap_err()),
        "options.evaluations_semantic"
    );
    body["options"] = json!({"evaluations_semantic": "deny_on_first_deny", "other": 1});
    assert_eq!(
        AccessEvaluations::try_from(&body).unwrap().semantic,
        EvaluationsSemantic::DenyOnFirstDeny
    );
    body["evaluations"] = json!({});
    assert_eq!(
        member_of_error(AccessEvaluations::try_from(&body).unwrap_err()),
        "evaluations"
    );
    body["evaluations"] = Value::Array(vec![json!({}); MAX_BATCH + 1]);
    assert!(matches!(
        AccessEvaluations::try_from(&body),
        Err(AuthZenError::TooManyEvaluations(n)) if n == MAX_BATCH + 1
    ));
}

#[test]
fn semantics_stop_where_the_spec_says() {
    use EvaluationsSemantic::*;
    assert!(!ExecuteAll.stops_after(true) && !ExecuteAll.stops_after(false));
    assert!(DenyOnFirstDeny.stops_after(false) && !DenyOnFirstDeny.stops_after(true));
    assert!(PermitOnFirstPermit.stops_after(true) && !PermitOnFirstPermit.stops_after(false));
}

#[test]
fn domain_fields_are_named_as_authzen_members_and_secrets_never_echo() {
    let e = ApiError::invalid("principal_arn", "not an ARN");
    assert_eq!(error_object(&e)["message"], "subject.id: not an ARN");
    assert_eq!(error_object(&e)["status"], 400);
    let refusal = render_refusal(&ApiError::UnknownTenant("999999999999".into()));
    assert_eq!(refusal["decision"], false);
    assert_eq!(refusal["context"]["error"]["code"], "NoSuchTenant");
    // A decoded access key's Debug output names the key id only.
    let mut body = single(&json!({}));
    body["subject"] = json!({"type": "access_key", "id": "AKIAEXAMPLE",
        "properties": {"secret_access_key": "very-secret-value"}});
    let debug = format!("{:?}", one(&body).unwrap());
    assert!(!debug.contains("very-secret-value"), "{debug}");
}

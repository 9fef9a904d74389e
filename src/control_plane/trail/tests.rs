use super::*;

const A: &str = "111122223333";
const NOW_MS: i64 = 1_800_000_000_000;

fn sts_event(id: &str, at_ms: i64) -> TrailEvent {
    TrailEvent {
        account_id: A.into(),
        event_id: id.into(),
        at_ms,
        event_name: "AssumeRole".into(),
        identity: TrailIdentity {
            kind: "IAMUser".into(),
            principal_id: "AIDAEXAMPLE".into(),
            arn: format!("arn:aws:iam::{A}:user/alice"),
            account_id: A.into(),
            access_key_id: "AKIAALICEEXAMPLE0001".into(),
            user_name: "alice".into(),
            ..TrailIdentity::default()
        },
        request_parameters: json!({
            "roleArn": format!("arn:aws:iam::{A}:role/app"),
            "roleSessionName": "s",
            "webIdentityToken": "eyJ.token.sig",
            "tokenCode": "123456",
        })
        .to_string(),
        response_elements: json!({
            "credentials": {
                "accessKeyId": "ASIASESSIONEXAMPLE01",
                "expiration": "2027-01-15T08:00:00Z",
                "secretAccessKey": "session-secret",
                "sessionToken": "session-token",
            },
            "assumedRoleUser": {"assumedRoleId": "AROA:s", "arn": format!("arn:aws:sts::{A}:assumed-role/app/s")},
        })
        .to_string(),
        region: "eu-west-1".into(),
        ..TrailEvent::default()
    }
}

fn record(r: &TrailRecord) -> Value {
    serde_json::from_str(&r.record).unwrap()
}

#[test]
fn an_sts_record_is_cloudtrails_shape_with_named_members_only() {
    let e = sts_event("id-1", NOW_MS);
    validate(&e, NOW_MS).unwrap();
    let stored = sts_record(&e);
    assert_eq!(stored.event_id, "id-1");
    assert_eq!(stored.at_ms, NOW_MS);
    let r = record(&stored);
    assert_eq!(r["eventVersion"], "1.08");
    assert_eq!(r["eventSource"], "sts.amazonaws.com");
    assert_eq!(r["eventName"], "AssumeRole");
    assert_eq!(r["awsRegion"], "eu-west-1");
    assert_eq!(r["eventTime"], "2027-01-15T08:00:00Z");
    assert_eq!(r["readOnly"], true);
    assert_eq!(r["eventType"], "AwsApiCall");
    assert_eq!(r["managementEvent"], true);
    assert_eq!(r["eventCategory"], "Management");
    assert_eq!(r["recipientAccountId"], A);
    assert_eq!(r["userIdentity"]["accessKeyId"], "AKIAALICEEXAMPLE0001");
    assert_eq!(
        r["requestParameters"],
        json!({"roleArn": format!("arn:aws:iam::{A}:role/app"), "roleSessionName": "s"})
    );
    assert_eq!(
        r["responseElements"]["credentials"],
        json!({"accessKeyId": "ASIASESSIONEXAMPLE01", "expiration": "2027-01-15T08:00:00Z"})
    );
    for secret in ["eyJ.token.sig", "123456", "session-secret", "session-token"] {
        assert!(!stored.record.contains(secret), "{secret}");
    }
    assert_eq!(r["resources"][0]["type"], "AWS::IAM::Role");
    assert_eq!(r["resources"][1]["type"], "AWS::IAM::AccessKey");
}

#[test]
fn a_session_caller_has_its_session_context() {
    let mut e = sts_event("id-1", NOW_MS);
    e.identity = TrailIdentity {
        kind: "AssumedRole".into(),
        principal_id: "AROAEXAMPLE:s".into(),
        arn: format!("arn:aws:sts::{A}:assumed-role/app/s"),
        account_id: A.into(),
        access_key_id: "ASIAEXAMPLEEXAMPLE01".into(),
        issuer_type: "Role".into(),
        issuer_arn: format!("arn:aws:iam::{A}:role/app"),
        issuer_principal_id: "AROAEXAMPLE".into(),
        issuer_user_name: "app".into(),
        session_created_ms: NOW_MS - 60_000,
        mfa_authenticated: true,
        ..TrailIdentity::default()
    };
    let r = record(&sts_record(&e));
    let context = &r["userIdentity"]["sessionContext"];
    assert_eq!(
        context["sessionIssuer"]["arn"],
        format!("arn:aws:iam::{A}:role/app")
    );
    assert_eq!(context["sessionIssuer"]["userName"], "app");
    assert_eq!(context["attributes"]["mfaAuthenticated"], "true");
    assert_eq!(
        context["attributes"]["creationDate"],
        "2027-01-15T07:59:00Z"
    );
}

#[test]
fn malformed_events_are_refused() {
    type Change = Box<dyn Fn(&mut TrailEvent)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "name",
            Box::new(|e| e.event_name = "GetCallerIdentity".into()),
        ),
        ("empty id", Box::new(|e| e.event_id.clear())),
        ("id", Box::new(|e| e.event_id = "a b".into())),
        ("future", Box::new(|e| e.at_ms = NOW_MS + 3_600_000)),
        ("epoch", Box::new(|e| e.at_ms = 0)),
        ("json", Box::new(|e| e.request_parameters = "[1]".into())),
        ("long", Box::new(|e| e.user_agent = "x".repeat(5_000))),
        ("control", Box::new(|e| e.user_agent = "a\nb".into())),
        ("type", Box::new(|e| e.identity.kind = "Admin".into())),
        (
            "account",
            Box::new(|e| e.identity.account_id = "444455556666".into()),
        ),
    ];
    for (what, change) in cases {
        let mut e = sts_event("id-1", NOW_MS);
        change(&mut e);
        assert!(
            matches!(validate(&e, NOW_MS), Err(TrailEventError::Malformed(_))),
            "{what}"
        );
    }
}

fn change(seq: u64, at: i64, action: &str, parameters: Value) -> ChangeRecord {
    ChangeRecord {
        account_id: A.into(),
        seq,
        at,
        actor: format!("arn:aws:iam::{A}:user/admin"),
        action: action.into(),
        parameters,
    }
}

#[test]
fn admin_changes_and_denials_are_iam_events_with_stable_ids() {
    let c = change(
        7,
        1_800_000_000,
        "CreateLoginProfile",
        json!({"UserName": "bob", "Password": "<redacted>"}),
    );
    let stored = change_record(&c);
    assert_eq!(stored.event_id, change_record(&c).event_id);
    assert_ne!(
        stored.event_id,
        change_record(&change(8, 1_800_000_000, "CreateUser", json!({}))).event_id
    );
    let r = record(&stored);
    assert_eq!(r["eventSource"], "iam.amazonaws.com");
    assert_eq!(r["readOnly"], false);
    assert_eq!(r["userIdentity"]["type"], "IAMUser");
    assert_eq!(r["userIdentity"]["userName"], "admin");
    assert_eq!(
        r["requestParameters"],
        json!({"userName": "bob", "password": "<redacted>"})
    );
    assert_eq!(
        r["resources"][0],
        json!({"ARN": "bob", "accountId": A, "type": "AWS::IAM::User"})
    );

    let mut denied = AuditEvent {
        account_id: A.into(),
        id: 3,
        at: 1_800_000_100,
        actor: format!("arn:aws:iam::{A}:user/mallory"),
        action: "DeleteUser".into(),
        outcome: "AccessDenied".into(),
        root: false,
        detail: "User: ... is not authorized to perform: iam:DeleteUser".into(),
        source: "10.0.0.7".into(),
    };
    let r = record(&denied_record(&denied).unwrap());
    assert_eq!(r["errorCode"], "AccessDenied");
    assert_eq!(r["sourceIPAddress"], "10.0.0.7");
    assert_eq!(r["eventName"], "DeleteUser");
    denied.outcome = "AuthFailure".into();
    assert!(denied_record(&denied).is_none());
}

fn records() -> Vec<TrailRecord> {
    let mut all = vec![
        change_record(&change(
            1,
            1_799_999_000,
            "CreateUser",
            json!({"UserName": "alice"}),
        )),
        change_record(&change(
            2,
            1_799_999_010,
            "CreateRole",
            json!({"RoleName": "app"}),
        )),
    ];
    for n in 0..5 {
        all.push(sts_record(&sts_event(
            &format!("sts-{n}"),
            NOW_MS + n * 1_000,
        )));
    }
    all
}

fn params(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["EventId"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn lookup_pages_newest_first_and_filters_by_one_attribute_and_time() {
    let now = NOW_MS + 3_600_000;
    let l = read_lookup(&params(json!({"MaxResults": 2})), now).unwrap();
    let first = lookup(records(), &l);
    assert_eq!(ids(&first), ["sts-4", "sts-3"]);
    let token = first["NextToken"].as_str().unwrap();
    let l = read_lookup(&params(json!({"MaxResults": 2, "NextToken": token})), now).unwrap();
    let second = lookup(records(), &l);
    assert_eq!(ids(&second), ["sts-2", "sts-1"]);
    // Paging to the end sees every event once.
    let mut seen = ids(&first);
    let mut page = first;
    while let Some(token) = page.get("NextToken").and_then(Value::as_str) {
        let l = read_lookup(&params(json!({"MaxResults": 2, "NextToken": token})), now).unwrap();
        page = lookup(records(), &l);
        seen.extend(ids(&page));
    }
    assert_eq!(seen.len(), 7);

    let by = |key: &str, value: &str| {
        let l = read_lookup(
            &params(json!({"LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}]})),
            now,
        )
        .unwrap();
        lookup(records(), &l)["Events"].as_array().unwrap().len()
    };
    assert_eq!(by("EventName", "AssumeRole"), 5);
    assert_eq!(by("EventName", "CreateUser"), 1);
    assert_eq!(by("Username", "alice"), 5);
    assert_eq!(by("Username", "admin"), 2);
    assert_eq!(by("AccessKeyId", "AKIAALICEEXAMPLE0001"), 5);
    assert_eq!(by("EventSource", "iam.amazonaws.com"), 2);
    assert_eq!(by("ReadOnly", "false"), 2);
    assert_eq!(by("ReadOnly", "true"), 5);
    assert_eq!(by("ResourceType", "AWS::IAM::Role"), 6);
    assert_eq!(by("ResourceName", "alice"), 1);
    assert_eq!(by("EventId", "sts-3"), 1);

    // The time range: inclusive at both ends.
    let l = read_lookup(
        &params(json!({"StartTime": (NOW_MS + 1_000) / 1_000, "EndTime": "2027-01-15T08:00:02Z"})),
        now,
    )
    .unwrap();
    assert_eq!(ids(&lookup(records(), &l)), ["sts-2", "sts-1"]);
    let page = lookup(records(), &l);
    let event = &page["Events"][0];
    assert_eq!(event["EventTime"], "2027-01-15T08:00:02Z");
    assert_eq!(event["ReadOnly"], "true");
    assert_eq!(event["Username"], "alice");
    assert!(event["CloudTrailEvent"].is_string());
}

#[test]
fn bad_lookups_get_cloudtrails_codes() {
    let code = |p: Value| read_lookup(&params(p), NOW_MS).unwrap_err().code();
    assert_eq!(
        code(json!({"LookupAttributes": [
            {"AttributeKey": "EventName", "AttributeValue": "AssumeRole"},
            {"AttributeKey": "Username", "AttributeValue": "alice"},
        ]})),
        AwsCode::InvalidLookupAttributesException
    );
    assert_eq!(
        code(json!({"LookupAttributes": [{"AttributeKey": "Colour", "AttributeValue": "x"}]})),
        AwsCode::InvalidLookupAttributesException
    );
    assert_eq!(
        code(json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": ""}]})),
        AwsCode::InvalidLookupAttributesException
    );
    assert_eq!(
        code(json!({"StartTime": 2_000_000_000, "EndTime": 1_000_000_000})),
        AwsCode::InvalidTimeRangeException
    );
    assert_eq!(
        code(json!({"MaxResults": 0})),
        AwsCode::InvalidMaxResultsException
    );
    assert_eq!(
        code(json!({"MaxResults": 51})),
        AwsCode::InvalidMaxResultsException
    );
    assert_eq!(
        code(json!({"NextToken": "not a token"})),
        AwsCode::InvalidNextTokenException
    );
    assert_eq!(
        code(json!({"StartTime": "yesterday"})),
        AwsCode::InvalidParameterValue
    );
    // The defaults: the last 90 days, 50 a page.
    let l = read_lookup(&Map::new(), NOW_MS).unwrap();
    assert_eq!(l.max_results, 50);
    assert_eq!(l.end_ms, NOW_MS);
    assert_eq!(l.start_ms, NOW_MS - 90 * 86_400_000);
}

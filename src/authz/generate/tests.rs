use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const OBJECT: &str = "arn:${Partition}:s3:::${BucketName}/${ObjectName}";
const BUCKET: &str = "arn:${Partition}:s3:::${BucketName}";
const ROLE: &str = "arn:${Partition}:iam::${Account}:role/${RoleNameWithPath}";
const TABLE: &str = "arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}";
const INDEX: &str =
    "arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}/index/${IndexName}";

/// A few actions as the AWS catalogue describes them.
struct Fake;

impl DescribeAction for Fake {
    fn describe(&self, action: &str) -> Option<ActionShape> {
        let (canonical, formats): (&str, &[&str]) = match action.to_ascii_lowercase().as_str() {
            "s3:getobject" => ("s3:GetObject", &[OBJECT]),
            "s3:putobject" => ("s3:PutObject", &[OBJECT]),
            "s3:listbucket" => ("s3:ListBucket", &[BUCKET]),
            "s3:listallmybuckets" => ("s3:ListAllMyBuckets", &[]),
            "iam:getrole" => ("iam:GetRole", &[ROLE]),
            "sts:assumerole" => ("sts:AssumeRole", &[ROLE]),
            "dynamodb:getitem" => ("dynamodb:GetItem", &[TABLE]),
            "dynamodb:query" => ("dynamodb:Query", &[TABLE, INDEX]),
            _ => return None,
        };
        Some(ActionShape {
            canonical: canonical.to_owned(),
            resource_formats: formats.iter().map(|f| (*f).to_owned()).collect(),
        })
    }
}

fn gen(pairs: &[(&str, &str)]) -> GeneratedPolicy {
    generate(pairs.iter().copied(), &Fake, GenerateOptions::default()).unwrap()
}

fn allows(policy: &GeneratedPolicy, action: &str, resource: &str) -> bool {
    let compiled = Arc::new(policy.compile("generated"));
    replay(&compiled, ALICE, action, resource).unwrap() == Outcome::Allow
}

#[test]
fn statements_group_by_service_then_resource_set_in_canonical_case() {
    let policy = gen(&[
        ("S3:getobject", "arn:aws:s3:::photos/a.jpg"),
        ("s3:PutObject", "arn:aws:s3:::photos/a.jpg"),
        ("s3:listallmybuckets", "*"),
        ("s3:ListBucket", "arn:aws:s3:::photos"),
        ("iam:GetRole", "arn:aws:iam::111122223333:role/app"),
        ("s3:GetObject", "arn:aws:s3:::photos/a.jpg"),
    ]);
    assert_eq!(
        policy.json,
        json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iam:GetRole",
                 "Resource": "arn:aws:iam::111122223333:role/app"},
                {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::photos"},
                {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                 "Resource": "arn:aws:s3:::photos/a.jpg"},
            ]
        })
    );
    assert_eq!(policy.pairs, 5);
    // The identity-policy rules of `iamlet policy validate` accept it, size quota included.
    let text = policy.to_pretty();
    PolicyDocument::parse(&text, PolicyKind::Identity).unwrap();
}

#[test]
fn many_objects_of_one_bucket_become_the_bucket_wildcard_few_stay_exact() {
    let policy = gen(&[
        ("s3:GetObject", "arn:aws:s3:::photos/a.jpg"),
        ("s3:GetObject", "arn:aws:s3:::photos/b.jpg"),
        ("s3:GetObject", "arn:aws:s3:::photos/2024/c.jpg"),
        ("s3:GetObject", "arn:aws:s3:::logs/x"),
        ("s3:GetObject", "arn:aws:s3:::logs/y"),
    ]);
    assert_eq!(
        policy.json["Statement"][0]["Resource"],
        json!([
            "arn:aws:s3:::logs/x",
            "arn:aws:s3:::logs/y",
            "arn:aws:s3:::photos/*"
        ])
    );
    assert!(allows(
        &policy,
        "s3:GetObject",
        "arn:aws:s3:::photos/unseen"
    ));
    assert!(!allows(&policy, "s3:GetObject", "arn:aws:s3:::logs/z"));
    assert!(!allows(&policy, "s3:GetObject", "arn:aws:s3:::other/a.jpg"));
    assert!(!allows(
        &policy,
        "s3:PutObject",
        "arn:aws:s3:::photos/a.jpg"
    ));
}

#[test]
fn the_threshold_is_the_number_of_distinct_values_and_zero_never_generalises() {
    let pairs = [
        ("s3:GetObject", "arn:aws:s3:::photos/a"),
        ("s3:GetObject", "arn:aws:s3:::photos/b"),
        ("s3:GetObject", "arn:aws:s3:::photos/a"),
    ];
    let two = generate(pairs, &Fake, GenerateOptions { generalise_at: 2 }).unwrap();
    assert_eq!(
        two.json["Statement"][0]["Resource"],
        "arn:aws:s3:::photos/*"
    );
    let three = generate(pairs, &Fake, GenerateOptions { generalise_at: 3 }).unwrap();
    assert_eq!(
        three.json["Statement"][0]["Resource"],
        json!(["arn:aws:s3:::photos/a", "arn:aws:s3:::photos/b"])
    );
    let many: Vec<String> = (0..50)
        .map(|i| format!("arn:aws:s3:::photos/{i}"))
        .collect();
    let never = generate(
        many.iter().map(|r| ("s3:GetObject", r.as_str())),
        &Fake,
        GenerateOptions { generalise_at: 0 },
    )
    .unwrap();
    assert_eq!(
        never.json["Statement"][0]["Resource"]
            .as_array()
            .map(Vec::len),
        Some(50)
    );
}

#[test]
fn never_generalised_across_accounts_regions_or_resource_types() {
    let policy = gen(&[
        (
            "dynamodb:GetItem",
            "arn:aws:dynamodb:us-east-1:111122223333:table/a",
        ),
        (
            "dynamodb:GetItem",
            "arn:aws:dynamodb:us-east-1:111122223333:table/b",
        ),
        (
            "dynamodb:GetItem",
            "arn:aws:dynamodb:eu-west-1:111122223333:table/c",
        ),
        (
            "dynamodb:GetItem",
            "arn:aws:dynamodb:us-east-1:444455556666:table/d",
        ),
        // Three tables in as many regions: the region never becomes `*`.
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:us-east-1:111122223333:table/t",
        ),
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:eu-west-1:111122223333:table/t",
        ),
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:ap-south-1:111122223333:table/t",
        ),
        // A table and two of its indexes are two resource types: nothing merges.
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:us-east-1:111122223333:table/u/index/i1",
        ),
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:us-east-1:111122223333:table/u/index/i2",
        ),
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:us-east-1:111122223333:table/u",
        ),
    ]);
    let statements = policy.json["Statement"].as_array().unwrap();
    let all: Vec<&str> = statements
        .iter()
        .flat_map(|s| match &s["Resource"] {
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
            other => other.as_str().into_iter().collect::<Vec<_>>(),
        })
        .collect();
    assert!(all.iter().all(|r| !r.contains('*')), "{all:?}");
    assert_eq!(all.len(), 10);
}

#[test]
fn many_values_of_a_middle_variable_generalise_that_variable_only() {
    let policy = gen(&[
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:us-east-1:111122223333:table/a/index/byDate",
        ),
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:us-east-1:111122223333:table/b/index/byDate",
        ),
        (
            "dynamodb:Query",
            "arn:aws:dynamodb:us-east-1:111122223333:table/c/index/byDate",
        ),
    ]);
    assert_eq!(
        policy.json["Statement"][0]["Resource"],
        "arn:aws:dynamodb:us-east-1:111122223333:table/*/index/byDate"
    );
}

#[test]
fn wildcard_and_variable_characters_of_a_seen_arn_match_only_themselves() {
    let seen = "arn:aws:s3:::photos/what?*${aws:username}";
    let policy = gen(&[("s3:GetObject", seen), ("zz:Unknown", "arn:aws:zz:::a*b")]);
    assert!(allows(&policy, "s3:GetObject", seen));
    assert!(!allows(
        &policy,
        "s3:GetObject",
        "arn:aws:s3:::photos/whatX*${aws:username}"
    ));
    assert!(!allows(
        &policy,
        "s3:GetObject",
        "arn:aws:s3:::photos/what?anything"
    ));
    assert!(allows(&policy, "zz:Unknown", "arn:aws:zz:::a*b"));
    assert!(!allows(&policy, "zz:Unknown", "arn:aws:zz:::aXXb"));
}

#[test]
fn without_the_catalogue_actions_and_resources_are_kept_as_seen() {
    let policy = generate(
        [
            ("S3:GetObject", "arn:aws:s3:::photos/a"),
            ("s3:GetObject", "arn:aws:s3:::photos/b"),
            ("s3:GetObject", "arn:aws:s3:::photos/c"),
            ("s3:ListAllMyBuckets", "*"),
        ],
        &WithoutCatalogue,
        GenerateOptions::default(),
    )
    .unwrap();
    assert_eq!(
        policy.json["Statement"],
        json!([
            {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": [
                "arn:aws:s3:::photos/a", "arn:aws:s3:::photos/b", "arn:aws:s3:::photos/c"]},
        ])
    );
}

#[test]
fn no_activity_and_bad_actions_are_errors() {
    assert_eq!(
        generate([], &Fake, GenerateOptions::default()),
        Err(GenerateError::NoActivity)
    );
    for bad in ["s3", ":GetObject", "s3:", "s3:a:b"] {
        assert_eq!(
            generate([(bad, "*")], &Fake, GenerateOptions::default()),
            Err(GenerateError::InvalidAction(bad.to_owned())),
            "{bad}"
        );
    }
    assert_eq!(
        generate([("s3:GetObject", "")], &Fake, GenerateOptions::default())
            .unwrap_err()
            .to_string(),
        "the resource of action `s3:GetObject` is empty"
    );
}

#[test]
fn assume_role_and_cross_account_decisions_replay_through_the_identity_policy() {
    let role = "arn:aws:iam::444455556666:role/deploy";
    let policy = gen(&[
        ("sts:AssumeRole", role),
        ("sts:AssumeRole", "arn:aws:iam::111122223333:role/local"),
    ]);
    assert!(allows(&policy, "sts:AssumeRole", role));
    assert!(allows(
        &policy,
        "sts:AssumeRole",
        "arn:aws:iam::111122223333:role/local"
    ));
    assert!(!allows(
        &policy,
        "sts:AssumeRole",
        "arn:aws:iam::111122223333:role/other"
    ));
    assert!(matches!(
        replay(
            &Arc::new(policy.compile("p")),
            "nobody",
            "s3:GetObject",
            "*"
        ),
        Err(ReplayError::Principal(_))
    ));
}

#[test]
fn a_role_matches_its_sessions_and_nothing_else() {
    let role = "arn:aws:iam::111122223333:role/team/app";
    assert!(principal_matches(role, role));
    assert!(principal_matches(
        role,
        "arn:aws:sts::111122223333:assumed-role/app/session-1"
    ));
    for other in [
        "arn:aws:sts::444455556666:assumed-role/app/session-1",
        "arn:aws:sts::111122223333:assumed-role/application/s",
        "arn:aws:sts::111122223333:assumed-role/app/",
        "arn:aws:sts::111122223333:federated-user/app",
        "arn:aws:iam::111122223333:role/app",
    ] {
        assert!(!principal_matches(role, other), "{other}");
    }
    assert!(principal_matches(ALICE, ALICE));
    assert!(!principal_matches(
        ALICE,
        "arn:aws:iam::111122223333:user/alice2"
    ));
    assert!(!principal_matches(
        "arn:aws:iam::111122223333:user/app",
        "arn:aws:sts::111122223333:assumed-role/app/s"
    ));
}

#[test]
fn the_shipped_catalogue_gives_canonical_names_formats_and_star_for_no_resource_type() {
    let catalog = crate::policy::catalog::catalog().unwrap();
    let policy = generate(
        [
            ("S3:GETOBJECT", "arn:aws:s3:::photos/a"),
            ("s3:getobject", "arn:aws:s3:::photos/b"),
            ("s3:GetObject", "arn:aws:s3:::photos/c/d"),
            ("s3:listallmybuckets", "arn:aws:s3:::anything"),
            ("iam:getrole", "arn:aws:iam::111122223333:role/app"),
            ("sts:getcalleridentity", "*"),
            ("madeup:DoThing", "arn:aws:madeup:::x"),
        ],
        catalog,
        GenerateOptions::default(),
    )
    .unwrap();
    assert_eq!(
        policy.json["Statement"],
        json!([
            {"Effect": "Allow", "Action": "iam:GetRole",
             "Resource": "arn:aws:iam::111122223333:role/app"},
            {"Effect": "Allow", "Action": "madeup:DoThing", "Resource": "arn:aws:madeup:::x"},
            {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::photos/*"},
            {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"},
        ])
    );
}

// === the generation properties ===

const BUCKETS: &[&str] = &["photos", "logs", "backups"];
const KEYS: &[&str] = &["a", "b", "c", "d/e", "f.txt"];
const ACCOUNTS: &[&str] = &["111122223333", "444455556666"];
const REGIONS: &[&str] = &["us-east-1", "eu-west-1"];
const TABLES: &[&str] = &["orders", "users", "carts", "items"];

/// One allowed request of a small world: every action of [`Fake`] on its resource types.
fn request() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        (
            prop::sample::select(&["s3:GetObject", "s3:PutObject"][..]),
            prop::sample::select(BUCKETS),
            prop::sample::select(KEYS)
        )
            .prop_map(|(a, b, k)| (a.to_owned(), format!("arn:aws:s3:::{b}/{k}"))),
        prop::sample::select(BUCKETS)
            .prop_map(|b| ("s3:ListBucket".to_owned(), format!("arn:aws:s3:::{b}"))),
        Just(("s3:ListAllMyBuckets".to_owned(), "*".to_owned())),
        (
            prop::sample::select(&["dynamodb:GetItem", "dynamodb:Query"][..]),
            prop::sample::select(REGIONS),
            prop::sample::select(ACCOUNTS),
            prop::sample::select(TABLES)
        )
            .prop_map(|(a, r, acct, t)| (
                a.to_owned(),
                format!("arn:aws:dynamodb:{r}:{acct}:table/{t}")
            )),
        (
            prop::sample::select(ACCOUNTS),
            prop::sample::select(&["app", "deploy", "ci/runner"][..])
        )
            .prop_map(|(acct, r)| (
                "iam:GetRole".to_owned(),
                format!("arn:aws:iam::{acct}:role/{r}")
            )),
    ]
}

/// Can `seen` grow into `candidate` by the stated generalisation: `threshold` seen ARNs of
/// the action agree with the candidate on everything but one generalisable variable?
fn generalisable(
    describe: &dyn DescribeAction,
    seen: &[(String, String)],
    action: &str,
    candidate: &str,
    threshold: usize,
) -> bool {
    let Some(shape) = describe.describe(action) else {
        return false;
    };
    shape.resource_formats.iter().any(|format| {
        let Some(template) = Template::parse(format) else {
            return false;
        };
        let Some(wanted) = template.capture(candidate) else {
            return false;
        };
        (0..template.variables.len()).any(|v| {
            template.variables.get(v) == Some(&true)
                && seen
                    .iter()
                    .filter(|(a, _)| a.eq_ignore_ascii_case(action))
                    .filter_map(|(_, r)| template.capture(r))
                    .filter(|values| {
                        values.len() == wanted.len()
                            && values
                                .iter()
                                .zip(&wanted)
                                .enumerate()
                                .all(|(j, (x, y))| j == v || x == y)
                    })
                    .map(|values| values.get(v).copied().unwrap_or(""))
                    .collect::<BTreeSet<_>>()
                    .len()
                    >= threshold
        })
    })
}

/// The fake catalogue, or the AWS catalogue iamlet ships.
fn describer(real: bool) -> &'static dyn DescribeAction {
    if real {
        crate::policy::catalog::catalog().unwrap()
    } else {
        &Fake
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every decision the policy was generated from is allowed when replayed.
    #[test]
    fn the_policy_allows_every_decision_it_came_from(
        seen in prop::collection::vec(request(), 1..40),
        threshold in 0usize..5,
        real in any::<bool>(),
    ) {
        let describe = describer(real);
        let policy = generate(
            seen.iter().map(|(a, r)| (a.as_str(), r.as_str())),
            describe,
            GenerateOptions { generalise_at: threshold },
        ).unwrap();
        let compiled = Arc::new(policy.compile("generated"));
        for (action, resource) in &seen {
            prop_assert_eq!(
                replay(&compiled, ALICE, action, resource).unwrap(),
                Outcome::Allow,
                "{} on {}", action, resource
            );
        }
    }

    /// Every (action, resource) of the world the policy allows was seen, or follows from the
    /// stated generalisation; without generalisation, exactly what was seen is allowed.
    #[test]
    fn the_policy_allows_nothing_beyond_what_was_seen(
        seen in prop::collection::vec(request(), 1..40),
        threshold in 0usize..5,
        real in any::<bool>(),
    ) {
        let describe = describer(real);
        let policy = generate(
            seen.iter().map(|(a, r)| (a.as_str(), r.as_str())),
            describe,
            GenerateOptions { generalise_at: threshold },
        ).unwrap();
        let compiled = Arc::new(policy.compile("generated"));
        let mut world: Vec<(String, String)> = Vec::new();
        for action in ["s3:GetObject", "s3:PutObject"] {
            for bucket in BUCKETS {
                for key in KEYS.iter().chain(&["unseen"]) {
                    world.push((action.into(), format!("arn:aws:s3:::{bucket}/{key}")));
                }
            }
        }
        for action in ["dynamodb:GetItem", "dynamodb:Query"] {
            for region in REGIONS.iter().chain(&["ap-south-1"]) {
                for account in ACCOUNTS {
                    for table in TABLES.iter().chain(&["unseen"]) {
                        world.push((
                            action.into(),
                            format!("arn:aws:dynamodb:{region}:{account}:table/{table}"),
                        ));
                    }
                }
            }
        }
        for bucket in BUCKETS {
            world.push(("s3:ListBucket".into(), format!("arn:aws:s3:::{bucket}")));
        }
        world.push(("s3:DeleteObject".into(), "arn:aws:s3:::photos/a".into()));
        world.push(("iam:DeleteRole".into(), "arn:aws:iam::111122223333:role/app".into()));
        let listed_all = seen.iter().any(|(a, _)| a == "s3:ListAllMyBuckets");
        world.push(("s3:ListAllMyBuckets".into(), "*".into()));
        for (action, resource) in &world {
            let allowed = replay(&compiled, ALICE, action, resource).unwrap() == Outcome::Allow;
            let was_seen = seen.iter().any(|(a, r)| a == action && r == resource);
            let exact = was_seen || (action == "s3:ListAllMyBuckets" && listed_all);
            if threshold == 0 {
                // Without generalisation the policy allows exactly what was seen.
                prop_assert_eq!(allowed, exact, "{} on {}", action, resource);
            } else if allowed {
                prop_assert!(
                    exact || generalisable(describe, &seen, action, resource, threshold),
                    "{} on {} is allowed but was not seen", action, resource
                );
            }
        }
    }

    /// The same set of pairs gives the same policy, whatever their order or repetition.
    #[test]
    fn generation_is_deterministic(
        seen in prop::collection::vec(request(), 1..30),
        rotate in 0usize..30,
    ) {
        let once = gen(&seen.iter().map(|(a, r)| (a.as_str(), r.as_str())).collect::<Vec<_>>());
        let mut shuffled: Vec<(&str, &str)> =
            seen.iter().map(|(a, r)| (a.as_str(), r.as_str())).collect();
        shuffled.reverse();
        let n = shuffled.len();
        shuffled.rotate_left(rotate % n);
        shuffled.extend(seen.iter().map(|(a, r)| (a.as_str(), r.as_str())));
        prop_assert_eq!(gen(&shuffled).json, once.json);
    }
}

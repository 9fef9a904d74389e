use super::*;

fn err(text: &str, kind: PolicyKind) -> PolicyError {
    parse(text, ParseOptions::for_kind(kind)).unwrap_err()
}

fn ok(text: &str, kind: PolicyKind) -> PolicyDocument {
    parse(text, ParseOptions::for_kind(kind)).unwrap()
}

#[test]
fn duplicate_keys_are_syntax_errors() {
    let e = err(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Effect":"Deny","Action":"s3:*","Resource":"*"}}"#,
        PolicyKind::Identity,
    );
    assert_eq!(e.code(), "MalformedPolicyDocument");
    assert_eq!(e.message(), "Syntax errors in policy.");
}

#[test]
fn errors_name_the_offending_element() {
    let e = err(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringLike":"x"}}]}"#,
        PolicyKind::Identity,
    );
    assert_eq!(e.location(), Some("Statement[1].Condition.StringLike"));
    let e = err(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"someday"}}}}"#,
        PolicyKind::Identity,
    );
    assert_eq!(e.message(), "The policy failed legacy parsing");
    assert_eq!(
        e.location(),
        Some("Statement.Condition.DateLessThan.aws:CurrentTime")
    );
}

#[test]
fn api_constraints_are_validation_errors() {
    let e = err("", PolicyKind::Identity);
    assert_eq!(e.code(), "ValidationError");
    let e = err(
        "{\"Version\":\"2012-10-17\",\"Id\":\"\u{263a}\"}",
        PolicyKind::Identity,
    );
    assert_eq!(e.code(), "ValidationError");
    assert!(
        e.message().contains("regular expression pattern"),
        "{}",
        e.message()
    );
    let big = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"s3:*","Resource":"*","Sid":"{}"}}}}"#,
        "a".repeat(MAX_POLICY_CHARS)
    );
    assert_eq!(err(&big, PolicyKind::Identity).code(), "ValidationError");
}

#[test]
fn per_kind_principal_rules() {
    let with_principal = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
    assert_eq!(
        err(with_principal, PolicyKind::Identity).message(),
        "Policy document should not specify a principal."
    );
    ok(with_principal, PolicyKind::Resource);
    let without = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
    assert_eq!(
        err(without, PolicyKind::Resource).message(),
        "Missing required field Principal."
    );
    let not_principal_allow = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
    assert_eq!(
        err(not_principal_allow, PolicyKind::Resource).message(),
        "NotPrincipal is only supported with the Deny effect."
    );
    let bad_principal = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}}"#;
    let e = err(bad_principal, PolicyKind::Resource);
    assert_eq!(
        e.message(),
        r#"Invalid principal in policy: "AWS":"arn:aws:iam::111122223333:user/*""#
    );
    assert_eq!(e.location(), Some("Statement.Principal.AWS"));
}

#[test]
fn trust_policy_rules() {
    let good = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}"#;
    let doc = ok(good, PolicyKind::Trust);
    assert!(doc.statements[0].resource.is_none());
    let wildcard = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole*"}]}"#;
    ok(wildcard, PolicyKind::Trust);
    let no_principal =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#;
    assert_eq!(
        err(no_principal, PolicyKind::Trust).message(),
        "Missing required field Principal."
    );
    let legacy = r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}]}"#;
    assert_eq!(ok(legacy, PolicyKind::Trust).version, PolicyVersion::Legacy);
}

#[test]
fn version_rules_per_kind() {
    let unversioned = r#"{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}"#;
    assert_eq!(
        err(unversioned, PolicyKind::Identity).message(),
        "Policy document must be version 2012-10-17 or greater."
    );
    assert_eq!(
        err(unversioned, PolicyKind::Scp).message(),
        "Policy document must be version 2012-10-17 or greater."
    );
    let doc = parse(unversioned, ParseOptions::lenient(PolicyKind::Identity)).unwrap();
    assert_eq!(doc.version, PolicyVersion::Unspecified);
    ok(unversioned, PolicyKind::Session);
}

#[test]
fn rcp_allows_only_full_access() {
    let full = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#;
    ok(full, PolicyKind::Rcp);
    let narrow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#;
    assert!(err(narrow, PolicyKind::Rcp)
        .message()
        .starts_with("Resource control policies support Allow only"));
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"BoolIfExists":{"aws:SecureTransport":"false"}}}]}"#;
    ok(deny, PolicyKind::Rcp);
}

#[test]
fn scalars_are_kept_as_text() {
    let doc = ok(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":true},"NumericLessThan":{"s3:max-keys":[10, 2.5]}}}}"#,
        PolicyKind::Identity,
    );
    let values: Vec<&Vec<String>> = doc.statements[0]
        .conditions
        .iter()
        .map(|c| &c.values)
        .collect();
    assert_eq!(
        values,
        [
            &vec!["true".to_owned()],
            &vec!["10".to_owned(), "2.5".to_owned()]
        ]
    );
}

#[test]
fn null_entries_in_lists_are_skipped() {
    let doc = ok(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["s3:GetObject",null],"Resource":["arn:aws:s3:::b/*",null]}}"#,
        PolicyKind::Identity,
    );
    assert_eq!(doc.statements[0].action.patterns, ["s3:GetObject"]);
}

// === bad input: properties over the parser ===

mod fuzz {
    use proptest::prelude::*;

    use super::super::*;

    fn any_kind() -> impl Strategy<Value = PolicyKind> {
        prop::sample::select(PolicyKind::ALL.to_vec())
    }

    /// JSON-ish fragments from the policy vocabulary, so mutations reach deep into validation.
    fn fragment() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "\"Version\"",
            "\"2012-10-17\"",
            "\"Statement\"",
            "\"Effect\"",
            "\"Allow\"",
            "\"Deny\"",
            "\"Action\"",
            "\"NotAction\"",
            "\"Resource\"",
            "\"Principal\"",
            "\"Condition\"",
            "\"StringLike\"",
            "\"DateLessThan\"",
            "\"*\"",
            "\"s3:Get*\"",
            "\"arn:aws:s3:::b/*\"",
            "\"arn:aws:iam::111122223333:root\"",
            "null",
            "true",
            "1",
            "-0.5e3",
            "\"${aws:username}\"",
            "\"\\u0000\"",
            "\"ForAnyValue:\"",
        ])
        .prop_map(str::to_owned)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>(), kind in any_kind()) {
            let _ = parse(&text, ParseOptions::for_kind(kind));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(&text, ParseOptions::lenient(PolicyKind::Resource));
        }

        #[test]
        fn vocabulary_soup_never_panics(parts in prop::collection::vec(fragment(), 0..60), kind in any_kind()) {
            let _ = parse(&parts.concat(), ParseOptions::lenient(kind));
        }
    }

    /// Valid identity policies from a small grammar, for the round-trip property.
    fn valid_policy() -> impl Strategy<Value = String> {
        let action = prop::sample::select(vec![
            "s3:GetObject",
            "s3:*",
            "ec2:Describe*",
            "*",
            "iam:?etUser",
        ]);
        let resource = prop::sample::select(vec![
            "*",
            "arn:aws:s3:::b/*",
            "arn:aws:s3:::b/${aws:username}/*",
        ]);
        let condition = prop::sample::select(vec![
            "",
            r#","Condition":{"StringEquals":{"aws:PrincipalTag/team":["a","b"]}}"#,
            r#","Condition":{"ForAnyValue:StringLike":{"aws:TagKeys":"x*"},"Bool":{"aws:SecureTransport":true}}"#,
            r#","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        ]);
        let statement = (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(action, 1..4),
            resource,
            condition,
        )
            .prop_map(|(deny, not_action, actions, resource, condition)| {
                format!(
                    r#"{{"Effect":"{}","{}":{},"Resource":"{}"{}}}"#,
                    if deny { "Deny" } else { "Allow" },
                    if not_action { "NotAction" } else { "Action" },
                    serde_json::to_string(&actions).unwrap(),
                    resource,
                    condition
                )
            });
        prop::collection::vec(statement, 1..5).prop_map(|statements| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                statements.join(",")
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn canonical_json_round_trips(text in valid_policy()) {
            let doc = PolicyDocument::parse(&text, PolicyKind::Identity).unwrap();
            let again = PolicyDocument::parse(&doc.to_json().to_string(), PolicyKind::Identity).unwrap();
            prop_assert_eq!(again, doc);
        }
    }

    #[test]
    fn huge_action_arrays_parse_in_bounded_time() {
        let actions: Vec<String> = (0..10_000).map(|i| format!("s3:A{i}")).collect();
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":{},"Resource":"*"}}}}"#,
            serde_json::to_string(&actions).unwrap()
        );
        assert!(text.len() <= MAX_POLICY_CHARS);
        // Lenient: the size quota would refuse it, and the parser is what is under test.
        let doc =
            PolicyDocument::parse_with(&text, ParseOptions::lenient(PolicyKind::Identity)).unwrap();
        assert_eq!(doc.statements[0].action.patterns.len(), 10_000);
    }

    #[test]
    fn deep_nesting_is_a_syntax_error() {
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":{}{}}}"#,
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        let e = PolicyDocument::parse(&text, PolicyKind::Identity).unwrap_err();
        assert_eq!(e.message(), "Syntax errors in policy.");
    }

    #[test]
    fn many_duplicate_keys_do_not_go_quadratic() {
        let mut text = String::from(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEquals":{"#,
        );
        for i in 0..8_000 {
            text.push_str(&format!(r#""k{i}":"v","#));
        }
        text.push_str(r#""k7999":"v"}}}}"#);
        let e = PolicyDocument::parse(&text, PolicyKind::Identity).unwrap_err();
        assert_eq!(e.message(), "Syntax errors in policy.");
    }
}

#[test]
fn size_quotas_per_kind_ignore_whitespace_where_iam_does() {
    let statement = |sid: usize| {
        format!(
            r#"{{"Sid":"S{sid}","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bucket-{sid:06}/*"}}"#
        )
    };
    let doc = |n: usize, pad: &str| {
        let statements: Vec<String> = (0..n).map(statement).collect();
        format!(
            r#"{{"Version":"2012-10-17",{pad}"Statement":[{}]}}"#,
            statements.join(&format!(",{pad}"))
        )
    };
    // 80 statements are about 6,160 characters: over the managed-policy quota.
    let big = doc(80, "");
    assert!(super::super::non_whitespace_len(&big) > 6_144);
    let e = err(&big, PolicyKind::Identity);
    assert_eq!(e.code(), "LimitExceeded");
    assert_eq!(e.message(), "Cannot exceed quota for PolicySize: 6144");
    // Whitespace does not count for IAM...
    let small = doc(60, &" \n".repeat(40));
    assert!(small.len() > 6_144 && super::super::non_whitespace_len(&small) <= 6_144);
    ok(&small, PolicyKind::Identity);
    // ...but does for Organizations.
    let scp = doc(60, &" ".repeat(10));
    assert!(scp.len() > 5_120);
    assert_eq!(
        err(&scp, PolicyKind::Scp).message(),
        "Cannot exceed quota for PolicySize: 5120"
    );
    // Stored and AWS-managed documents are not held to a tenant's quota.
    parse(&big, ParseOptions::lenient(PolicyKind::Identity)).unwrap();
    parse(&big, ParseOptions::aws_managed(PolicyKind::Identity)).unwrap();
}

#[test]
fn trust_policy_quota() {
    let principals: Vec<String> = (0..90)
        .map(|i| format!("\"arn:aws:iam::1111222233{i:02}:root\""))
        .collect();
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":[{}]}},"Action":"sts:AssumeRole"}}]}}"#,
        principals.join(",")
    );
    let e = err(&text, PolicyKind::Trust);
    assert_eq!(e.message(), "Cannot exceed quota for ACLSizePerRole: 2048");
}

/// Issue 12, rule 4: the RCP grammar has no `NotPrincipal` and no `NotAction`.
#[test]
fn rcps_refuse_not_principal_and_not_action() {
    let not_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"s3:*","Resource":"*"}]}"#;
    let e = err(not_principal, PolicyKind::Rcp);
    assert_eq!(e.code(), "MalformedPolicyDocument");
    assert_eq!(
        e.message(),
        "Resource control policies do not support NotPrincipal."
    );
    assert_eq!(e.location(), Some("Statement[0].NotPrincipal"));
    let not_action = r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"},{"Effect":"Deny","Principal":"*","NotAction":"s3:GetObject","Resource":"*"}]}"#;
    let e = err(not_action, PolicyKind::Rcp);
    assert_eq!(
        e.message(),
        "Resource control policies do not support NotAction."
    );
    assert_eq!(e.location(), Some("Statement[1].NotAction"));
    // Stored or evaluated RCPs get the same grammar.
    assert!(parse(not_action, ParseOptions::lenient(PolicyKind::Rcp)).is_err());
    // Both elements remain valid where their kinds allow them.
    ok(not_principal, PolicyKind::Resource);
    let scp = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","NotAction":"s3:GetObject","Resource":"*"}]}"#;
    ok(scp, PolicyKind::Scp);
    // NotResource is in the RCP grammar.
    ok(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","NotResource":"arn:aws:s3:::b/*"}]}"#,
        PolicyKind::Rcp,
    );
}

fn with_condition(operator: &str, key: &str, value: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:*","Resource":"*"}},{{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{{"{operator}":{{"{key}":["1",{value}]}}}}}}]}}"#
    )
}

/// Issue 12, rule 5: a typed value that does not read as its type is refused, for every kind
/// and with the location of the condition.
#[test]
fn malformed_typed_values_are_refused_for_every_kind() {
    let cases = [
        ("NotIpAddress", "aws:SourceIp", r#""10.0.0.0/33""#),
        ("IpAddress", "aws:SourceIp", r#""10.0.0.300""#),
        ("NotIpAddress", "aws:SourceIp", r#""2001:db8::/129""#),
        ("NumericNotEquals", "s3:max-keys", r#""ten""#),
        ("NumericLessThan", "s3:max-keys", r#""1e3""#),
        ("DateNotEquals", "aws:CurrentTime", r#""someday""#),
        ("Bool", "aws:SecureTransport", r#""yes""#),
        ("BoolIfExists", "aws:SecureTransport", "1"),
        ("Null", "aws:TagKeys", r#""absent""#),
    ];
    for kind in PolicyKind::ALL.iter().copied() {
        for (operator, key, value) in cases {
            let mut text = with_condition(operator, key, value);
            // The other fields each kind requires or forbids.
            text = match kind {
                PolicyKind::Trust => text.replace(
                    r#""Action":"s3:*","Resource":"*""#,
                    r#""Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole""#,
                ),
                PolicyKind::Resource | PolicyKind::VpcEndpoint => text.replace(
                    r#""Effect":"Allow","#,
                    r#""Effect":"Allow","Principal":"*","#,
                ),
                PolicyKind::Rcp => text
                    .replace(
                        r#""Effect":"Allow","Action":"s3:*","Resource":"*"}"#,
                        r#""Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*"}"#,
                    )
                    .replace(
                        r#""Effect":"Allow","#,
                        r#""Effect":"Deny","Principal":"*","#,
                    ),
                _ => text,
            };
            // The `"1"` beside the bad value keeps numbers valid; dates and the rest need a
            // valid twin, so check the valid twin first.
            let twin = text.replace(&format!(",{value}"), "");
            let twin = match operator {
                "DateNotEquals" => twin.replace(r#"["1"]"#, r#"["2030-01-01T00:00:00Z"]"#),
                "Bool" | "BoolIfExists" | "Null" => twin.replace(r#"["1"]"#, r#"["true"]"#),
                "IpAddress" | "NotIpAddress" => twin.replace(r#"["1"]"#, r#"["10.0.0.0/8"]"#),
                _ => twin,
            };
            if let Err(e) = parse(&twin, ParseOptions::lenient(kind)) {
                panic!("{kind}: valid twin refused: {e:?}\n{twin}");
            }
            let e = parse(&text, ParseOptions::lenient(kind)).unwrap_err();
            assert_eq!(e.code(), "MalformedPolicyDocument", "{kind} {operator}");
            assert_eq!(e.message(), "The policy failed legacy parsing");
            assert_eq!(
                e.location(),
                Some(format!("Statement[1].Condition.{operator}.{key}").as_str()),
                "{kind}: {text}"
            );
            assert!(parse(&text, ParseOptions::for_kind(kind)).is_err());
            // A stored document still loads (dates excepted: IAM never accepted one).
            let stored = parse(&text, ParseOptions::stored(kind));
            assert_eq!(
                stored.is_ok(),
                operator != "DateNotEquals",
                "{kind} {operator}"
            );
        }
    }
}

/// Issue 12, rule 7: `Bool` values may be policy variables in `2012-10-17` documents; in a
/// legacy document `${…}` is literal text, which is no boolean.
#[test]
fn bool_values_may_be_policy_variables() {
    let current = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"${aws:PrincipalTag/secure}"}}}]}"#;
    ok(current, PolicyKind::Identity);
    let legacy = current.replace("2012-10-17", "2008-10-17");
    let e = parse(&legacy, ParseOptions::lenient(PolicyKind::Identity)).unwrap_err();
    assert_eq!(e.message(), "The policy failed legacy parsing");
    // An escape is not a variable: `${*}` is a literal `*`.
    let escape = current.replace("${aws:PrincipalTag/secure}", "${*}");
    assert!(parse(&escape, ParseOptions::lenient(PolicyKind::Identity)).is_err());
    // Variables stay refused where the documentation does not allow them.
    let numeric = current.replace(r#""Bool""#, r#""NumericLessThan""#);
    assert!(parse(&numeric, ParseOptions::lenient(PolicyKind::Identity)).is_err());
}

/// The syntax phase read straight from the text (issue #19 P5) against the tree walk it
/// replaced: the same document or the same error (code, message and location), for every
/// corpus document, mutations of them, and generated text.
mod streaming {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::super::*;

    /// Every set of options a document is parsed with somewhere.
    fn all_options() -> Vec<ParseOptions> {
        PolicyKind::ALL
            .iter()
            .flat_map(|&kind| {
                [
                    ParseOptions::for_kind(kind),
                    ParseOptions::stored(kind),
                    ParseOptions::aws_managed(kind),
                ]
            })
            .collect()
    }

    /// Asserts both syntax phases agree on `text` under `options`; the outcome.
    fn agree(text: &str, options: ParseOptions) -> Result<PolicyDocument, PolicyError> {
        let streamed = parse_after(text, options, syntax::syntax_phase);
        let walked = parse_after(text, options, reference::syntax_phase_via_tree);
        assert_eq!(streamed, walked, "{options:?} on {text:?}");
        streamed
    }

    fn agree_for_every_kind(text: &str) {
        for options in all_options() {
            let _ = agree(text, options);
        }
    }

    fn corpus() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
    }

    fn jsonl(name: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(corpus().join(name))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, out);
            } else {
                out.push(path);
            }
        }
    }

    /// The moto cases (valid and invalid), the example policies and the fuzz seeds.
    fn small_corpus() -> Vec<String> {
        let mut texts: Vec<String> = ["valid_policies.jsonl", "invalid_policies.jsonl"]
            .iter()
            .flat_map(|name| jsonl(name))
            .map(|case| case["policy_text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(texts.len(), 54 + 81);
        let mut files = Vec::new();
        files_under(&corpus().join("example-policies"), &mut files);
        files_under(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus/policy"),
            &mut files,
        );
        let before = texts.len();
        for file in files {
            if file.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let bytes = std::fs::read(&file).unwrap();
            texts.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        assert!(
            texts.len() - before >= 9,
            "the example policies and fuzz seeds are read"
        );
        texts
    }

    #[test]
    fn the_managed_policies_parse_the_same() {
        let policies = jsonl("managed-policies.jsonl");
        assert_eq!(policies.len(), 1641);
        let mut parsed = 0;
        for policy in &policies {
            let document = &policy["document"];
            for text in [
                serde_json::to_string(document).unwrap(),
                serde_json::to_string_pretty(document).unwrap(),
            ] {
                let options = ParseOptions::aws_managed(PolicyKind::Identity);
                parsed += usize::from(agree(&text, options).is_ok());
                let _ = agree(&text, ParseOptions::stored(PolicyKind::Identity));
            }
        }
        // Not a vacuous agreement: nearly all of them are valid.
        assert!(parsed > 3_000, "{parsed}");
    }

    #[test]
    fn the_small_corpus_parses_the_same_under_every_kind() {
        let texts = small_corpus();
        let (mut ok, mut errors) = (0, 0);
        for text in &texts {
            for options in all_options() {
                match agree(text, options) {
                    Ok(_) => ok += 1,
                    Err(_) => errors += 1,
                }
            }
        }
        assert!(ok > 100 && errors > 100, "{ok} valid, {errors} refused");
    }

    /// Every prefix, and the text without each one character: errors at every position.
    #[test]
    fn mutations_of_the_small_corpus_fail_the_same() {
        let options = [
            ParseOptions::for_kind(PolicyKind::Identity),
            ParseOptions::stored(PolicyKind::Trust),
        ];
        for text in small_corpus().iter().filter(|t| t.len() <= 800) {
            let boundaries = (0..text.len()).filter(|&i| text.is_char_boundary(i));
            for i in boundaries {
                let next = text.get(i..).and_then(|t| t.chars().next());
                let without = format!(
                    "{}{}",
                    text.get(..i).unwrap(),
                    text.get(i + next.map_or(0, char::len_utf8)..).unwrap_or("")
                );
                for options in options {
                    let _ = agree(text.get(..i).unwrap(), options);
                    let _ = agree(&without, options);
                }
            }
        }
    }

    /// The orders of errors the streaming reader must keep (see `syntax.rs`).
    #[test]
    fn which_error_wins_is_unchanged() {
        let cases = [
            // A top-level key's error beats an earlier statement's.
            r#"{"Statement":{"Effect":"Allow","Bogus":1},"Version":"2012-10-17x"}"#,
            r#"{"Statement":[],"Other":1}"#,
            // A JSON error after a grammar error wins: late syntax, late duplicates, depth.
            r#"{"Version":"bad","Statement":{"Effect":"Allow"} , }"#,
            r#"{"Bogus":1,"Statement":{"a":{"b":1,"b":2}}}"#,
            r#"{"Statement":{"Sid":5,"Effect":"Allow","Effect":"Deny"}}"#,
            r#"{"Statement":[{"Sid":[]},{"Effect":"Allow","Condition":{"X":{"k":1,"k":2}}}]}"#,
            // A missing Effect is reported after the other keys of its statement.
            r#"{"Statement":{"Action":"s3:*","Bogus":1}}"#,
            r#"{"Statement":{"Action":"s3:*","Resource":"*"}}"#,
            // A bad value beats an unknown operator in the same block, but not an earlier
            // block's problem.
            r#"{"Statement":{"Effect":"Allow","Condition":{"Nope":{"a":"x","b":{}}}}}"#,
            r#"{"Statement":{"Effect":"Allow","Condition":{"Nope":{"a":"x"},"StringLike":{"b":{}}}}}"#,
            r#"{"Statement":{"Effect":"Allow","Condition":{"Nope":{},"StringLike":{"b":[1,true,"x"]}}}}"#,
            // A second Action, a null principal value, a principal type unknown.
            r#"{"Statement":{"Effect":"Allow","Action":"a:b","NotAction":"a:c"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":[null]},"Action":"a:b"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":{"Nobody":"x"},"Action":"a:b"}}"#,
            r#"{"Statement":{"Effect":"Allow","Principal":{},"Action":"a:b"}}"#,
            // Escapes in keys and values, numbers as condition text, nulls skipped in lists.
            r#"{"Version":"2012-10-17","Statement":{"\u0045ffect":"Allow","Action":["s3:Get\u002a",null],"Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":[1e3,-2,1.50]}}}}"#,
            // Not an object; trailing characters; nesting too deep inside a skipped value.
            r#"[{"Statement":1}]"#,
            r#"{"Statement":{"Effect":"Allow","Action":"a:b","Resource":"*"}} x"#,
        ];
        for case in cases {
            agree_for_every_kind(case);
        }
        let deep = format!(
            r#"{{"Bogus":1,"Statement":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        agree_for_every_kind(&deep);
        let many = (0..40)
            .map(|i| format!(r#""k{i}":{i}"#))
            .collect::<Vec<_>>()
            .join(",");
        agree_for_every_kind(&format!(
            r#"{{"Statement":{{"Effect":"Allow","Condition":{{"StringLike":{{{many},"k7":0}}}}}}}}"#
        ));
    }

    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "\"Version\"",
            "\"2012-10-17\"",
            "\"Statement\"",
            "\"Sid\"",
            "\"Effect\"",
            "\"Allow\"",
            "\"deny\"",
            "\"Action\"",
            "\"NotAction\"",
            "\"Resource\"",
            "\"Principal\"",
            "\"AWS\"",
            "\"Condition\"",
            "\"StringLike\"",
            "\"Bool\"",
            "\"Nope\"",
            "\"*\"",
            "\"s3:Get*\"",
            "\"arn:aws:s3:::b/*\"",
            "null",
            "true",
            "1",
            "-0.5e3",
            "\"\\u0041\"",
        ])
    }

    fn statement() -> impl Strategy<Value = String> {
        let value = prop::sample::select(vec![
            "\"Allow\"",
            "\"Deny\"",
            "\"*\"",
            "\"s3:*\"",
            "[\"s3:*\",null]",
            "[]",
            "null",
            "1",
            "{}",
            "{\"AWS\":\"*\"}",
            "{\"StringLike\":{\"k\":\"v\"}}",
            "{\"Nope\":{}}",
            "{\"Bool\":{\"k\":[true,\"x\"]}}",
            "[[]]",
        ]);
        let key = prop::sample::select(vec![
            "Sid",
            "Effect",
            "Action",
            "NotAction",
            "Resource",
            "NotResource",
            "Principal",
            "NotPrincipal",
            "Condition",
            "Bogus",
        ]);
        prop::collection::vec((key, value), 0..7).prop_map(|fields| {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", body.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn vocabulary_soup_fails_the_same(parts in prop::collection::vec(fragment(), 0..60)) {
            agree_for_every_kind(&parts.concat());
        }

        #[test]
        fn generated_statements_parse_the_same(
            statements in prop::collection::vec(statement(), 0..4),
            version in prop::sample::select(vec!["", "\"Version\":\"2012-10-17\",", "\"Version\":\"2008-10-17\",", "\"Version\":7,"]),
        ) {
            agree_for_every_kind(&format!("{{{version}\"Statement\":[{}]}}", statements.join(",")));
        }

        #[test]
        fn arbitrary_text_fails_the_same(text in any::<String>()) {
            let _ = agree(&text, ParseOptions::stored(PolicyKind::Resource));
        }
    }
}

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

struct Map(HashMap<&'static str, &'static str>);

impl VarLookup for Map {
    fn lookup(&self, key: &str) -> Option<&str> {
        self.0.get(key).copied()
    }
}

fn vars(pairs: &[(&'static str, &'static str)]) -> Map {
    Map(pairs.iter().copied().collect())
}

const WITH_VARS: Syntax = Syntax {
    wildcards: true,
    variables: true,
    lowercase: false,
};

/// The obviously-correct matcher: exponential recursion over characters, test-only.
fn oracle(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| oracle(rest, &text[i..])),
        Some(('?', rest)) => !text.is_empty() && oracle(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && oracle(rest, &text[1..]),
    }
}

#[test]
fn documented_resource_examples() {
    // IAM-SEMANTICS §6.2 T4: `*` spans `/`.
    let p = Glob::new("DOC-EXAMPLE-BUCKET/*/test/*");
    for key in [
        "1/test/object.jpg",
        "1/2/test/object.jpg",
        "1/2/test/3/object.jpg",
        "1/2/3/test/4/object.jpg",
        "1///test///object.jpg",
        "1/test/.jpg",
        "/test/object.jpg",
        "1/test/",
    ] {
        assert!(p.matches(&format!("DOC-EXAMPLE-BUCKET/{key}")), "{key}");
    }
    for key in ["1-test/object.jpg", "test/object.jpg", "1/2/test.jpg"] {
        assert!(!p.matches(&format!("DOC-EXAMPLE-BUCKET/{key}")), "{key}");
    }
}

#[test]
fn question_mark_is_one_character() {
    let p = Glob::new("a?c");
    assert!(p.matches("abc"));
    assert!(p.matches("aéc"));
    assert!(!p.matches("ac"));
    assert!(!p.matches("abbc"));
}

#[test]
fn variables_defaults_and_escapes() {
    let p = Glob::compile("bucket-${aws:PrincipalTag/team, 'company-wide'}", WITH_VARS);
    assert!(p.matches_with("bucket-company-wide", &vars(&[]), false));
    assert!(!p.matches_with("bucket-yellow", &vars(&[]), false));
    let yellow = vars(&[("aws:principaltag/team", "yellow")]);
    assert!(p.matches_with("bucket-yellow", &yellow, false));
    assert!(!p.matches_with("bucket-company-wide", &yellow, false));

    let p = Glob::compile("a${*}b", WITH_VARS);
    assert!(p.matches("a*b"));
    assert!(!p.matches("axyzb"));
    let p = Glob::compile("${$}{x}${?}", WITH_VARS);
    assert!(p.matches("${x}?"));
}

#[test]
fn unresolved_variable_matches_nothing() {
    let p = Glob::compile("mybucket/${aws:username}/*", WITH_VARS);
    assert!(!p.matches_with("mybucket/David/a", &vars(&[]), false));
    assert!(!p.matches_with("mybucket/${aws:username}/a", &vars(&[]), false));
    assert!(p.matches_with(
        "mybucket/David/a",
        &vars(&[("aws:username", "David")]),
        false
    ));
}

#[test]
fn substituted_values_are_literal() {
    let p = Glob::compile("home/${aws:username}", WITH_VARS);
    let star = vars(&[("aws:username", "*")]);
    assert!(p.matches_with("home/*", &star, false));
    assert!(!p.matches_with("home/bob", &star, false));
}

#[test]
fn legacy_syntax_keeps_dollar_braces_literal() {
    let p = Glob::new("mybucket/${aws:username}/*");
    assert!(p.matches("mybucket/${aws:username}/a"));
    assert!(!p.matches("mybucket/David/a"));
}

#[test]
fn case_folding() {
    let p = Glob::compile(
        "IAM:*AccessKey*",
        Syntax {
            wildcards: true,
            variables: false,
            lowercase: true,
        },
    );
    assert!(p.matches_with("iam:listaccesskeys", &NoVars, false));
    assert!(p.matches_with("IAM:ListAccessKeys", &NoVars, true));
    assert!(!p.matches_with("iam:createuser", &NoVars, false));
}

#[test]
fn pathological_pattern_is_fast_enough_to_finish() {
    let pattern = "a*".repeat(50) + "b";
    let text = "a".repeat(10_000);
    assert!(!Glob::new(&pattern).matches(&text));
    assert!(Glob::new(&pattern).matches(&(text + "b")));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn agrees_with_the_oracle(pattern in "[ab*?/:]{0,12}", text in "[ab/:]{0,16}") {
        let p: Vec<char> = pattern.chars().collect();
        let t: Vec<char> = text.chars().collect();
        prop_assert_eq!(Glob::new(&pattern).matches(&text), oracle(&p, &t));
    }

    #[test]
    fn never_panics_on_arbitrary_input(pattern in any::<String>(), text in any::<String>()) {
        let g = Glob::compile(&pattern, WITH_VARS);
        let _ = g.matches_with(&text, &vars(&[("aws:username", "x")]), true);
        let _ = g.matches(&text);
    }

    #[test]
    fn literal_pattern_matches_itself(text in "[a-zA-Z0-9/:._-]{0,40}") {
        prop_assert!(Glob::new(&text).matches(&text));
    }
}

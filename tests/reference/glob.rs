//! T29: `Glob` against the naive recursive matcher, over an alphabet full of regex
//! metacharacters and non-ASCII letters (which a careless regex translation would mishandle).

use iamlet::policy::Glob;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::model::{naive_match, wildcard_tokens};

/// Pattern characters: the two wildcards, regex metacharacters, `$`/`{` (which are not
/// variables in `Glob::new`), two non-ASCII letters and a few plain ones.
const PATTERN_CHARS: &[char] = &[
    '*', '*', '?', '?', 'a', 'b', '.', '+', '(', ')', '[', ']', '{', '}', '^', '$', '|', '\\', 'é',
    'Ω', '/', ':',
];

/// Text characters: the same minus nothing (a `*` or `?` in the text is a literal character).
const TEXT_CHARS: &[char] = &[
    'a', 'b', '.', '+', '(', ')', '[', ']', '{', '}', '^', '$', '|', '\\', 'é', 'Ω', '/', ':', '*',
    '?', 'É',
];

fn text() -> impl Strategy<Value = String> {
    vec(select(TEXT_CHARS), 0..=10).prop_map(|cs| cs.into_iter().collect())
}

fn pattern() -> impl Strategy<Value = String> {
    vec(select(PATTERN_CHARS), 0..=8).prop_map(|cs| cs.into_iter().collect())
}

/// A pattern and a text built to match it (each `*` replaced by a random run, each `?` by a
/// random character), then possibly damaged by one edit, so both answers are common.
fn near_match() -> impl Strategy<Value = (String, String)> {
    (
        pattern(),
        vec(text(), 8),
        vec(select(TEXT_CHARS), 8),
        prop::option::of((any::<usize>(), select(TEXT_CHARS))),
    )
        .prop_map(|(pattern, runs, ones, edit)| {
            let mut out: Vec<char> = Vec::new();
            let (mut runs, mut ones) = (runs.into_iter(), ones.into_iter());
            for c in pattern.chars() {
                match c {
                    '*' => out.extend(runs.next().unwrap_or_default().chars()),
                    '?' => out.push(ones.next().unwrap_or('a')),
                    c => out.push(c),
                }
            }
            if let Some((at, c)) = edit {
                if out.is_empty() {
                    out.push(c);
                } else {
                    let at = at % out.len();
                    out[at] = c;
                }
            }
            (pattern, out.into_iter().collect())
        })
}

fn naive(pattern: &str, text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    naive_match(&wildcard_tokens(pattern), &text, false)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            ProptestConfig::default().cases
        } else {
            2000
        },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random patterns against random texts.
    #[test]
    fn glob_agrees_with_naive_matcher(pattern in pattern(), text in text()) {
        let got = Glob::new(&pattern).matches(&text);
        prop_assert_eq!(got, naive(&pattern, &text), "pattern {:?} text {:?}", pattern, text);
    }

    /// Texts derived from the pattern, so that matches are frequent.
    #[test]
    fn glob_agrees_with_naive_matcher_near_matches((pattern, text) in near_match()) {
        let got = Glob::new(&pattern).matches(&text);
        prop_assert_eq!(got, naive(&pattern, &text), "pattern {:?} text {:?}", pattern, text);
    }
}

/// The naive matcher itself, on the documented examples (IAM-SEMANTICS §1.5), so the oracle
/// is not trusted blindly.
#[test]
fn naive_matcher_follows_the_documented_examples() {
    let p = "B/*/test/*";
    for yes in [
        "B/1/test/o.jpg",
        "B/1/2/test/3/o.jpg",
        "B/1///test///o.jpg",
        "B//test/o.jpg",
        "B/1/test/",
    ] {
        assert!(naive(p, yes), "{yes}");
        assert!(Glob::new(p).matches(yes), "{yes}");
    }
    for no in ["B/1-test/o.jpg", "B/test/o.jpg", "B/1/2/test.jpg"] {
        assert!(!naive(p, no), "{no}");
        assert!(!Glob::new(p).matches(no), "{no}");
    }
    assert!(naive("a?c", "aéc"));
    assert!(!naive("a?c", "ac"));
    assert!(naive("a.c", "a.c"));
    assert!(!naive("a.c", "abc"));
    assert!(naive("", ""));
    assert!(!naive("", "a"));
    assert!(naive("**", ""));
}

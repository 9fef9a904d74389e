//! T26: the engine against the reference model, and the metamorphic laws of evaluation.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use iamlet::policy::{ParseOptions, PolicyDocument, PolicyKind};

use super::model::{self, Verdict};
use super::strategies::{case, case_and_statement, request, Case, GenPolicy, GenStatement, Parsed};

/// `cases`, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> Config {
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() {
        Config::default().cases
    } else {
        cases
    };
    Config {
        cases,
        // Minimized failures become explicit tests in `regressions`; no files are written.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Where a metamorphic test adds a statement.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The identity policy at this index (modulo their number), or a new one if none.
    Identity(usize),
    /// A new identity policy.
    NewIdentity,
    /// The boundary, when there is one.
    Boundary,
    /// The resource policy, when there is one.
    Resource,
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => any::<usize>().prop_map(Target::Identity),
        1 => Just(Target::NewIdentity),
        2 => Just(Target::Boundary),
        2 => Just(Target::Resource),
    ]
}

/// `case` with `extra` added where `target` says (falling back to the identity policies).
fn with_statement(case: &Case, mut extra: GenStatement, target: Target) -> Case {
    let mut case = case.clone();
    extra.fix_principal();
    let mut identity_statement = extra.clone();
    identity_statement.principal = None;
    match target {
        Target::Boundary if case.boundary.is_some() => {
            case.boundary
                .as_mut()
                .unwrap()
                .statements
                .push(identity_statement);
        }
        Target::Resource if case.resource.is_some() && extra.principal.is_some() => {
            case.resource.as_mut().unwrap().statements.push(extra);
        }
        Target::Identity(i) if !case.identity.is_empty() => {
            let n = case.identity.len();
            case.identity[i % n].statements.push(identity_statement);
        }
        _ => case.identity.push(GenPolicy {
            version: Some("2012-10-17"),
            statements: vec![identity_statement],
        }),
    }
    case
}

/// Reorders the statements of `policy` by `keys` and appends copies of those at `dups`.
fn shuffle(policy: &mut GenPolicy, keys: &[u32], dups: &[usize]) {
    let mut keyed: Vec<(u32, GenStatement)> = policy
        .statements
        .drain(..)
        .enumerate()
        .map(|(i, s)| (keys.get(i).copied().unwrap_or(0), s))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    policy.statements = keyed.into_iter().map(|(_, s)| s).collect();
    let n = policy.statements.len();
    for d in dups {
        let copy = policy.statements[d % n].clone();
        policy.statements.push(copy);
    }
}

proptest! {
    #![proptest_config(config(5000))]

    /// The engine and the reference agree on every generated case.
    #[test]
    fn engine_agrees_with_reference(case in case()) {
        let parsed = case.parse();
        let engine = parsed.engine(&case.request);
        let reference = parsed.reference(&case.request);
        prop_assert_eq!(engine, reference, "engine vs reference on\n{:?}", case);
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// A `Deny * on *` in any identity policy makes every request an explicit deny.
    #[test]
    fn explicit_deny_wins(case in case(), i in any::<usize>()) {
        let denied = with_statement(&case, GenStatement::deny_all(), Target::Identity(i));
        prop_assert_eq!(denied.engine(), Verdict::ExplicitDeny, "{:?}", denied);
        prop_assert_eq!(denied.reference(), Verdict::ExplicitDeny, "{:?}", denied);
    }

    /// Without policies, nothing is allowed.
    #[test]
    fn default_deny(request in request()) {
        let none = Parsed::empty();
        prop_assert_eq!(none.engine(&request), Verdict::ImplicitDeny, "{:?}", request);
        prop_assert_eq!(none.reference(&request), Verdict::ImplicitDeny, "{:?}", request);
    }

    /// Reordering and duplicating statements, and reordering identity policies, never
    /// changes the outcome.
    #[test]
    fn statement_order_and_duplicates_do_not_matter(
        case in case(),
        keys in prop::collection::vec(any::<u32>(), 4),
        dups in prop::collection::vec(any::<usize>(), 0..=2),
        reverse in any::<bool>(),
    ) {
        let before = case.engine();
        let mut shuffled = case.clone();
        for p in shuffled
            .identity
            .iter_mut()
            .chain(shuffled.boundary.iter_mut())
            .chain(shuffled.resource.iter_mut())
        {
            shuffle(p, &keys, &dups);
        }
        if reverse {
            shuffled.identity.reverse();
        }
        prop_assert_eq!(shuffled.engine(), before, "before:\n{:?}\nafter:\n{:?}", case, shuffled);
    }

    /// Adding an `Allow` never takes a permission away (nor lifts an explicit deny).
    #[test]
    fn adding_an_allow_never_denies(
        (case, extra) in case_and_statement(),
        target in target(),
    ) {
        let before = case.engine();
        let mut extra = extra;
        extra.allow = true;
        let after_case = with_statement(&case, extra, target);
        let after = after_case.engine();
        if before != Verdict::ImplicitDeny {
            prop_assert_eq!(after, before, "before:\n{:?}\nafter:\n{:?}", case, after_case);
        }
    }

    /// Adding a `Deny` never grants (nor turns an explicit deny into an implicit one).
    #[test]
    fn adding_a_deny_never_allows(
        (case, extra) in case_and_statement(),
        target in target(),
    ) {
        let before = case.engine();
        let mut extra = extra;
        extra.allow = false;
        let after_case = with_statement(&case, extra, target);
        let after = after_case.engine();
        match before {
            Verdict::Allow => prop_assert_ne!(after, Verdict::ImplicitDeny),
            Verdict::ExplicitDeny => prop_assert_eq!(after, Verdict::ExplicitDeny),
            Verdict::ImplicitDeny => prop_assert_ne!(after, Verdict::Allow),
        }
    }
}

proptest! {
    #![proptest_config(config(1000))]

    /// Issue 12, rule 5: a document is refused when it is written exactly when one of its
    /// condition values does not read as its operator's type; the stored reading accepts it.
    #[test]
    fn validation_refuses_exactly_the_unreadable_values(case in case()) {
        let policies = case
            .identity
            .iter()
            .map(|p| (p, PolicyKind::Identity))
            .chain(case.boundary.iter().map(|p| (p, PolicyKind::Boundary)))
            .chain(case.resource.iter().map(|p| (p, PolicyKind::Resource)));
        for (policy, kind) in policies {
            let stored = policy.parse(kind);
            let current = stored.version.supports_variables();
            let expect_valid = stored.statements.iter().all(|s| {
                s.conditions.iter().all(|c| {
                    c.values
                        .iter()
                        .all(|v| model::valid_at_write(c.operator.base, v, current))
                })
            });
            let written = PolicyDocument::parse_with(&policy.to_json(), ParseOptions::lenient(kind));
            prop_assert_eq!(written.is_ok(), expect_valid, "{}: {}", kind, policy.to_json());
            if let Err(e) = written {
                prop_assert_eq!(e.message(), "The policy failed legacy parsing");
                prop_assert!(e.location().is_some_and(|l| l.contains(".Condition.")));
            }
        }
    }
}

/// The generators are only useful if all three outcomes are common.
#[test]
fn generated_cases_reach_every_outcome() {
    let mut runner = TestRunner::deterministic();
    let strategy = case();
    let (mut allow, mut explicit, mut implicit) = (0u32, 0u32, 0u32);
    let total = 400;
    for _ in 0..total {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        match case.reference() {
            Verdict::Allow => allow += 1,
            Verdict::ExplicitDeny => explicit += 1,
            Verdict::ImplicitDeny => implicit += 1,
        }
    }
    eprintln!("outcomes of {total} cases: allow {allow}, explicit {explicit}, implicit {implicit}");
    for (name, n) in [
        ("Allow", allow),
        ("ExplicitDeny", explicit),
        ("ImplicitDeny", implicit),
    ] {
        assert!(
            n * 10 >= total,
            "{name} in only {n} of {total} cases (allow {allow}, explicit {explicit}, implicit {implicit})"
        );
    }
}

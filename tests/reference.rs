//! Differential and metamorphic property tests (RELIABILITY.md T26, T29).
//!
//! [`model`] is a second, deliberately naive evaluator: it reads the parsed
//! [`iamlet::policy::PolicyDocument`] (never the compiled form), matches wildcards with a
//! recursive matcher over `char`s, splits ARNs with `splitn`, and follows the documented
//! semantics (IAM-SEMANTICS §1–§3 and the decisions U3–U6 in the engine's module docs) line by
//! line. [`strategies`] generates small random policies as JSON text, over a universe small
//! enough that statements actually match. [`properties`] compares the engine with the model
//! and checks the metamorphic laws; [`glob`] checks `Glob` against the naive matcher.
//! [`regressions`] holds minimized counterexamples found by these properties.
//!
//! The universe covers issue 12's rules on both sides: set-qualified `Null`, KMS key ARNs
//! with and without a key policy, condition values of the wrong type (documents are read as
//! stored documents are, so such values reach evaluation, and a property checks that writing
//! them is refused), and `Bool` values that are policy variables.
//!
//! Case counts can be raised for a long run with `PROPTEST_CASES=20000`.

mod glob;
mod model;
mod properties;
mod regressions;
mod strategies;

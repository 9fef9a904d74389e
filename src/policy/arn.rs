//! ARN segment matching for `Resource` and the `Arn*` condition operators.
//!
//! An ARN is `arn:partition:service:region:account-id:resource`: split on the first five
//! colons, the sixth part may itself hold `:` and `/`. Patterns match segment by segment, so
//! `ArnLike` with `arn:aws:svc:*:111122223333:finance/*` does not match an ARN whose account is
//! different even when that account appears later in the resource part (StringLike would).
//!
//! Decisions on IAM's open points (IAM-SEMANTICS §7):
//! - U5: a pattern with fewer than six segments (`arn:aws:s3:*`) is padded with `*` segments,
//!   which is what "a trailing `*` may expand beyond colon boundaries" means in practice.
//! - U6: in `Resource`, the `arn`, partition, service, region and account segments compare
//!   case-insensitively and the resource part case-sensitively. `Arn*` conditions compare every
//!   segment case-sensitively, as the operator table says.

use super::pattern::{Glob, Syntax, VarLookup};

/// The six segments of an ARN, borrowed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArnParts<'a> {
    /// `arn`, partition, service, region, account id and resource, in that order.
    pub segments: [&'a str; 6],
}

/// A compiled ARN pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArnPattern {
    head: [Glob; 5],
    resource: Glob,
    fold_head: bool,
}

// === impl ArnParts ===

impl<'a> ArnParts<'a> {
    /// Splits `text` into its six segments; `None` unless it starts with `arn:` (in any case)
    /// and has at least five colons.
    pub fn split(text: &'a str) -> Option<Self> {
        Self::from_colons(text, colon_offsets(text)?)
    }

    /// The segments of `text`, given the offsets of its first five colons.
    pub(crate) fn from_colons(text: &'a str, colons: [usize; 5]) -> Option<Self> {
        let [c0, c1, c2, c3, c4] = colons;
        Some(Self {
            segments: [
                text.get(..c0)?,
                text.get(c0 + 1..c1)?,
                text.get(c1 + 1..c2)?,
                text.get(c2 + 1..c3)?,
                text.get(c3 + 1..c4)?,
                text.get(c4 + 1..)?,
            ],
        })
    }

    /// The partition segment.
    pub fn partition(&self) -> &'a str {
        self.segments[1]
    }

    /// The service segment.
    pub fn service(&self) -> &'a str {
        self.segments[2]
    }

    /// The account segment.
    pub fn account(&self) -> &'a str {
        self.segments[4]
    }

    /// The resource part (everything after the fifth colon).
    pub fn resource(&self) -> &'a str {
        self.segments[5]
    }
}

/// The byte offsets of the first five colons of an ARN-shaped text (one that starts with `arn:`
/// in any case). A plain byte scan: this runs for every condition value an `Arn*` operator reads.
pub(crate) fn colon_offsets(text: &str) -> Option<[usize; 5]> {
    if !text.get(..4)?.eq_ignore_ascii_case("arn:") {
        return None;
    }
    let mut colons = [0usize; 5];
    let mut found = 0usize;
    for (i, b) in text.bytes().enumerate() {
        if b == b':' {
            match colons.get_mut(found) {
                Some(slot) => *slot = i,
                None => break,
            }
            found += 1;
        }
    }
    (found >= 5).then_some(colons)
}

// === impl ArnPattern ===

impl ArnPattern {
    /// Compiles `pattern` if it is ARN-shaped (starts with `arn:`), padding missing segments
    /// with `*`.
    pub(crate) fn compile(pattern: &str, variables: bool, fold_head: bool) -> Option<Self> {
        let mut it = pattern.splitn(6, ':');
        let first = it.next()?;
        if !first.eq_ignore_ascii_case("arn") {
            return None;
        }
        let head_syntax = Syntax {
            wildcards: true,
            variables,
            lowercase: fold_head,
        };
        let segment = |text: Option<&str>, syntax| Glob::compile(text.unwrap_or("*"), syntax);
        let head = [
            Glob::compile(first, head_syntax),
            segment(it.next(), head_syntax),
            segment(it.next(), head_syntax),
            segment(it.next(), head_syntax),
            segment(it.next(), head_syntax),
        ];
        let resource = segment(
            it.next(),
            Syntax {
                wildcards: true,
                variables,
                lowercase: false,
            },
        );
        Some(Self {
            head,
            resource,
            fold_head,
        })
    }

    /// Matches an ARN split into segments.
    pub(crate) fn matches(&self, arn: &ArnParts<'_>, vars: &dyn VarLookup) -> bool {
        self.head
            .iter()
            .zip(arn.segments.iter())
            // Both sides of the head are lowercased already; only a substituted variable value
            // can carry upper case, so only then is the slower folding compare needed.
            .all(|(glob, segment)| {
                glob.matches_with(segment, vars, self.fold_head && glob.has_variables())
            })
            && self.resource.matches_with(arn.resource(), vars, false)
    }

    pub(crate) fn globs(&self) -> impl Iterator<Item = &Glob> {
        self.head.iter().chain(std::iter::once(&self.resource))
    }
}

#[cfg(test)]
mod tests {
    use super::super::pattern::NoVars;
    use super::*;

    fn arn_like(pattern: &str, value: &str) -> bool {
        let p = ArnPattern::compile(pattern, true, false).unwrap();
        ArnParts::split(value).is_some_and(|a| p.matches(&a, &NoVars))
    }

    #[test]
    fn arn_like_is_per_segment() {
        // IAM-SEMANTICS §6.2 T5.
        let value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt";
        assert!(!arn_like(
            "arn:aws:someservice:*:111122223333:finance/*",
            value
        ));
        assert!(Glob::new("arn:aws:someservice:*:111122223333:finance/*").matches(value));
        assert!(arn_like("arn:aws:someservice:*:999999999999:*", value));
    }

    #[test]
    fn short_patterns_are_padded() {
        assert!(arn_like("arn:aws:s3:*", "arn:aws:s3:::bucket/key"));
        assert!(!arn_like(
            "arn:aws:s3:*",
            "arn:aws:ec2:us-east-1:1:instance/i-1"
        ));
    }

    #[test]
    fn resource_head_is_case_insensitive_resource_part_is_not() {
        let p = ArnPattern::compile("arn:AWS:IAM::111122223333:user/Bob", false, true).unwrap();
        let lower = "arn:aws:iam::111122223333:user/Bob";
        assert!(p.matches(&ArnParts::split(lower).unwrap(), &NoVars));
        let other = "arn:aws:iam::111122223333:user/bob";
        assert!(!p.matches(&ArnParts::split(other).unwrap(), &NoVars));
    }

    #[test]
    fn split_needs_six_segments() {
        assert!(ArnParts::split("arn:aws:s3:::b").is_some());
        assert!(ArnParts::split("arn:aws:s3::b").is_none());
        assert!(ArnParts::split("urn:aws:s3:::b").is_none());
        let a = ArnParts::split("arn:aws:logs:us-east-1:1:log-group:x:*").unwrap();
        assert_eq!(a.resource(), "log-group:x:*");
        assert_eq!(a.account(), "1");
    }
}

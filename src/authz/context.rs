//! The typed request context: condition keys and their values.

use crate::error::AwsCode;
use crate::policy::{ConditionLookup, ContextValue, KeyValues, VarLookup};

/// A request's condition keys. Keys are case-insensitive (stored lowercased); a key is either
/// single-valued or multi-valued (`aws:TagKeys`, `aws:CalledVia`, ...).
///
/// Entries live in a vector sorted by key: a request carries a handful of keys, so a binary
/// search beats hashing, and no choice of keys by a caller can degrade it. The stored key is
/// the canonical (lowercased) one and [`Context::iter`] yields keys in that canonical order, so
/// anything built from the iteration (a decision cache's key) does not depend on how a caller
/// spelled or ordered its keys.
///
/// Condition key names are case-insensitive (`aws:SourceIP` ≡ `AWS:SourceIp`,
/// IAM-SEMANTICS §2.1), so two keys that differ only in case name one key: a caller that sends
/// both with different values has asked an ambiguous question. The `try_insert*` methods
/// refuse the second with a [`DuplicateKeyError`] naming both spellings; the plain `insert*`
/// methods replace, for keys the engine itself derives.
#[derive(Debug, Clone, Default)]
pub struct Context {
    entries: Vec<Slot>,
}

#[derive(Debug, Clone)]
struct Slot {
    /// The canonical key.
    key: Box<str>,
    /// The key as a `try_insert*` caller spelled it, when that differs from `key`: only for
    /// naming both keys in a [`DuplicateKeyError`].
    given: Option<Box<str>>,
    entry: Entry,
}

/// Two request context keys that differ only in case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("context keys `{first}` and `{second}` differ only in case; condition keys are case-insensitive, so give the key once")]
pub struct DuplicateKeyError {
    /// The key given first (as spelled).
    pub first: String,
    /// The key given second (as spelled).
    pub second: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Single(ContextValue),
    Multi(Box<[ContextValue]>),
}

// === impl Context ===

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a single-valued key, replacing any earlier value.
    pub fn insert(&mut self, key: &str, value: ContextValue) {
        self.set(key, Entry::Single(value), true);
    }

    fn set(&mut self, key: &str, entry: Entry, replace: bool) {
        let key = key.to_lowercase();
        match self.position(&key) {
            Ok(i) => {
                if let (true, Some(slot)) = (replace, self.entries.get_mut(i)) {
                    slot.entry = entry;
                }
            }
            Err(i) => self.entries.insert(
                i,
                Slot {
                    key: key.into(),
                    given: None,
                    entry,
                },
            ),
        }
    }

    /// Adds `key`, refusing a key already present under another spelling (or the same one).
    fn try_set(&mut self, key: &str, entry: Entry) -> Result<(), DuplicateKeyError> {
        let canonical = key.to_lowercase();
        match self.position(&canonical) {
            Ok(i) => Err(DuplicateKeyError {
                first: self
                    .entries
                    .get(i)
                    .map(|s| s.given.as_deref().unwrap_or(&s.key).to_owned())
                    .unwrap_or_default(),
                second: key.to_owned(),
            }),
            Err(i) => {
                let given = (canonical != key).then(|| Box::from(key));
                self.entries.insert(
                    i,
                    Slot {
                        key: canonical.into(),
                        given,
                        entry,
                    },
                );
                Ok(())
            }
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|s| (*s.key).cmp(key))
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        self.position(key)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|s| &s.entry)
    }

    /// Adds a single-valued key; refuses a key the context already holds in any case.
    pub fn try_insert(&mut self, key: &str, value: ContextValue) -> Result<(), DuplicateKeyError> {
        self.try_set(key, Entry::Single(value))
    }

    /// Adds a single-valued key given as text; refuses a key the context already holds in
    /// any case.
    pub fn try_insert_str(&mut self, key: &str, value: &str) -> Result<(), DuplicateKeyError> {
        self.try_insert(key, ContextValue::new(value))
    }

    /// Adds a multi-valued key; refuses a key the context already holds in any case.
    pub fn try_insert_multi(
        &mut self,
        key: &str,
        values: Vec<ContextValue>,
    ) -> Result<(), DuplicateKeyError> {
        self.try_set(key, Entry::Multi(values.into_boxed_slice()))
    }

    /// Checks that no two of `keys` differ only in case, for a caller that holds its keys in
    /// a map before building the context (a protobuf `map<string, …>` iterates in no fixed
    /// order, so which of two such keys "wins" would change from call to call). The pair is
    /// named in lexical order, whatever order the map iterated in.
    ///
    /// This runs on every request, cache hits included: a handful of keys is compared pairwise
    /// without allocating; only a large map is folded and sorted.
    pub fn check_keys<'k>(
        keys: impl IntoIterator<Item = &'k String>,
    ) -> Result<(), DuplicateKeyError> {
        const PAIRWISE: usize = 16;
        let duplicate = |a: &str, b: &str| {
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            DuplicateKeyError {
                first: first.to_owned(),
                second: second.to_owned(),
            }
        };
        let mut few: [&str; PAIRWISE] = [""; PAIRWISE];
        let mut n = 0usize;
        let mut keys = keys.into_iter();
        while let Some(key) = keys.next() {
            if n == PAIRWISE {
                // Too many to compare pairwise: fold and sort them all.
                let mut folded: Vec<(String, &str)> = few
                    .iter()
                    .copied()
                    .chain(std::iter::once(key.as_str()))
                    .chain(keys.map(String::as_str))
                    .map(|k| (k.to_lowercase(), k))
                    .collect();
                folded.sort_unstable();
                for pair in folded.windows(2) {
                    if let [(a, first), (b, second)] = pair {
                        if a == b {
                            return Err(duplicate(first, second));
                        }
                    }
                }
                return Ok(());
            }
            if let Some(earlier) = few.iter().take(n).find(|e| same_key(e, key)) {
                return Err(duplicate(earlier, key));
            }
            if let Some(slot) = few.get_mut(n) {
                *slot = key;
            }
            n += 1;
        }
        Ok(())
    }

    /// Sets a single-valued key given as text.
    pub fn insert_str(&mut self, key: &str, value: &str) {
        self.insert(key, ContextValue::new(value));
    }

    /// Sets a multi-valued key, replacing any earlier value.
    pub fn insert_multi(&mut self, key: &str, values: Vec<ContextValue>) {
        self.set(key, Entry::Multi(values.into_boxed_slice()), true);
    }

    /// Sets `key` only when the request does not carry it already.
    pub fn insert_if_absent(&mut self, key: &str, value: ContextValue) {
        self.set(key, Entry::Single(value), false);
    }

    /// Sets every key of `other`, replacing values this context has for them.
    pub fn merge(&mut self, other: &Context) {
        if self.entries.is_empty() {
            self.entries.clone_from(&other.entries);
            return;
        }
        for slot in &other.entries {
            match self.position(&slot.key) {
                Ok(i) => {
                    if let Some(mine) = self.entries.get_mut(i) {
                        mine.entry = slot.entry.clone();
                    }
                }
                Err(i) => self.entries.insert(i, slot.clone()),
            }
        }
    }

    /// Removes a key.
    pub fn remove(&mut self, key: &str) {
        if let Ok(i) = self.position(&key.to_lowercase()) {
            self.entries.remove(i);
        }
    }

    /// The values of `key` (any case).
    pub fn get(&self, key: &str) -> Option<KeyValues<'_>> {
        if key.chars().any(char::is_uppercase) {
            self.values(&key.to_lowercase())
        } else {
            self.values(key)
        }
    }

    /// True when the context has no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every key (canonical: lowercased) with its values, in canonical key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, KeyValues<'_>)> {
        self.entries.iter().map(|s| (&*s.key, s.entry.as_values()))
    }
}

/// Equal when the canonical keys and their values are: spelling is not part of a context.
impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|(a, b)| a.key == b.key && a.entry == b.entry)
    }
}

// === impl DuplicateKeyError ===

impl DuplicateKeyError {
    /// AWS's code for a parameter that breaks its constraint (the gRPC edge answers
    /// `INVALID_ARGUMENT`).
    pub fn code(&self) -> AwsCode {
        AwsCode::ValidationError
    }
}

/// Whether two keys name one condition key (the lowercasing [`Context`] stores keys under).
fn same_key(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

impl Entry {
    fn as_values(&self) -> KeyValues<'_> {
        match self {
            Self::Single(v) => KeyValues::Single(v),
            Self::Multi(vs) => KeyValues::Multi(vs),
        }
    }
}

impl VarLookup for Context {
    /// Only single-valued keys can be policy variables.
    fn lookup(&self, key: &str) -> Option<&str> {
        match self.entry(key)? {
            Entry::Single(v) => Some(v.as_str()),
            Entry::Multi(_) => None,
        }
    }
}

impl ConditionLookup for Context {
    fn values(&self, key: &str) -> Option<KeyValues<'_>> {
        self.entry(key).map(Entry::as_values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_case_insensitive() {
        let mut ctx = Context::new();
        ctx.insert_str("aws:PrincipalTag/Team", "blue");
        assert!(
            matches!(ctx.get("AWS:PRINCIPALTAG/team"), Some(KeyValues::Single(v)) if v.as_str() == "blue")
        );
        assert_eq!(ctx.lookup("aws:principaltag/team"), Some("blue"));
    }

    /// Issue 12, rule 6: keys that differ only in case are one key; a fallible insert refuses
    /// the second, naming both, and the stored key is the canonical one.
    #[test]
    fn keys_differing_only_in_case_are_refused_naming_both() {
        let mut ctx = Context::new();
        ctx.try_insert_str("aws:SourceIp", "10.0.0.1").unwrap();
        let e = ctx.try_insert_str("AWS:SOURCEIP", "192.0.2.1").unwrap_err();
        assert_eq!(e.first, "aws:SourceIp");
        assert_eq!(e.second, "AWS:SOURCEIP");
        assert!(
            e.to_string().contains("`aws:SourceIp` and `AWS:SOURCEIP`"),
            "{e}"
        );
        assert_eq!(e.code(), AwsCode::ValidationError);
        // The first value stands, under the canonical key.
        assert_eq!(ctx.lookup("aws:sourceip"), Some("10.0.0.1"));
        assert_eq!(
            ctx.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            ["aws:sourceip"]
        );
        let e = ctx
            .try_insert_multi("Aws:SourceIP", vec![ContextValue::new("x")])
            .unwrap_err();
        assert_eq!(
            (e.first.as_str(), e.second.as_str()),
            ("aws:SourceIp", "Aws:SourceIP")
        );
        // The same key twice is refused too; a lowercase first key is named as given.
        let mut lower = Context::new();
        lower.try_insert_str("s3:prefix", "a").unwrap();
        let e = lower.try_insert_str("S3:Prefix", "b").unwrap_err();
        assert_eq!(e.first, "s3:prefix");
    }

    #[test]
    fn check_keys_finds_case_duplicates_in_any_order() {
        let keys = |ks: &[&str]| ks.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>();
        assert!(Context::check_keys(&keys(&["aws:SourceIp", "s3:prefix", "aws:username"])).is_ok());
        for order in [
            keys(&["aws:SourceIp", "x:y", "AWS:SOURCEIP"]),
            keys(&["AWS:SOURCEIP", "x:y", "aws:SourceIp"]),
        ] {
            let e = Context::check_keys(&order).unwrap_err();
            // Named the same way whatever the order.
            assert_eq!(
                (e.first.as_str(), e.second.as_str()),
                ("AWS:SOURCEIP", "aws:SourceIp")
            );
        }
        // Past the pairwise limit too, wherever the twins stand; and non-ASCII letters fold.
        let mut many: Vec<String> = (0..40).map(|i| format!("k:{i}")).collect();
        assert!(Context::check_keys(&many).is_ok());
        many.insert(3, "aws:PrincipalTag/Équipe".into());
        many.push("AWS:principaltag/équipe".into());
        let e = Context::check_keys(&many).unwrap_err();
        assert_eq!(
            (e.first.as_str(), e.second.as_str()),
            ("AWS:principaltag/équipe", "aws:PrincipalTag/Équipe")
        );
        let e = Context::check_keys(&keys(&[
            "aws:PrincipalTag/Équipe",
            "aws:principaltag/ÉQUIPE",
        ]))
        .unwrap_err();
        assert_eq!(e.second, "aws:principaltag/ÉQUIPE");
        let twins_late: Vec<String> = (0..20)
            .map(|i| format!("k:{i}"))
            .chain(["x:Y".to_owned(), "X:y".to_owned()])
            .collect();
        assert!(Context::check_keys(&twins_late).is_err());
        assert!(Context::check_keys(&keys(&[])).is_ok());
    }

    #[test]
    fn spelling_and_order_do_not_change_a_context() {
        let mut a = Context::new();
        a.try_insert_str("aws:SourceIp", "10.0.0.1").unwrap();
        a.try_insert_str("s3:prefix", "p").unwrap();
        let mut b = Context::new();
        b.try_insert_str("S3:PREFIX", "p").unwrap();
        b.try_insert_str("AWS:sourceip", "10.0.0.1").unwrap();
        assert_eq!(a, b);
        assert!(a.iter().map(|(k, _)| k).eq(b.iter().map(|(k, _)| k)));
    }

    #[test]
    fn multi_valued_keys_are_not_variables() {
        let mut ctx = Context::new();
        ctx.insert_multi("aws:TagKeys", vec![ContextValue::new("a")]);
        assert_eq!(ctx.lookup("aws:tagkeys"), None);
        assert!(matches!(
            ctx.get("aws:TagKeys"),
            Some(KeyValues::Multi([_]))
        ));
    }
}

//! The typed request context: condition keys and their values.

use crate::policy::{ConditionLookup, ContextValue, KeyValues, VarLookup};

/// A request's condition keys. Keys are case-insensitive (stored lowercased); a key is either
/// single-valued or multi-valued (`aws:TagKeys`, `aws:CalledVia`, ...).
///
/// Entries live in a vector sorted by key: a request carries a handful of keys, so a binary
/// search beats hashing, and no choice of keys by a caller can degrade it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    entries: Vec<(Box<str>, Entry)>,
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
                    slot.1 = entry;
                }
            }
            Err(i) => self.entries.insert(i, (key.into(), entry)),
        }
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| (**k).cmp(key))
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        self.position(key)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|(_, e)| e)
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
        for (key, entry) in &other.entries {
            match self.position(key) {
                Ok(i) => {
                    if let Some(slot) = self.entries.get_mut(i) {
                        slot.1 = entry.clone();
                    }
                }
                Err(i) => self.entries.insert(i, (key.clone(), entry.clone())),
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

    /// Every key (lowercased) with its values, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, KeyValues<'_>)> {
        self.entries.iter().map(|(k, v)| (&**k, v.as_values()))
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

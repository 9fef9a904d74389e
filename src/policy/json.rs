//! Strict JSON for policy documents.
//!
//! IAM rejects a document whose object repeats a key ("Individual elements must not contain
//! multiple instances of the same key"), while most JSON libraries silently keep the last one.
//! This module parses into an ordered tree that keeps every key once and reports duplicates, so
//! the validator sees exactly what the author wrote. Nesting depth is bounded by serde_json's
//! recursion limit (128), so no input can overflow the stack.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value with objects kept in document order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// A number, kept as the text IAM compares (`1`, `-3`, `1.5`).
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Objects at most this large are checked for duplicates by a linear scan; larger ones use a
/// hash set so a hostile object with thousands of keys stays linear.
const LINEAR_DUPLICATE_SCAN: usize = 16;

// === impl Json ===

impl Json {
    /// Parses `text`, rejecting duplicate keys, trailing characters and nesting deeper than 128.
    pub(crate) fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Number(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        let mut seen: Option<HashSet<String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            let duplicate = match seen.as_mut() {
                Some(set) => !set.insert(key.clone()),
                None => {
                    let dup = entries.iter().any(|(k, _)| *k == key);
                    if entries.len() >= LINEAR_DUPLICATE_SCAN {
                        let mut set: HashSet<String> =
                            entries.iter().map(|(k, _)| k.clone()).collect();
                        set.insert(key.clone());
                        seen = Some(set);
                    }
                    dup
                }
            };
            if duplicate {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let value = map.next_value::<Json>()?;
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_numbers_as_text() {
        let v = Json::parse(r#"{"b": 1, "a": [true, null, 1.5, -2, "x"]}"#).unwrap();
        let Json::Object(entries) = v else {
            panic!("object")
        };
        assert_eq!(entries[0].0, "b");
        assert_eq!(entries[0].1, Json::Number("1".into()));
        assert_eq!(
            entries[1].1,
            Json::Array(vec![
                Json::Bool(true),
                Json::Null,
                Json::Number("1.5".into()),
                Json::Number("-2".into()),
                Json::String("x".into()),
            ])
        );
    }

    #[test]
    fn rejects_duplicate_keys_small_and_large() {
        let err = Json::parse(r#"{"Effect": "Allow", "Effect": "Deny"}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate key `Effect`"), "{err}");
        let mut text = String::from("{");
        for i in 0..100 {
            text.push_str(&format!("\"k{i}\": {i},"));
        }
        text.push_str("\"k42\": 0}");
        assert!(Json::parse(&text)
            .unwrap_err()
            .to_string()
            .contains("`k42`"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = "[".repeat(100_000) + &"]".repeat(100_000);
        assert!(Json::parse(&text).is_err());
    }

    #[test]
    fn rejects_trailing_garbage() {
        assert!(Json::parse(r#"{"a": 1} x"#).is_err());
    }
}

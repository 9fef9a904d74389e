//! The syntax phase read straight from the text, without an intermediate JSON tree.
//!
//! Each element is deserialized by a reader for its shape (a statement, a string list, a
//! condition block, ...) that builds the typed draft as the text streams by. The result must
//! be exactly what building the whole tree first and then walking it gave (issue #19 P5; the
//! tree walk is kept in `reference.rs` for the tests that prove it), which fixes three rules:
//!
//! - JSON problems (bad syntax, a duplicate key at any depth, nesting deeper than 128, trailing
//!   characters) win over every grammar error, wherever they are: after a grammar error the
//!   rest of the document is still read, only no longer built;
//! - of the grammar errors, the first one the tree walk would meet wins: a top-level key's
//!   error beats any error inside `Statement`, an object's keys are checked in document order,
//!   a missing `Effect` only after the statement's other keys, and an unknown condition
//!   operator only after its block's values;
//! - duplicate keys are found where the tree found them (just after the repeated key), so the
//!   reported line and column do not move.

use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{at, syntax, Draft, SyntaxOutput, MSG_SYNTAX};
use crate::policy::document::{
    ActionBlock, ConditionEntry, ConditionOperator, PolicyVersion, PrincipalBlock, PrincipalSpec,
    PrincipalType, ResourceBlock,
};
use crate::policy::PolicyError;

/// Objects at most this large are checked for duplicate keys by a linear scan; larger ones use
/// a hash set so a hostile object with thousands of keys stays linear (as the tree did).
const LINEAR_DUPLICATE_SCAN: usize = 16;

/// Reads `text` as far as the syntax phase goes: JSON errors as `MSG_SYNTAX` at their line
/// and column, then the first grammar error, else the version, id and statement drafts.
pub(super) fn syntax_phase(text: &str) -> Result<SyntaxOutput, PolicyError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let read = Read(Top).deserialize(&mut de).and_then(|out| {
        de.end()?;
        Ok(out)
    });
    match read {
        Ok(grammar) => grammar,
        Err(e) => Err(PolicyError::malformed(
            MSG_SYNTAX,
            Some(format!("line {} column {}", e.line(), e.column())),
        )),
    }
}

/// An object key or string value, borrowed from the text unless it held escapes.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Borrowed(s) => s,
            Self::Owned(s) => s,
        }
    }
}

impl Text<'_> {
    fn into_string(self) -> String {
        match self {
            Self::Borrowed(s) => s.to_owned(),
            Self::Owned(s) => s,
        }
    }
}

/// Deserializes an object key.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Text<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Text<'de>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text::Owned(v))
    }
}

/// The keys of one object so far, to refuse a repeated one as the tree did.
#[derive(Default)]
struct SeenKeys<'de> {
    keys: Vec<Text<'de>>,
    set: Option<HashSet<String>>,
}

impl<'de> SeenKeys<'de> {
    /// Records `key`; an error (a JSON one, at the current position) when it was seen before.
    fn insert<E: de::Error>(&mut self, key: &Text<'de>) -> Result<(), E> {
        let duplicate = match self.set.as_mut() {
            Some(set) => !set.insert(key.to_string()),
            None => {
                let duplicate = self.keys.iter().any(|k| **k == **key);
                if self.keys.len() >= LINEAR_DUPLICATE_SCAN {
                    let mut set: HashSet<String> =
                        self.keys.drain(..).map(Text::into_string).collect();
                    set.insert(key.to_string());
                    self.set = Some(set);
                } else {
                    self.keys.push(match key {
                        Text::Borrowed(s) => Text::Borrowed(s),
                        Text::Owned(s) => Text::Owned(s.clone()),
                    });
                }
                duplicate
            }
        };
        if duplicate {
            return Err(de::Error::custom(format_args!(
                "duplicate key `{}`",
                &**key
            )));
        }
        Ok(())
    }

    /// The next key of `map`, checked against the earlier ones.
    fn next<A: MapAccess<'de>>(&mut self, map: &mut A) -> Result<Option<Text<'de>>, A::Error> {
        let Some(key) = map.next_key_seed(KeySeed)? else {
            return Ok(None);
        };
        self.insert::<A::Error>(&key)?;
        Ok(Some(key))
    }
}

/// What an element's reader makes of each JSON shape; a shape it does not expect gives
/// [`Reader::wrong`] once the value is read through.
trait Reader<'de>: Sized {
    type Out;

    /// The outcome for a value of the wrong shape.
    fn wrong(self) -> Self::Out;

    fn string(self, _value: Text<'de>) -> Self::Out {
        self.wrong()
    }

    /// A number, as the text IAM compares (`1`, `-3`, `1.5`).
    fn number(self, _text: String) -> Self::Out {
        self.wrong()
    }

    fn boolean(self, _value: bool) -> Self::Out {
        self.wrong()
    }

    fn null(self) -> Self::Out {
        self.wrong()
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        skip_seq(&mut seq)?;
        Ok(self.wrong())
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        skip_map(&mut map, SeenKeys::default())?;
        Ok(self.wrong())
    }
}

/// Adapts a [`Reader`] to serde: any JSON value, dispatched on its shape.
struct Read<R>(R);

impl<'de, R: Reader<'de>> DeserializeSeed<'de> for Read<R> {
    type Value = R::Out;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<R::Out, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, R: Reader<'de>> Visitor<'de> for Read<R> {
    type Value = R::Out;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<R::Out, E> {
        Ok(self.0.null())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<R::Out, E> {
        Ok(self.0.boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<R::Out, E> {
        Ok(self.0.number(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<R::Out, E> {
        Ok(self.0.number(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<R::Out, E> {
        Ok(self.0.number(v.to_string()))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<R::Out, E> {
        Ok(self.0.string(Text::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<R::Out, E> {
        Ok(self.0.string(Text::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<R::Out, E> {
        Ok(self.0.string(Text::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<R::Out, A::Error> {
        self.0.seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<R::Out, A::Error> {
        self.0.map(map)
    }
}

/// Reads a value through without building it, still refusing what the tree refused.
struct Skip;

impl<'de> Reader<'de> for Skip {
    type Out = ();

    fn wrong(self) {}

    fn string(self, _value: Text<'de>) {}

    fn number(self, _text: String) {}

    fn boolean(self, _value: bool) {}

    fn null(self) {}
}

fn skip_seq<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<(), A::Error> {
    while seq.next_element_seed(Read(Skip))?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(map: &mut A, mut seen: SeenKeys<'de>) -> Result<(), A::Error> {
    while seen.next(map)?.is_some() {
        map.next_value_seed(Read(Skip))?;
    }
    Ok(())
}

/// The document: an object of `Version`, `Id` and `Statement`.
struct Top;

impl<'de> Reader<'de> for Top {
    type Out = Result<SyntaxOutput, PolicyError>;

    fn wrong(self) -> Self::Out {
        Err(syntax("(document)"))
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut seen = SeenKeys::default();
        let mut version = PolicyVersion::Unspecified;
        let mut id = None;
        let mut statement = None;
        while let Some(key) = seen.next(&mut map)? {
            let error = match &*key {
                "Version" => match map.next_value_seed(Read(Str))? {
                    Some(v) if &*v == "2012-10-17" => {
                        version = PolicyVersion::Current;
                        None
                    }
                    Some(v) if &*v == "2008-10-17" => {
                        version = PolicyVersion::Legacy;
                        None
                    }
                    _ => Some(syntax("Version")),
                },
                "Id" => match map.next_value_seed(Read(Str))? {
                    Some(v) => {
                        id = Some(v.into_string());
                        None
                    }
                    None => Some(syntax("Id")),
                },
                "Statement" => {
                    statement = Some(map.next_value_seed(Read(Statements))?);
                    None
                }
                other => {
                    map.next_value_seed(Read(Skip))?;
                    Some(syntax(other))
                }
            };
            if let Some(error) = error {
                skip_map(&mut map, seen)?;
                return Ok(Err(error));
            }
        }
        Ok(match statement {
            Some(drafts) => drafts.map(|drafts| (version, id, drafts)),
            None => Err(syntax("Statement")),
        })
    }
}

/// A string value; anything else is `None`.
struct Str;

impl<'de> Reader<'de> for Str {
    type Out = Option<Text<'de>>;

    fn wrong(self) -> Self::Out {
        None
    }

    fn string(self, value: Text<'de>) -> Self::Out {
        Some(value)
    }
}

/// `Statement`: one statement object, or a non-empty list of them.
struct Statements;

impl<'de> Reader<'de> for Statements {
    type Out = Result<Vec<Draft>, PolicyError>;

    fn wrong(self) -> Self::Out {
        Err(syntax("Statement"))
    }

    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error> {
        Ok(Statement {
            location: "Statement".to_owned(),
        }
        .map(map)?
        .map(|draft| vec![draft]))
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let mut drafts = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        let mut i = 0usize;
        while let Some(draft) = seq.next_element_seed(Read(Statement {
            location: format!("Statement[{i}]"),
        }))? {
            match draft {
                Ok(draft) => drafts.push(draft),
                Err(error) => {
                    skip_seq(&mut seq)?;
                    return Ok(Err(error));
                }
            }
            i += 1;
        }
        if drafts.is_empty() {
            return Ok(Err(syntax("Statement")));
        }
        Ok(Ok(drafts))
    }
}

/// One statement, at `location` (`Statement` or `Statement[i]`).
struct Statement {
    location: String,
}

impl<'de> Reader<'de> for Statement {
    type Out = Result<Draft, PolicyError>;

    fn wrong(self) -> Self::Out {
        Err(syntax(self.location))
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut seen = SeenKeys::default();
        let mut draft = Draft {
            location: self.location,
            sid: None,
            effect: String::new(),
            principal: None,
            action: None,
            resource: None,
            conditions: Vec::new(),
        };
        let mut effect = None;
        while let Some(key) = seen.next(&mut map)? {
            let ok = match &*key {
                "Sid" => map.next_value_seed(Read(Str))?.map(|s| {
                    draft.sid = Some(s.into_string());
                }),
                "Effect" => map
                    .next_value_seed(Read(Str))?
                    .filter(|s| s.eq_ignore_ascii_case("allow") || s.eq_ignore_ascii_case("deny"))
                    .map(|s| effect = Some(s.into_string())),
                "Action" | "NotAction" if draft.action.is_none() => {
                    map.next_value_seed(Read(StringList))?.map(|patterns| {
                        draft.action = Some(ActionBlock {
                            negated: &*key == "NotAction",
                            patterns,
                        });
                    })
                }
                "Resource" | "NotResource" if draft.resource.is_none() => {
                    map.next_value_seed(Read(StringList))?.map(|patterns| {
                        draft.resource = Some(ResourceBlock {
                            negated: &*key == "NotResource",
                            patterns,
                        });
                    })
                }
                "Principal" | "NotPrincipal" if draft.principal.is_none() => {
                    map.next_value_seed(Read(Principals))?.map(|principals| {
                        draft.principal = Some(PrincipalBlock {
                            negated: &*key == "NotPrincipal",
                            principals,
                        });
                    })
                }
                "Condition" => {
                    let here = at(&draft.location, &key);
                    match map.next_value_seed(Read(Conditions { location: here }))? {
                        Ok(conditions) => {
                            draft.conditions = conditions;
                            Some(())
                        }
                        Err(error) => {
                            skip_map(&mut map, seen)?;
                            return Ok(Err(error));
                        }
                    }
                }
                // A second `Action`/`NotAction` (and the like), or an unknown element.
                _ => {
                    map.next_value_seed(Read(Skip))?;
                    None
                }
            };
            if ok.is_none() {
                let here = at(&draft.location, &key);
                skip_map(&mut map, seen)?;
                return Ok(Err(syntax(here)));
            }
        }
        match effect {
            Some(effect) => {
                draft.effect = effect;
                Ok(Ok(draft))
            }
            None => Ok(Err(syntax(at(&draft.location, "Effect")))),
        }
    }
}

/// A string or a list of strings; `null` entries in a list are skipped, as IAM does.
struct StringList;

impl<'de> Reader<'de> for StringList {
    type Out = Option<Vec<String>>;

    fn wrong(self) -> Self::Out {
        None
    }

    fn string(self, value: Text<'de>) -> Self::Out {
        Some(vec![value.into_string()])
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(item) = seq.next_element_seed(Read(StringOrNull))? {
            match item {
                Some(Some(s)) => out.push(s.into_string()),
                Some(None) => {}
                None => {
                    skip_seq(&mut seq)?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(out))
    }
}

/// An item of a string list: a string, or `null` (`Some(None)`).
struct StringOrNull;

impl<'de> Reader<'de> for StringOrNull {
    type Out = Option<Option<Text<'de>>>;

    fn wrong(self) -> Self::Out {
        None
    }

    fn string(self, value: Text<'de>) -> Self::Out {
        Some(Some(value))
    }

    fn null(self) -> Self::Out {
        Some(None)
    }
}

/// `Principal`: `"*"`, or a non-empty object of principal types to a string or strings.
struct Principals;

impl<'de> Reader<'de> for Principals {
    type Out = Option<PrincipalSpec>;

    fn wrong(self) -> Self::Out {
        None
    }

    fn string(self, value: Text<'de>) -> Self::Out {
        (&*value == "*").then_some(PrincipalSpec::Everyone)
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut seen = SeenKeys::default();
        let mut out = Vec::new();
        while let Some(key) = seen.next(&mut map)? {
            let Some(kind) = PrincipalType::from_name(&key) else {
                map.next_value_seed(Read(Skip))?;
                skip_map(&mut map, seen)?;
                return Ok(None);
            };
            let Some(values) = map.next_value_seed(Read(Strings))? else {
                skip_map(&mut map, seen)?;
                return Ok(None);
            };
            out.push((kind, values));
        }
        Ok((!out.is_empty()).then_some(PrincipalSpec::Map(out)))
    }
}

/// A string or a list of strings, `null` not allowed.
struct Strings;

impl<'de> Reader<'de> for Strings {
    type Out = Option<Vec<String>>;

    fn wrong(self) -> Self::Out {
        None
    }

    fn string(self, value: Text<'de>) -> Self::Out {
        Some(vec![value.into_string()])
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(Read(Str))? {
            match item {
                Some(s) => out.push(s.into_string()),
                None => {
                    skip_seq(&mut seq)?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(out))
    }
}

/// `Condition`: operator → key → value or values.
struct Conditions {
    location: String,
}

impl<'de> Reader<'de> for Conditions {
    type Out = Result<Vec<ConditionEntry>, PolicyError>;

    fn wrong(self) -> Self::Out {
        Err(syntax(self.location))
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut seen = SeenKeys::default();
        let mut out = Vec::new();
        while let Some(name) = seen.next(&mut map)? {
            let here = at(&self.location, &name);
            let block = map.next_value_seed(Read(ConditionBlock { location: &here }))?;
            let error =
                match block {
                    Err(error) => Some(error),
                    Ok(values_by_key) => match ConditionOperator::parse(&name) {
                        Some(operator) => {
                            out.extend(values_by_key.into_iter().map(|(key, values)| {
                                ConditionEntry {
                                    operator,
                                    key,
                                    values,
                                }
                            }));
                            None
                        }
                        // IAM accepts an unknown operator whose block is empty, and ignores it.
                        None if values_by_key.is_empty() => None,
                        None => Some(syntax(here)),
                    },
                };
            if let Some(error) = error {
                skip_map(&mut map, seen)?;
                return Ok(Err(error));
            }
        }
        Ok(Ok(out))
    }
}

/// One operator's block: condition key → a scalar or a list of scalars.
struct ConditionBlock<'l> {
    location: &'l str,
}

impl<'de> Reader<'de> for ConditionBlock<'_> {
    type Out = Result<Vec<(String, Vec<String>)>, PolicyError>;

    fn wrong(self) -> Self::Out {
        Err(syntax(self.location))
    }

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut seen = SeenKeys::default();
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(1));
        while let Some(key) = seen.next(&mut map)? {
            match map.next_value_seed(Read(ConditionValues))? {
                Some(values) => out.push((key.into_string(), values)),
                None => {
                    let here = at(self.location, &key);
                    skip_map(&mut map, seen)?;
                    return Ok(Err(syntax(here)));
                }
            }
        }
        Ok(Ok(out))
    }
}

/// A condition value, or a list of them: strings, or numbers and booleans written without
/// quotes.
struct ConditionValues;

impl<'de> Reader<'de> for ConditionValues {
    type Out = Option<Vec<String>>;

    fn wrong(self) -> Self::Out {
        None
    }

    fn string(self, value: Text<'de>) -> Self::Out {
        Some(vec![value.into_string()])
    }

    fn number(self, text: String) -> Self::Out {
        Some(vec![text])
    }

    fn boolean(self, value: bool) -> Self::Out {
        Some(vec![value.to_string()])
    }

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        while let Some(item) = seq.next_element_seed(Read(Scalar))? {
            match item {
                Some(s) => out.push(s),
                None => {
                    skip_seq(&mut seq)?;
                    return Ok(None);
                }
            }
        }
        Ok(Some(out))
    }
}

/// One condition value.
struct Scalar;

impl<'de> Reader<'de> for Scalar {
    type Out = Option<String>;

    fn wrong(self) -> Self::Out {
        None
    }

    fn string(self, value: Text<'de>) -> Self::Out {
        Some(value.into_string())
    }

    fn number(self, text: String) -> Self::Out {
        Some(text)
    }

    fn boolean(self, value: bool) -> Self::Out {
        Some(value.to_string())
    }
}

//! The AWS CLI's paging of a listing, as botocore's `PageIterator` does it: `--max-items`
//! bounds the items printed (counted on the paginator's first result key) and leaves a
//! `NextToken`; `--starting-token` resumes from one, even in the middle of a page;
//! `--page-size` sets the service's page bound (`MaxItems`). Tokens are botocore's (base64
//! of the JSON `{"Marker": …, "boto_truncate_amount": …}`), so one printed by `aws iam` resumes
//! an `iamlet admin` listing and the other way round.
//!
//! The pager is a state machine without I/O: the caller sends each request it is given and
//! hands the response back.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::render::truthy;
use crate::control_plane::api_model::Paginator;

/// botocore's key for the items of a page already printed.
const TRUNCATE_AMOUNT: &str = "boto_truncate_amount";

/// The paging options of one command (`--starting-token`, `--page-size`, `--max-items`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PagingArgs {
    /// Where to resume: a `NextToken` printed before.
    pub(crate) starting_token: Option<String>,
    /// The service's page bound, already converted to the limit key's shape.
    pub(crate) page_size: Option<Value>,
    /// How many items to print in all.
    pub(crate) max_items: Option<i64>,
}

/// A listing that cannot be paged as asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PagingError {
    /// `--starting-token` is neither botocore's token nor a service marker.
    #[error("Bad starting token: {0}")]
    BadStartingToken(String),
    /// The service sent the marker it was given: following it would never end.
    #[error("Error during pagination: The same next token was received twice: {0}")]
    SameTokenTwice(String),
    /// `--starting-token` or `--page-size` with paging turned off (`--no-paginate`, or a
    /// marker given by hand).
    #[error("Error during pagination: Cannot specify --no-paginate along with pagination arguments: {0}")]
    NotPaging(String),
}

/// Everything a paged listing returned.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Paged {
    /// The response as the AWS CLI prints it as JSON, YAML or a table: the result keys
    /// joined, the non-aggregate keys of the first page, and `NextToken` when cut short.
    pub(crate) full: Value,
    /// The parts the AWS CLI prints one after another as text: each page's result keys (the
    /// first with the non-aggregate keys), then `{"NextToken": {"NextToken": …}}`.
    pub(crate) text_parts: Vec<Value>,
}

/// Pages through one listing.
#[derive(Debug)]
pub(crate) struct Pager<'m> {
    paginator: &'m Paginator,
    max_items: Option<i64>,
    /// The token the next request is sent with (input token → marker, or null).
    next_token: Map<String, Value>,
    previous_token: Option<Map<String, Value>>,
    /// Items of the first page already printed before `--starting-token`'s token was made.
    starting_index: Option<usize>,
    total_items: i64,
    first: bool,
    pages: Vec<Map<String, Value>>,
    non_aggregate: Map<String, Value>,
    resume_token: Option<String>,
}

// === impl Pager ===

impl<'m> Pager<'m> {
    /// A pager for `paginator`, with the first request's parameters set in `parameters`.
    ///
    /// # Errors
    /// A `--starting-token` that does not read.
    pub(crate) fn try_new(
        paginator: &'m Paginator,
        args: &PagingArgs,
        parameters: &mut Map<String, Value>,
    ) -> Result<Self, PagingError> {
        let mut next_token: Map<String, Value> = paginator
            .input_token
            .iter()
            .map(|k| (k.clone(), Value::Null))
            .collect();
        let mut starting_index = None;
        if let Some(token) = &args.starting_token {
            let (token, index) = parse_starting_token(paginator, token)?;
            inject(parameters, &token);
            next_token = token;
            starting_index = Some(index);
        }
        if let (Some(size), Some(limit)) = (&args.page_size, &paginator.limit_key) {
            parameters.insert(limit.clone(), size.clone());
        }
        Ok(Self {
            paginator,
            max_items: args.max_items,
            next_token,
            previous_token: None,
            starting_index,
            total_items: 0,
            first: true,
            pages: Vec::new(),
            non_aggregate: Map::new(),
            resume_token: None,
        })
    }

    /// Takes a page; `Ok(true)` when another request follows, with its parameters set in
    /// `parameters`.
    ///
    /// # Errors
    /// A service that sends the same marker twice in a row.
    pub(crate) fn take(
        &mut self,
        page: Value,
        parameters: &mut Map<String, Value>,
    ) -> Result<bool, PagingError> {
        let mut page = match page {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let Some(primary) = self.paginator.result_key.first() else {
            self.pages.push(page);
            return Ok(false);
        };
        let mut starting_truncation = 0;
        if self.first {
            if let Some(index) = self.starting_index {
                starting_truncation = index;
                self.skip_printed(&mut page, primary, index);
            }
            self.first = false;
            for key in &self.paginator.non_aggregate_keys {
                let value = page.get(key).cloned().unwrap_or(Value::Null);
                self.non_aggregate.insert(key.clone(), value);
            }
        }
        let count = match page.get(primary) {
            Some(Value::Array(items)) => items.len(),
            Some(Value::String(text)) => text.chars().count(),
            _ => 0,
        };
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        let over = self
            .max_items
            .map_or(0, |max| self.total_items.saturating_add(count) - max);
        if over > 0 {
            // Cut the page at `--max-items`; the token resumes this same page after what
            // was printed (counting what a starting token had skipped on it).
            let keep = usize::try_from(count - over).unwrap_or(0);
            match page.get_mut(primary) {
                Some(Value::Array(items)) => items.truncate(keep),
                Some(Value::String(text)) => *text = text.chars().take(keep).collect(),
                _ => {
                    page.insert(primary.clone(), Value::Array(Vec::new()));
                }
            }
            let mut token = self.next_token.clone();
            token.insert(
                TRUNCATE_AMOUNT.to_owned(),
                Value::from(keep + starting_truncation),
            );
            self.resume_token = Some(encode_token(&token));
            self.pages.push(page);
            return Ok(false);
        }
        self.total_items = self.total_items.saturating_add(count);
        let next = self.next_token_of(&page);
        self.pages.push(page);
        if next.values().all(Value::is_null) {
            return Ok(false);
        }
        if self.max_items == Some(self.total_items) {
            self.resume_token = Some(encode_token(&next));
            return Ok(false);
        }
        if self.previous_token.as_ref() == Some(&next) {
            return Err(PagingError::SameTokenTwice(python_dumps(&Value::Object(
                next,
            ))));
        }
        inject(parameters, &next);
        self.previous_token = Some(next.clone());
        self.next_token = next;
        Ok(true)
    }

    /// The first page after a starting token made mid-page: the items printed before are
    /// dropped, and the other result keys emptied (they were printed whole).
    fn skip_printed(&self, page: &mut Map<String, Value>, primary: &str, index: usize) {
        let rest = match page.get(primary) {
            Some(Value::Array(items)) => Value::Array(items.iter().skip(index).cloned().collect()),
            Some(Value::String(text)) => Value::String(text.chars().skip(index).collect()),
            _ => Value::Null,
        };
        page.insert(primary.to_owned(), rest);
        for key in self.paginator.result_key.iter().skip(1) {
            let emptied = match page.get(key) {
                Some(Value::Array(_)) => Value::Array(Vec::new()),
                Some(Value::String(_)) => Value::String(String::new()),
                Some(number @ Value::Number(_)) => number.clone(),
                _ => Value::Null,
            };
            page.insert(key.clone(), emptied);
        }
    }

    /// The response's markers for the next request; none when it says no more follow.
    fn next_token_of(&self, page: &Map<String, Value>) -> Map<String, Value> {
        if let Some(more) = &self.paginator.more_results {
            if !page.get(more).is_some_and(truthy) {
                return Map::new();
            }
        }
        self.paginator
            .output_token
            .iter()
            .zip(&self.paginator.input_token)
            .map(|(output, input)| {
                let marker = page.get(output).filter(|v| truthy(v)).cloned();
                (input.clone(), marker.unwrap_or(Value::Null))
            })
            .collect()
    }

    /// What the listing printed, once no request follows.
    pub(crate) fn finish(self) -> Paged {
        let mut full = Map::new();
        let mut text_parts = Vec::with_capacity(self.pages.len() + 1);
        for (i, page) in self.pages.iter().enumerate() {
            let mut part = if i == 0 {
                self.non_aggregate.clone()
            } else {
                Map::new()
            };
            for key in &self.paginator.result_key {
                let value = page.get(key).cloned().unwrap_or(Value::Null);
                join_result(&mut full, key, &value);
                part.insert(key.clone(), value);
            }
            text_parts.push(Value::Object(part));
        }
        for (key, value) in &self.non_aggregate {
            full.insert(key.clone(), value.clone());
        }
        if let Some(token) = self.resume_token {
            full.insert("NextToken".into(), Value::String(token.clone()));
            text_parts.push(serde_json::json!({"NextToken": {"NextToken": token}}));
        }
        Paged {
            full: Value::Object(full),
            text_parts,
        }
    }
}

/// `build_full_result`: a result key's value appended to what earlier pages gave.
fn join_result(full: &mut Map<String, Value>, key: &str, value: &Value) {
    if value.is_null() {
        return;
    }
    match (full.get_mut(key), value) {
        (None | Some(Value::Null), _) => {
            full.insert(key.to_owned(), value.clone());
        }
        (Some(Value::Array(items)), Value::Array(more)) => items.extend(more.iter().cloned()),
        (Some(Value::String(text)), Value::String(more)) => text.push_str(more),
        (Some(Value::Number(n)), Value::Number(more)) => {
            if let (Some(a), Some(b)) = (n.as_i64(), more.as_i64()) {
                *n = a.saturating_add(b).into();
            }
        }
        _ => {}
    }
}

/// Sets the markers of `token` in the request, and removes those it has none for.
fn inject(parameters: &mut Map<String, Value>, token: &Map<String, Value>) {
    for (name, marker) in token {
        if marker.is_null() || marker.as_str() == Some("None") {
            parameters.remove(name);
        } else {
            parameters.insert(name.clone(), marker.clone());
        }
    }
}

/// botocore's `TokenDecoder`, then its older `marker___index` form, then the token itself
/// as the service's marker.
fn parse_starting_token(
    paginator: &Paginator,
    token: &str,
) -> Result<(Map<String, Value>, usize), PagingError> {
    let bad = || PagingError::BadStartingToken(crate::error::echo(token).into_owned());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    if let Some(decoded) = decoded {
        let Value::Object(mut map) = decoded else {
            return Err(bad());
        };
        let index = match map.remove(TRUNCATE_AMOUNT) {
            None => 0,
            Some(amount) => amount
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(bad)?,
        };
        if map.keys().any(|k| !paginator.input_token.contains(k)) {
            return Err(bad());
        }
        return Ok((map, index));
    }
    let mut parts: Vec<&str> = token.split("___").collect();
    let mut index = 0;
    if parts.len() == paginator.input_token.len() + 1 {
        match parts
            .last()
            .and_then(|last| last.trim().parse::<usize>().ok())
        {
            Some(n) => {
                index = n;
                parts.pop();
            }
            None => parts = vec![token],
        }
    }
    if parts.len() > paginator.input_token.len() {
        return Err(bad());
    }
    let map = paginator
        .input_token
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let marker = match parts.get(i) {
                None | Some(&"None") => Value::Null,
                Some(part) => Value::String((*part).to_owned()),
            };
            (name.clone(), marker)
        })
        .collect();
    Ok((map, index))
}

/// botocore's `TokenEncoder`: base64 of Python's `json.dumps` of the token.
fn encode_token(token: &Map<String, Value>) -> String {
    base64::engine::general_purpose::STANDARD.encode(python_dumps(&Value::Object(token.clone())))
}

/// Python's `json.dumps` with its defaults: `", "` and `": "` between items, keys in their
/// order, and every character beyond ASCII escaped.
fn python_dumps(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", python_string(k), python_dumps(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(python_dumps).collect();
            format!("[{}]", items.join(", "))
        }
        Value::String(text) => python_string(text),
        other => other.to_string(),
    }
}

fn python_string(text: &str) -> String {
    let json = Value::String(text.to_owned()).to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0_u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list_users() -> Paginator {
        Paginator {
            input_token: vec!["Marker".into()],
            output_token: vec!["Marker".into()],
            more_results: Some("IsTruncated".into()),
            limit_key: Some("MaxItems".into()),
            result_key: vec!["Users".into()],
            non_aggregate_keys: vec![],
        }
    }

    /// A service holding `names`, paging by `MaxItems` (default 2) and an index marker.
    fn serve(names: &[&str], request: &Map<String, Value>) -> Value {
        let start: usize = request
            .get("Marker")
            .and_then(Value::as_str)
            .map_or(0, |m| m.trim_start_matches('m').parse().unwrap());
        let size = request.get("MaxItems").and_then(Value::as_u64).unwrap_or(2) as usize;
        let end = (start + size).min(names.len());
        let users: Vec<Value> = names[start..end]
            .iter()
            .map(|n| json!({"UserName": n}))
            .collect();
        let mut page = json!({"Users": users, "IsTruncated": end < names.len()});
        if end < names.len() {
            page["Marker"] = json!(format!("m{end}"));
        }
        page
    }

    /// Runs a listing to its end; the requests sent, and what it printed.
    fn run(
        paginator: &Paginator,
        names: &[&str],
        args: &PagingArgs,
    ) -> (Vec<Map<String, Value>>, Paged) {
        let mut parameters = Map::new();
        let mut pager = Pager::try_new(paginator, args, &mut parameters).unwrap();
        let mut sent = Vec::new();
        loop {
            sent.push(parameters.clone());
            let page = serve(names, &parameters);
            if !pager.take(page, &mut parameters).unwrap() {
                break;
            }
        }
        (sent, pager.finish())
    }

    fn user_names(paged: &Paged) -> Vec<String> {
        paged.full["Users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["UserName"].as_str().unwrap().to_owned())
            .collect()
    }

    const FIVE: &[&str] = &["a", "b", "c", "d", "e"];

    #[test]
    fn every_page_is_joined_without_the_paging_members() {
        let (sent, paged) = run(&list_users(), FIVE, &PagingArgs::default());
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[1]["Marker"], "m2");
        assert_eq!(user_names(&paged), FIVE);
        assert_eq!(paged.full.as_object().unwrap().len(), 1, "{}", paged.full);
        assert_eq!(paged.text_parts.len(), 3);
    }

    #[test]
    fn max_items_mid_page_leaves_botocores_token_and_it_resumes_there() {
        let max = |n| PagingArgs {
            max_items: Some(n),
            ..PagingArgs::default()
        };
        let (sent, paged) = run(&list_users(), FIVE, &max(3));
        assert_eq!(sent.len(), 2);
        assert_eq!(user_names(&paged), ["a", "b", "c"]);
        let token = paged.full["NextToken"].as_str().unwrap().to_owned();
        // What `aws iam list-users --max-items 3` prints for the same pages.
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&token)
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            r#"{"Marker": "m2", "boto_truncate_amount": 1}"#
        );
        assert_eq!(
            paged.text_parts.last().unwrap(),
            &json!({"NextToken": {"NextToken": token}})
        );
        let resume = PagingArgs {
            starting_token: Some(token),
            ..PagingArgs::default()
        };
        let (sent, paged) = run(&list_users(), FIVE, &resume);
        assert_eq!(sent[0]["Marker"], "m2");
        assert_eq!(user_names(&paged), ["d", "e"]);
        assert!(paged.full.get("NextToken").is_none());
    }

    #[test]
    fn max_items_on_a_page_boundary_resumes_with_the_services_marker() {
        let args = PagingArgs {
            max_items: Some(2),
            ..PagingArgs::default()
        };
        let (sent, paged) = run(&list_users(), FIVE, &args);
        assert_eq!(sent.len(), 1);
        let token = paged.full["NextToken"].as_str().unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(token)
                .unwrap(),
            br#"{"Marker": "m2"}"#
        );
    }

    #[test]
    fn a_cut_first_page_has_no_marker_yet() {
        let args = PagingArgs {
            max_items: Some(1),
            ..PagingArgs::default()
        };
        let (_, paged) = run(&list_users(), FIVE, &args);
        let token = paged.full["NextToken"].as_str().unwrap().to_owned();
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&token)
                .unwrap(),
            br#"{"Marker": null, "boto_truncate_amount": 1}"#
        );
        let resume = PagingArgs {
            starting_token: Some(token),
            max_items: Some(2),
            ..PagingArgs::default()
        };
        let (sent, paged) = run(&list_users(), FIVE, &resume);
        assert!(sent[0].get("Marker").is_none());
        assert_eq!(user_names(&paged), ["b", "c"]);
    }

    #[test]
    fn page_size_bounds_each_request_not_the_output() {
        let args = PagingArgs {
            page_size: Some(json!(1)),
            ..PagingArgs::default()
        };
        let (sent, paged) = run(&list_users(), FIVE, &args);
        assert_eq!(sent.len(), 5);
        assert!(sent.iter().all(|p| p["MaxItems"] == 1));
        assert_eq!(user_names(&paged), FIVE);
    }

    #[test]
    fn a_plain_marker_and_the_old_form_are_starting_tokens_too() {
        let p = list_users();
        let (token, index) = parse_starting_token(&p, "m3").unwrap();
        assert_eq!((token["Marker"].clone(), index), (json!("m3"), 0));
        let (token, index) = parse_starting_token(&p, "m3___1").unwrap();
        assert_eq!((token["Marker"].clone(), index), (json!("m3"), 1));
        let (token, _) = parse_starting_token(&p, "None").unwrap();
        assert_eq!(token["Marker"], Value::Null);
        assert!(matches!(
            parse_starting_token(&p, "a___b___c"),
            Err(PagingError::BadStartingToken(_))
        ));
        let foreign = base64::engine::general_purpose::STANDARD.encode(r#"{"NextToken": "x"}"#);
        assert!(parse_starting_token(&p, &foreign).is_err());
    }

    #[test]
    fn non_aggregate_keys_come_from_the_first_page_and_lead_the_first_text_part() {
        let mut p = list_users();
        p.non_aggregate_keys = vec!["Group".into()];
        let mut parameters = Map::new();
        let mut pager = Pager::try_new(&p, &PagingArgs::default(), &mut parameters).unwrap();
        let first = json!({"Group": {"GroupName": "g"}, "Users": [{"UserName": "a"}], "IsTruncated": true, "Marker": "m1"});
        assert!(pager.take(first, &mut parameters).unwrap());
        let second = json!({"Group": {"GroupName": "g"}, "Users": [{"UserName": "b"}], "IsTruncated": false});
        assert!(!pager.take(second, &mut parameters).unwrap());
        let paged = pager.finish();
        assert_eq!(
            paged.full,
            json!({"Users": [{"UserName": "a"}, {"UserName": "b"}], "Group": {"GroupName": "g"}})
        );
        assert_eq!(
            paged.text_parts[0],
            json!({"Group": {"GroupName": "g"}, "Users": [{"UserName": "a"}]})
        );
        assert_eq!(paged.text_parts[1], json!({"Users": [{"UserName": "b"}]}));
    }

    #[test]
    fn the_same_marker_twice_stops_the_listing() {
        let p = list_users();
        let mut parameters = Map::new();
        let mut pager = Pager::try_new(&p, &PagingArgs::default(), &mut parameters).unwrap();
        let page = json!({"Users": [], "IsTruncated": true, "Marker": "again"});
        assert!(pager.take(page.clone(), &mut parameters).unwrap());
        assert!(matches!(
            pager.take(page, &mut parameters),
            Err(PagingError::SameTokenTwice(t)) if t == r#"{"Marker": "again"}"#
        ));
    }

    #[test]
    fn tokens_escape_beyond_ascii_as_python_does() {
        assert_eq!(
            python_dumps(&json!({"Marker": "é😀\n"})),
            r#"{"Marker": "\u00e9\ud83d\ude00\n"}"#
        );
    }
}

//! How `iamlet admin` prints a result, as the AWS CLI does: `--query` (JMESPath) picks from
//! the response, `--output` chooses the format (`json`, `text`, `yaml`), policy documents
//! print as JSON objects rather than escaped strings, and an empty response prints nothing.

use serde_json::Value;

/// The AWS CLI's output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OutputFormat {
    /// Indented JSON (the default).
    #[default]
    Json,
    /// Tab-separated lines, as the AWS CLI's `text` (`awscli/text.py`).
    Text,
    /// YAML, as the AWS CLI v2's `yaml`.
    Yaml,
}

/// How to print a result: the format, and the JMESPath expression that picks from it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Rendering {
    /// `--output`.
    pub(crate) output: OutputFormat,
    /// `--query`, checked to compile.
    pub(crate) query: Option<String>,
}

/// Members whose strings are policy documents: the AWS CLI prints them as JSON objects.
const DOCUMENT_MEMBERS: &[&str] = &["PolicyDocument", "AssumeRolePolicyDocument", "Document"];

// === impl Rendering ===

impl Rendering {
    /// Reads `--output` and `--query`; an unknown format or a query that does not compile is
    /// an error (naming the position, for a query).
    pub(crate) fn try_new(output: Option<&str>, query: Option<&str>) -> Result<Self, String> {
        let output = match output {
            None | Some("json") => OutputFormat::Json,
            Some("text") => OutputFormat::Text,
            Some("yaml") => OutputFormat::Yaml,
            Some(other) => {
                return Err(format!(
                    "argument --output: Invalid choice: '{}', choose from: json, text, yaml",
                    crate::error::echo(other)
                ))
            }
        };
        if let Some(query) = query {
            jmespath::compile(query).map_err(|e| format!("argument --query: {e}"))?;
        }
        Ok(Self {
            output,
            query: query.map(str::to_owned),
        })
    }

    /// The text to print for `result` (nothing for an empty response).
    pub(crate) fn render(&self, mut result: Value) -> Result<String, String> {
        if result.as_object().is_some_and(serde_json::Map::is_empty) {
            return Ok(String::new());
        }
        decode_documents(&mut result);
        let picked = match &self.query {
            None => result,
            Some(query) => {
                let expression =
                    jmespath::compile(query).map_err(|e| format!("argument --query: {e}"))?;
                let found = expression
                    .search(&result)
                    .map_err(|e| format!("--query: {e}"))?;
                serde_json::to_value(&*found).map_err(|e| format!("--query: {e}"))?
            }
        };
        match self.output {
            OutputFormat::Json => serde_json::to_string_pretty(&picked)
                .map(|text| text + "\n")
                .map_err(|e| e.to_string()),
            OutputFormat::Yaml => serde_yaml_ng::to_string(&picked).map_err(|e| e.to_string()),
            OutputFormat::Text => {
                let mut out = String::new();
                text(&picked, None, None, &mut out);
                Ok(out)
            }
        }
    }
}

/// Replaces every policy document string with the JSON object it holds.
fn decode_documents(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, member) in map.iter_mut() {
                if DOCUMENT_MEMBERS.contains(&name.as_str()) {
                    if let Some(parsed) = member
                        .as_str()
                        .and_then(|t| serde_json::from_str::<Value>(t).ok())
                        .filter(Value::is_object)
                    {
                        *member = parsed;
                        continue;
                    }
                }
                decode_documents(member);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(decode_documents),
        _ => {}
    }
}

/// A scalar as the AWS CLI's text output writes it (Python's `str`).
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Object(_) | Value::Array(_))
}

/// The AWS CLI's `text` format: a dictionary's scalars on one line (its key, upper-cased,
/// first when it has one), then each of its lists and dictionaries under its own key; the
/// dictionaries of a list share one set of columns.
fn text(value: &Value, identifier: Option<&str>, columns: Option<&[String]>, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut scalars = Vec::new();
            let mut nested: Vec<(&String, &Value)> = Vec::new();
            match columns {
                None => {
                    let mut entries: Vec<_> = map.iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    for (key, member) in entries {
                        if is_scalar(member) {
                            scalars.push(scalar(member));
                        } else {
                            nested.push((key, member));
                        }
                    }
                }
                Some(columns) => {
                    for key in columns {
                        scalars.push(map.get(key).map(scalar).unwrap_or_default());
                    }
                    let mut rest: Vec<_> = map
                        .iter()
                        .filter(|(key, _)| !columns.contains(key))
                        .collect();
                    rest.sort_by(|a, b| a.0.cmp(b.0));
                    nested = rest;
                }
            }
            if !scalars.is_empty() {
                if let Some(identifier) = identifier {
                    scalars.insert(0, identifier.to_uppercase());
                }
                out.push_str(&scalars.join("\t"));
                out.push('\n');
            }
            for (key, member) in nested {
                text(member, Some(key), None, out);
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                return;
            }
            if items.iter().any(Value::is_object) {
                let mut keys: Vec<String> = items
                    .iter()
                    .filter_map(Value::as_object)
                    .flat_map(|m| {
                        m.iter()
                            .filter(|(_, v)| is_scalar(v))
                            .map(|(k, _)| k.clone())
                    })
                    .collect();
                keys.sort();
                keys.dedup();
                for item in items {
                    text(item, identifier, Some(&keys), out);
                }
            } else if items.iter().any(Value::is_array) {
                let (scalars, lists): (Vec<&Value>, Vec<&Value>) =
                    items.iter().partition(|v| is_scalar(v));
                scalar_list(&scalars, identifier, out);
                for list in lists {
                    text(list, identifier, None, out);
                }
            } else {
                scalar_list(&items.iter().collect::<Vec<_>>(), identifier, out);
            }
        }
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar_list(items: &[&Value], identifier: Option<&str>, out: &mut String) {
    if items.is_empty() {
        return;
    }
    match identifier {
        Some(identifier) => {
            for item in items {
                out.push_str(&format!(
                    "{}\t{}\n",
                    identifier.to_uppercase(),
                    scalar(item)
                ));
            }
        }
        None => {
            let line: Vec<String> = items.iter().map(|v| scalar(v)).collect();
            out.push_str(&line.join("\t"));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(output: &str, query: Option<&str>, value: Value) -> String {
        Rendering::try_new(Some(output), query)
            .unwrap()
            .render(value)
            .unwrap()
    }

    #[test]
    fn text_is_the_aws_clis() {
        let users = json!({"Users": [
            {"UserName": "alice", "Path": "/", "Tags": [{"Key": "team", "Value": "data"}]},
            {"UserName": "bob", "Path": "/eng/", "PasswordLastUsed": "2026-01-01"},
        ], "IsTruncated": false});
        // The same lines awscli.text.format_text writes (tests/aws checks it on live output).
        assert_eq!(
            render("text", None, users),
            "False\nUSERS\t\t/\talice\nTAGS\tteam\tdata\nUSERS\t2026-01-01\t/eng/\tbob\n"
        );
        assert_eq!(
            render("text", None, json!({"ClientIDList": ["a", "b"]})),
            "CLIENTIDLIST\ta\nCLIENTIDLIST\tb\n"
        );
        assert_eq!(
            render(
                "text",
                Some("Users[].UserName"),
                json!({"Users": [{"UserName": "a"}, {"UserName": "b"}]})
            ),
            "a\tb\n"
        );
        assert_eq!(
            render(
                "text",
                None,
                json!({"User": {"Enabled": true, "Gone": null}})
            ),
            "USER\tTrue\tNone\n"
        );
    }

    #[test]
    fn queries_pick_and_documents_are_objects() {
        let version = json!({"PolicyVersion": {
            "Document": r#"{"Version":"2012-10-17","Statement":[]}"#,
            "VersionId": "v1",
        }});
        assert_eq!(
            render(
                "json",
                Some("PolicyVersion.Document.Version"),
                version.clone()
            ),
            "\"2012-10-17\"\n"
        );
        let printed: Value = serde_json::from_str(&render("json", None, version)).unwrap();
        assert!(printed["PolicyVersion"]["Document"].is_object());
        assert_eq!(
            render(
                "yaml",
                Some("PolicyVersion"),
                json!({"PolicyVersion": {"VersionId": "v1"}})
            ),
            "VersionId: v1\n"
        );
        assert_eq!(
            render("json", None, json!({})),
            "",
            "an empty response prints nothing"
        );
    }

    #[test]
    fn bad_formats_and_queries_are_refused_with_the_position() {
        let e = Rendering::try_new(Some("tabel"), None).unwrap_err();
        assert!(e.contains("Invalid choice: 'tabel'"), "{e}");
        let e = Rendering::try_new(None, Some("Users[?UserName=='a'")).unwrap_err();
        assert!(e.starts_with("argument --query: "), "{e}");
        assert!(e.contains("column"), "{e}");
    }
}

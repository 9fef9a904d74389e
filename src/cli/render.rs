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
    /// Boxed tables, as the AWS CLI's `table` (`awscli/table.py`), 80 columns wide.
    Table,
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
            Some("table") => OutputFormat::Table,
            Some(other) => {
                return Err(format!(
                    "argument --output: Invalid choice: '{}', choose from: json, text, table, yaml",
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

    /// The text to print for `result` (nothing for an empty response); `operation` titles a
    /// table.
    pub(crate) fn render(&self, operation: &str, mut result: Value) -> Result<String, String> {
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
            OutputFormat::Json => aws_json(&picked).map(|text| text + "\n"),
            OutputFormat::Yaml => serde_yaml_ng::to_string(&picked).map_err(|e| e.to_string()),
            OutputFormat::Text => {
                let mut out = String::new();
                text(&picked, None, None, &mut out);
                Ok(out)
            }
            OutputFormat::Table => {
                let mut table = MultiTable::default();
                if !table.build(Some(operation), &picked, 0) {
                    return Ok(String::new());
                }
                Ok(table.render(TABLE_WIDTH))
            }
        }
    }
}

// === impl Rendering (listings) ===

impl Rendering {
    /// The text to print for a paged listing: as one response, except `text`, which the AWS
    /// CLI prints page by page (the query applied to each), then the `NextToken`.
    pub(crate) fn render_paged(
        &self,
        operation: &str,
        paged: super::paginate::Paged,
    ) -> Result<String, String> {
        if self.output != OutputFormat::Text {
            return self.render(operation, paged.full);
        }
        let mut out = String::new();
        for part in paged.text_parts {
            out.push_str(&self.render(operation, part)?);
        }
        Ok(out)
    }
}

/// JSON as the AWS CLI prints it: Python's `json.dumps(indent=4, ensure_ascii=False)`.
fn aws_json(value: &Value) -> Result<String, String> {
    use serde::Serialize as _;
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
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

/// The AWS CLI draws tables for an 80-column terminal when its output is not a terminal.
const TABLE_WIDTH: usize = 80;

/// Python's truth of a JSON value: empty containers, `""`, `0`, `false` and `null` are false
/// (what botocore's paginators test markers and `IsTruncated` with, too).
pub(super) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// A cell: scalars as Python's `str` writes them, anything else as JSON.
fn cell(value: &Value) -> String {
    if is_scalar(value) {
        scalar(value)
    } else {
        value.to_string()
    }
}

/// Display width of a cell (the AWS CLI counts East Asian wide characters twice; iamlet's
/// responses are ASCII, and other characters count once here).
fn width(text: &str) -> usize {
    text.chars().count()
}

/// One titled block of a table: a header row and rows, indented under its parent.
#[derive(Debug, Default)]
struct Section {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    indent: usize,
    max_widths: Vec<usize>,
}

impl Section {
    fn update_widths(&mut self, row: &[String]) {
        for (i, text) in row.iter().enumerate() {
            match self.max_widths.get_mut(i) {
                Some(w) => *w = (*w).max(width(text)),
                None => self.max_widths.push(width(text)),
            }
        }
    }

    fn add_header(&mut self, headers: Vec<String>) {
        self.update_widths(&headers);
        self.headers = headers;
    }

    fn add_row(&mut self, row: Vec<String>) {
        self.update_widths(&row);
        self.rows.push(row);
    }

    /// Column widths with `padding`, scaled to fill `max_width` as the AWS CLI scales them
    /// (Python's `round`, ties to even, then one column at a time until the sum is exact).
    fn column_widths(&self, padding: usize, max_width: Option<usize>) -> Vec<usize> {
        let unscaled: Vec<usize> = self.max_widths.iter().map(|w| w + padding).collect();
        let Some(max_width) = max_width else {
            return unscaled;
        };
        let total: usize = unscaled.iter().sum();
        if unscaled.is_empty() || total == 0 {
            return unscaled;
        }
        let factor = max_width as f64 / total as f64;
        let mut scaled: Vec<i64> = unscaled
            .iter()
            .map(|&w| (factor * w as f64).round_ties_even() as i64)
            .collect();
        let mut off_by = scaled.iter().sum::<i64>() - max_width as i64;
        while off_by != 0 {
            let order: Vec<usize> = if off_by < 0 {
                (0..scaled.len()).rev().collect()
            } else {
                (0..scaled.len()).collect()
            };
            for i in order {
                if let Some(w) = scaled.get_mut(i) {
                    if off_by > 0 {
                        *w -= 1;
                        off_by -= 1;
                    } else {
                        *w += 1;
                        off_by += 1;
                    }
                }
                if off_by == 0 {
                    break;
                }
            }
        }
        scaled.into_iter().map(|w| w.max(0) as usize).collect()
    }

    fn total_width(&self) -> usize {
        let columns: usize = self.column_widths(0, None).iter().map(|w| w + 4).sum();
        let outer = 2 * self.indent;
        (width(&self.title) + 2 + outer).max(columns + 2 + outer)
    }
}

/// The AWS CLI's table formatter: sections built from the response, then drawn.
#[derive(Debug, Default)]
struct MultiTable {
    /// Finished sections, in the order they are drawn.
    sections: Vec<Section>,
    /// The section rows go to; `None` until the first row or title.
    open: Option<Section>,
}

impl MultiTable {
    fn current(&mut self) -> &mut Section {
        self.open.get_or_insert_with(Section::default)
    }

    fn new_section(&mut self, title: Option<&str>, indent: usize) {
        let next = Section {
            title: title.unwrap_or_default().to_owned(),
            indent,
            ..Section::default()
        };
        if let Some(done) = self.open.replace(next) {
            self.sections.push(done);
        }
    }

    /// `TableFormatter._build_table`: false when there is nothing to show.
    fn build(&mut self, title: Option<&str>, current: &Value, indent: usize) -> bool {
        if !truthy(current) {
            return false;
        }
        if title.is_some() {
            self.new_section(title, indent);
        }
        match current {
            Value::Array(items) => {
                if items.first().is_some_and(Value::is_object) {
                    self.add_list(items, indent, title);
                } else {
                    for item in items {
                        match item {
                            Value::Array(row) if row.iter().all(is_scalar) => {
                                self.current().add_row(row.iter().map(cell).collect());
                            }
                            Value::Object(map) => {
                                self.current().add_row(map.keys().cloned().collect());
                            }
                            other if is_scalar(other) => self.current().add_row(vec![cell(other)]),
                            other => {
                                self.build(None, other, 0);
                            }
                        }
                    }
                }
            }
            Value::Object(map) => self.add_dict(map, indent),
            _ => {}
        }
        true
    }

    fn add_dict(&mut self, map: &serde_json::Map<String, Value>, indent: usize) {
        let (headers, more) = group_keys(std::iter::once(map));
        match headers.as_slice() {
            [one] => {
                let value = map.get(one).map(cell).unwrap_or_default();
                self.current().add_row(vec![one.clone(), value]);
            }
            [] => {}
            _ => {
                let row = headers
                    .iter()
                    .map(|h| map.get(h).map(cell).unwrap_or_default())
                    .collect();
                self.current().add_header(headers);
                self.current().add_row(row);
            }
        }
        for key in more {
            if let Some(value) = map.get(&key) {
                self.build(Some(&key), value, indent + 1);
            }
        }
    }

    fn add_list(&mut self, items: &[Value], indent: usize, title: Option<&str>) {
        let (headers, more) = group_keys(items.iter().filter_map(Value::as_object));
        self.current().add_header(headers.clone());
        for (i, item) in items.iter().enumerate() {
            if i > 0 && !more.is_empty() {
                self.new_section(title, indent);
                self.current().add_header(headers.clone());
            }
            let map = item.as_object();
            let row = headers
                .iter()
                .map(|h| map.and_then(|m| m.get(h)).map(cell).unwrap_or_default())
                .collect();
            self.current().add_row(row);
            for key in &more {
                if let Some(value) = map.and_then(|m| m.get(key)) {
                    self.build(Some(key), value, indent + 1);
                }
            }
        }
    }

    /// `MultiTable.render`: too wide a table turns its one-row sections vertical.
    fn render(mut self, terminal_width: usize) -> String {
        self.sections.extend(self.open.take());
        let mut max_width = self.max_width();
        if max_width > terminal_width {
            for section in &mut self.sections {
                if section.rows.len() == 1 && !section.headers.is_empty() {
                    let mut vertical = Section {
                        title: std::mem::take(&mut section.title),
                        indent: section.indent,
                        ..Section::default()
                    };
                    let row = section.rows.first().cloned().unwrap_or_default();
                    for (header, value) in section.headers.iter().zip(row) {
                        vertical.add_row(vec![header.clone(), value]);
                    }
                    *section = vertical;
                }
            }
            max_width = self.max_width();
        }
        let mut out = "-".repeat(max_width) + "\n";
        for section in &self.sections {
            render_section(section, max_width, &mut out);
        }
        out
    }

    fn max_width(&self) -> usize {
        self.sections
            .iter()
            .map(Section::total_width)
            .max()
            .unwrap_or(0)
    }
}

/// Scalar keys and the others, each sorted, over `maps`.
fn group_keys<'a>(
    maps: impl Iterator<Item = &'a serde_json::Map<String, Value>>,
) -> (Vec<String>, Vec<String>) {
    let mut headers = std::collections::BTreeSet::new();
    let mut more = std::collections::BTreeSet::new();
    for map in maps {
        for (key, value) in map {
            if is_scalar(value) {
                headers.insert(key.clone());
            } else {
                more.insert(key.clone());
            }
        }
    }
    (headers.into_iter().collect(), more.into_iter().collect())
}

fn center(text: &str, length: usize, left: &str, right: &str) -> String {
    let text_length = width(text) as i64;
    let start = (length as i64 / 2) - (text_length / 2) - 1;
    let so_far = width(left) as i64 + start + text_length;
    let right_spaces = length as i64 - width(right) as i64 - so_far;
    format!(
        "{left}{}{text}{}{right}",
        " ".repeat(start.max(0) as usize),
        " ".repeat(right_spaces.max(0) as usize)
    )
}

fn align_left(text: &str, length: usize, left: &str, right: &str) -> String {
    let text_length = width(text);
    let padding = if length >= text_length + 2 + width(left) + width(right) {
        2
    } else {
        0
    };
    let used = width(left) + padding + text_length + width(right);
    format!(
        "{left}{}{text}{}{right}",
        " ".repeat(padding),
        " ".repeat(length.saturating_sub(used))
    )
}

fn line_break(widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, w) in widths.iter().enumerate() {
        if i == 0 {
            line.push_str(&format!("+{}+", "-".repeat(w.saturating_sub(2))));
        } else {
            line.push_str(&format!("{}+", "-".repeat(w.saturating_sub(1))));
        }
    }
    line
}

/// Writes one section: each line between `indent` bars on both sides.
fn render_section(section: &Section, max_width: usize, out: &mut String) {
    let bars = "|".repeat(section.indent);
    let mut line = |text: &str| {
        out.push_str(&bars);
        out.push_str(text);
        out.push_str(&bars);
        out.push('\n');
    };
    let max_width = max_width.saturating_sub(section.indent * 2);
    if !section.title.is_empty() {
        line(&center(&section.title, max_width, "|", "|"));
        if section.headers.is_empty() && section.rows.is_empty() {
            line(&format!("+{}+", "-".repeat(max_width.saturating_sub(2))));
        }
    }
    let widths = section.column_widths(4, Some(max_width));
    if !section.headers.is_empty() {
        let titles: String = widths
            .iter()
            .zip(&section.headers)
            .enumerate()
            .map(|(i, (w, h))| center(h, *w, if i == 0 { "|" } else { "" }, "|"))
            .collect();
        line(&line_break(&widths));
        line(&titles);
    }
    if !section.rows.is_empty() && !widths.is_empty() {
        line(&line_break(&widths));
        for row in &section.rows {
            let cells: String = widths
                .iter()
                .zip(row)
                .enumerate()
                .map(|(i, (w, text))| align_left(text, *w, if i == 0 { "|" } else { "" }, "|"))
                .collect();
            line(&cells);
        }
        line(&line_break(&widths));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(output: &str, query: Option<&str>, value: Value) -> String {
        Rendering::try_new(Some(output), query)
            .unwrap()
            .render("ListUsers", value)
            .unwrap()
    }

    #[test]
    fn tables_are_the_aws_clis() {
        // What awscli's TableFormatter draws for the same response (tests/aws compares it on
        // live output, wide tables included).
        let users = json!({"Users": [
            {"UserName": "alice", "Path": "/", "Tags": [{"Key": "team", "Value": "data"}]},
            {"UserName": "bob", "Path": "/eng/"},
        ], "IsTruncated": false});
        let expected = "\
--------------------------
|        ListUsers       |
+--------------+---------+
|  IsTruncated |  False  |
+--------------+---------+
||         Users        ||
|+--------+-------------+|
||  Path  |  UserName   ||
|+--------+-------------+|
||  /     |  alice      ||
|+--------+-------------+|
|||        Tags        |||
||+--------+-----------+||
|||   Key  |   Value   |||
||+--------+-----------+||
|||  team  |  data     |||
||+--------+-----------+||
||         Users        ||
|+--------+-------------+|
||  Path  |  UserName   ||
|+--------+-------------+|
||  /eng/ |  bob        ||
|+--------+-------------+|
";
        assert_eq!(render("table", None, users), expected);
        assert_eq!(
            render(
                "table",
                None,
                serde_json::from_str::<Value>("{\"Users\": []}").unwrap()
            ),
            "-----------\n|ListUsers|\n+---------+\n"
        );
        assert_eq!(
            render("table", None, serde_json::from_str::<Value>("{\"User\": {\"UserName\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"Path\": \"/\", \"Arn\": \"arn:aws:iam::111122223333:user/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}").unwrap()),
            "---------------------------------------------------------------------------------------------------------------\n|                                                  ListUsers                                                  |\n+-------------------------------------------------------------------------------------------------------------+\n||                                                   User                                                    ||\n|+----------+------------------------------------------------------------------------------------------------+|\n||  Arn     |  arn:aws:iam::111122223333:user/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa   ||\n||  Path    |  /                                                                                             ||\n||  UserName|  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa    ||\n|+----------+------------------------------------------------------------------------------------------------+|\n"
        );
        assert_eq!(
            render(
                "table",
                None,
                serde_json::from_str::<Value>("[\"a\", \"b\"]").unwrap()
            ),
            "-----------\n|ListUsers|\n+---------+\n|  a      |\n|  b      |\n+---------+\n"
        );
        assert_eq!(
            render(
                "table",
                None,
                serde_json::from_str::<Value>("\"x\"").unwrap()
            ),
            "-----------\n|ListUsers|\n+---------+\n"
        );
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
        assert!(e.contains("choose from: json, text, table, yaml"), "{e}");
        assert!(e.contains("Invalid choice: 'tabel'"), "{e}");
        let e = Rendering::try_new(None, Some("Users[?UserName=='a'")).unwrap_err();
        assert!(e.starts_with("argument --query: "), "{e}");
        assert!(e.contains("column"), "{e}");
    }
}

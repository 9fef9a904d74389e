//! JSON with positions, for findings that point at the offending text.
//!
//! The policy parser (`super::super::json`) builds a plain tree on the hot path of every
//! create and load; findings need each value's place in the text instead, so they read the
//! document again with this small recursive-descent reader. It accepts exactly RFC 8259 JSON,
//! keeps duplicate keys (IAM's own parser refuses them; a finding should still point at both),
//! and bounds nesting so no input can overflow the stack.

/// Nesting deeper than this is a syntax error (policies nest four levels at most).
const MAX_DEPTH: usize = 64;

/// A value and where it stands: character offsets, end exclusive.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// An object member: the key (with its own position) and the value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    pub(crate) key: String,
    pub(crate) key_start: usize,
    pub(crate) key_end: usize,
    pub(crate) value: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    /// The number's text as written.
    Number(String),
    String(String),
    Array(Vec<Node>),
    Object(Vec<Member>),
}

/// Where the text stops being JSON: a character offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) offset: usize,
}

/// Line (1-based), column (0-based, in characters) and offset (0-based, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line, counted from 1.
    pub line: usize,
    /// The column within the line, counted from 0.
    pub column: usize,
    /// The character offset from the start of the document, counted from 0.
    pub offset: usize,
}

/// Maps character offsets to positions.
#[derive(Debug)]
pub(crate) struct Lines {
    /// The character offset at which each line starts.
    starts: Vec<usize>,
}

// === impl Lines ===

impl Lines {
    pub(crate) fn new(chars: &[char]) -> Self {
        let mut starts = vec![0];
        for (i, c) in chars.iter().enumerate() {
            if *c == '\n' {
                starts.push(i + 1);
            }
        }
        Self { starts }
    }

    pub(crate) fn position(&self, offset: usize) -> Position {
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        Position {
            line,
            column: offset.saturating_sub(start),
            offset,
        }
    }
}

/// Parses `chars` as one JSON value with surrounding whitespace.
pub(crate) fn parse(chars: &[char]) -> Result<Node, SyntaxError> {
    let mut reader = Reader { chars, at: 0 };
    reader.skip_ws();
    let node = reader.value(0)?;
    reader.skip_ws();
    if reader.at != chars.len() {
        return Err(reader.error());
    }
    Ok(node)
}

struct Reader<'a> {
    chars: &'a [char],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn error(&self) -> SyntaxError {
        SyntaxError { offset: self.at }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: char) -> Result<(), SyntaxError> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.error());
        }
        let start = self.at;
        let value = match self.peek() {
            Some('{') => self.object(depth)?,
            Some('[') => self.array(depth)?,
            Some('"') => Value::String(self.string()?),
            Some('t') => self.word("true", Value::Bool(true))?,
            Some('f') => self.word("false", Value::Bool(false))?,
            Some('n') => self.word("null", Value::Null)?,
            Some('-' | '0'..='9') => self.number()?,
            _ => return Err(self.error()),
        };
        Ok(Node {
            value,
            start,
            end: self.at,
        })
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, SyntaxError> {
        for c in word.chars() {
            self.expect(c)?;
        }
        Ok(value)
    }

    fn number(&mut self) -> Result<Value, SyntaxError> {
        let start = self.at;
        if self.peek() == Some('-') {
            self.at += 1;
        }
        match self.peek() {
            Some('0') => self.at += 1,
            Some('1'..='9') => self.digits(),
            _ => return Err(self.error()),
        }
        if self.peek() == Some('.') {
            self.at += 1;
            if !matches!(self.peek(), Some('0'..='9')) {
                return Err(self.error());
            }
            self.digits();
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.at += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.at += 1;
            }
            if !matches!(self.peek(), Some('0'..='9')) {
                return Err(self.error());
            }
            self.digits();
        }
        let text = self
            .chars
            .get(start..self.at)
            .unwrap_or(&[])
            .iter()
            .collect();
        Ok(Value::Number(text))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some('0'..='9')) {
            self.at += 1;
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error());
            };
            self.at += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.error());
                    };
                    self.at += 1;
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                self.expect('\\')?;
                                self.expect('u')?;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err(self.error());
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            out.push(char::from_u32(code).ok_or_else(|| self.error())?);
                        }
                        _ => {
                            return Err(SyntaxError {
                                offset: self.at - 1,
                            })
                        }
                    }
                }
                c if u32::from(c) < 0x20 => {
                    return Err(SyntaxError {
                        offset: self.at - 1,
                    })
                }
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut code = 0u32;
        for _ in 0..4 {
            let digit = self.peek().and_then(|c| c.to_digit(16));
            let Some(digit) = digit else {
                return Err(self.error());
            };
            code = code * 16 + digit;
            self.at += 1;
        }
        Ok(code)
    }

    fn array(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.expect('[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.at += 1,
                Some(']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error()),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, SyntaxError> {
        self.expect('{')?;
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some('}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            let key_start = self.at;
            if self.peek() != Some('"') {
                return Err(self.error());
            }
            let key = self.string()?;
            let key_end = self.at;
            self.skip_ws();
            self.expect(':')?;
            self.skip_ws();
            let value = self.value(depth + 1)?;
            members.push(Member {
                key,
                key_start,
                key_end,
                value,
            });
            self.skip_ws();
            match self.peek() {
                Some(',') => self.at += 1,
                Some('}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.error()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Node, SyntaxError> {
        parse(&text.chars().collect::<Vec<_>>())
    }

    #[test]
    fn values_carry_their_spans() {
        let node = parse_str("{\"a\": [1, \"x\\u00e9\"],\n \"b\": true}").unwrap();
        let Value::Object(members) = &node.value else {
            panic!("object")
        };
        assert_eq!((node.start, node.end), (0, 33));
        assert_eq!(members[0].key, "a");
        assert_eq!((members[0].key_start, members[0].key_end), (1, 4));
        let Value::Array(items) = &members[0].value.value else {
            panic!("array")
        };
        assert_eq!((items[1].start, items[1].end), (10, 19));
        assert_eq!(items[1].value, Value::String("xé".into()));
        let lines = Lines::new(
            &"{\"a\": [1, \"x\\u00e9\"],\n \"b\": true}"
                .chars()
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            lines.position(members[1].key_start),
            Position {
                line: 2,
                column: 1,
                offset: 23
            }
        );
    }

    #[test]
    fn keeps_duplicate_keys() {
        let node = parse_str(r#"{"a": 1, "a": 2}"#).unwrap();
        let Value::Object(members) = node.value else {
            panic!("object")
        };
        assert_eq!(members.len(), 2);
    }

    #[test]
    fn syntax_errors_name_their_offset() {
        assert_eq!(parse_str("{\"a\" 1}"), Err(SyntaxError { offset: 5 }));
        assert_eq!(parse_str("[1,]"), Err(SyntaxError { offset: 3 }));
        assert_eq!(parse_str("{} x"), Err(SyntaxError { offset: 3 }));
        assert_eq!(parse_str("\"\\x\""), Err(SyntaxError { offset: 2 }));
        assert!(parse_str("01").is_err());
        assert!(parse_str("\"\\ud800\"").is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse_str(&deep).is_err());
    }
}

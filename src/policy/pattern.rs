//! Compiled wildcard patterns with policy variables.
//!
//! IAM's wildcards are `*` (any run of characters, `/` and `:` included) and `?` (exactly one
//! character); there are no classes, alternations or escapes, so a regex engine would be both
//! slower and wrong. A pattern compiles once into tokens; matching is the classic greedy scan
//! that remembers only the last `*` and resumes one character later on a mismatch. It never
//! recurses, never allocates, and does at most O(n·m) steps for a text of n and a pattern of m
//! characters (`a*a*a*…b` against 10 kB of `a` is a few million byte comparisons, not an
//! exponential blow-up).
//!
//! In `2012-10-17` policies, `${key}` and `${key, 'default'}` are replaced by request values at
//! match time, and `${*}`, `${?}`, `${$}` stand for literal `*`, `?`, `$`. A substituted value is
//! always literal text: a `*` inside a tag value does not become a wildcard. A variable with no
//! value and no default makes the whole pattern match nothing (IAM-SEMANTICS §1.7).

/// Looks up the value of a policy variable (a single-valued request context key).
///
/// `key` is lowercased; condition keys are case-insensitive.
pub trait VarLookup {
    /// The key's value, or `None` when it is absent or multi-valued.
    fn lookup(&self, key: &str) -> Option<&str>;
}

/// A lookup with no values, for patterns matched outside a request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NoVars;

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    tokens: Box<[Token]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(Box<str>),
    Var(Box<Variable>),
    Star,
    One,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Variable {
    /// Lowercased key.
    key: Box<str>,
    default: Option<Box<str>>,
}

/// What a pattern's text may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (otherwise literal, as in `StringEquals`).
    pub(crate) wildcards: bool,
    /// `${...}` is a policy variable (only in `2012-10-17` documents).
    pub(crate) variables: bool,
    /// Lowercase the literal text (for case-insensitive matching).
    pub(crate) lowercase: bool,
}

// === impl VarLookup ===

impl VarLookup for NoVars {
    fn lookup(&self, _key: &str) -> Option<&str> {
        None
    }
}

// === impl Glob ===

impl Glob {
    /// Compiles a wildcard pattern without variables, matched case-sensitively.
    pub fn new(pattern: &str) -> Self {
        Self::compile(
            pattern,
            Syntax {
                wildcards: true,
                variables: false,
                lowercase: false,
            },
        )
    }

    pub(crate) fn compile(pattern: &str, syntax: Syntax) -> Self {
        let mut tokens: Vec<Token> = Vec::new();
        let mut literal = String::new();
        let mut rest = pattern;
        while let Some(c) = rest.chars().next() {
            if syntax.variables && rest.starts_with("${") {
                if let Some((token, after)) = parse_variable(rest) {
                    match token {
                        Token::Lit(text) => literal.push_str(&text),
                        var => {
                            flush(&mut tokens, &mut literal, syntax.lowercase);
                            tokens.push(var);
                        }
                    }
                    rest = after;
                    continue;
                }
            }
            match c {
                '*' if syntax.wildcards => {
                    flush(&mut tokens, &mut literal, syntax.lowercase);
                    // `**` is the same as `*`; keeping one makes the scan cheaper.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' if syntax.wildcards => {
                    flush(&mut tokens, &mut literal, syntax.lowercase);
                    tokens.push(Token::One);
                }
                _ => literal.push(c),
            }
            rest = rest.get(c.len_utf8()..).unwrap_or("");
        }
        flush(&mut tokens, &mut literal, syntax.lowercase);
        Self {
            tokens: tokens.into_boxed_slice(),
        }
    }

    /// True when the pattern is the single wildcard `*`.
    pub fn is_star(&self) -> bool {
        matches!(&*self.tokens, [Token::Star])
    }

    /// True when the pattern has no wildcards and no variables.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Lit(_)))
    }

    /// True when the pattern contains a policy variable.
    pub fn has_variables(&self) -> bool {
        self.tokens.iter().any(|t| matches!(t, Token::Var(_)))
    }

    /// The lowercased keys of the variables in the pattern.
    pub(crate) fn variable_keys(&self) -> impl Iterator<Item = Box<str>> + '_ {
        self.tokens.iter().filter_map(|t| match t {
            Token::Var(v) => Some(v.key.clone()),
            _ => None,
        })
    }

    /// Matches `text` case-sensitively; variables resolve to nothing.
    pub fn matches(&self, text: &str) -> bool {
        self.matches_with(text, &NoVars, false)
    }

    /// Matches `text`, resolving variables through `vars`. With `fold_case`, literal text is
    /// compared case-insensitively (the pattern must then have been compiled lowercased).
    pub fn matches_with(&self, text: &str, vars: &dyn VarLookup, fold_case: bool) -> bool {
        let tokens = &*self.tokens;
        // Fast paths for the shapes most policies use: exact, `*`, `prefix*`.
        match tokens {
            [] => return text.is_empty(),
            [Token::Star] => return true,
            [Token::Lit(lit)] if !fold_case => return **lit == *text,
            [Token::Lit(lit), Token::Star] if !fold_case => return text.starts_with(&**lit),
            _ => {}
        }
        let mut ti = 0usize;
        let mut si = 0usize;
        // The token after the last `*` seen and the text position that `*` now ends at.
        let mut resume: Option<(usize, usize)> = None;
        loop {
            let step = match tokens.get(ti) {
                Some(Token::Star) => {
                    if ti + 1 == tokens.len() {
                        return true;
                    }
                    resume = Some((ti + 1, si));
                    ti += 1;
                    continue;
                }
                Some(Token::One) => next_char_len(text, si),
                Some(Token::Lit(lit)) => literal_at(text, si, lit, fold_case),
                Some(Token::Var(var)) => match var.resolve(vars) {
                    Some(value) => literal_at(text, si, value, fold_case),
                    None => return false,
                },
                None if si == text.len() => return true,
                None => None,
            };
            if let Some(len) = step {
                si += len;
                ti += 1;
                continue;
            }
            let Some((star_next, star_end)) = resume else {
                return false;
            };
            let Some(len) = next_char_len(text, star_end) else {
                return false;
            };
            resume = Some((star_next, star_end + len));
            ti = star_next;
            si = star_end + len;
        }
    }
}

// === impl Variable ===

impl Variable {
    fn resolve<'a>(&'a self, vars: &'a dyn VarLookup) -> Option<&'a str> {
        vars.lookup(&self.key).or(self.default.as_deref())
    }
}

fn flush(tokens: &mut Vec<Token>, literal: &mut String, lowercase: bool) {
    if literal.is_empty() {
        return;
    }
    let text = if lowercase {
        literal.to_lowercase()
    } else {
        std::mem::take(literal)
    };
    literal.clear();
    tokens.push(Token::Lit(text.into_boxed_str()));
}

/// Parses `${...}` at the start of `text`: a literal for the escapes, a variable otherwise.
/// `None` when it is not a well-formed variable, in which case the text is literal.
fn parse_variable(text: &str) -> Option<(Token, &str)> {
    let inner_and_rest = text.get(2..)?;
    let close = inner_and_rest.find('}')?;
    let inner = inner_and_rest.get(..close)?;
    let after = inner_and_rest.get(close + 1..)?;
    let token = match inner {
        "*" | "?" | "$" => Token::Lit(inner.into()),
        _ => {
            let (key, default) = match inner.split_once(',') {
                Some((key, default)) => {
                    let default = default.trim();
                    let quoted = default
                        .strip_prefix('\'')
                        .and_then(|d| d.strip_suffix('\''))?;
                    (key.trim(), Some(quoted.into()))
                }
                None => (inner.trim(), None),
            };
            if key.is_empty() || key.contains(char::is_whitespace) {
                return None;
            }
            Token::Var(Box::new(Variable {
                key: key.to_lowercase().into(),
                default,
            }))
        }
    };
    Some((token, after))
}

fn next_char_len(text: &str, at: usize) -> Option<usize> {
    text.get(at..)?.chars().next().map(char::len_utf8)
}

/// The length of `text` consumed when `lit` matches at `at`.
fn literal_at(text: &str, at: usize, lit: &str, fold_case: bool) -> Option<usize> {
    let rest = text.get(at..)?;
    if !fold_case {
        return rest.starts_with(lit).then_some(lit.len());
    }
    let mut consumed = 0;
    let mut chars = rest.chars();
    for want in lit.chars() {
        let got = chars.next()?;
        if got != want && !got.to_lowercase().eq(want.to_lowercase()) {
            return None;
        }
        consumed += got.len_utf8();
    }
    Some(consumed)
}

#[cfg(test)]
mod tests;

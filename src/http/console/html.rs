//! HTML, written by hand: every piece of text that did not come from this file goes through
//! [`Esc`], so a name, tag, description or policy document is always text, never markup. No
//! page carries an inline script or style (the Content-Security-Policy forbids both), so even
//! markup that escaped escaping would not run.

use std::fmt::{self, Display, Write as _};

/// Text escaped for HTML element content and double- or single-quoted attribute values.
pub(super) struct Esc<'a>(pub &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            let (plain, tail) = rest.split_at(at);
            f.write_str(plain)?;
            let mut chars = tail.chars();
            f.write_str(match chars.next() {
                Some('&') => "&amp;",
                Some('<') => "&lt;",
                Some('>') => "&gt;",
                Some('"') => "&quot;",
                _ => "&#39;",
            })?;
            rest = chars.as_str();
        }
        f.write_str(rest)
    }
}

/// Text escaped for HTML.
pub(super) fn esc(text: &str) -> Esc<'_> {
    Esc(text)
}

/// A URL path segment (a user, group, role or policy name), percent-encoded.
pub(super) fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An HTML fragment under construction.
#[derive(Debug, Default)]
pub(super) struct Html(String);

impl Html {
    pub(super) fn new() -> Self {
        Self(String::with_capacity(4096))
    }

    /// Markup written in this crate (never data).
    pub(super) fn raw(&mut self, markup: &str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Formatted markup whose arguments are escaped by the caller (with [`esc`]).
    pub(super) fn fmt(&mut self, args: fmt::Arguments<'_>) -> &mut Self {
        let _ = self.0.write_fmt(args);
        self
    }

    pub(super) fn into_string(self) -> String {
        self.0
    }

    /// A `<h1>`.
    pub(super) fn heading(&mut self, title: &str) -> &mut Self {
        self.fmt(format_args!("<h1>{}</h1>\n", Esc(title)))
    }

    /// A labelled text input.
    pub(super) fn input(&mut self, label: &str, name: &str, value: &str, kind: &str) -> &mut Self {
        self.fmt(format_args!(
            "<p><label>{} <input type=\"{kind}\" name=\"{}\" value=\"{}\"></label></p>\n",
            Esc(label),
            Esc(name),
            Esc(value)
        ))
    }

    /// A labelled required text input.
    pub(super) fn required(&mut self, label: &str, name: &str, value: &str) -> &mut Self {
        self.fmt(format_args!(
            "<p><label>{} <input type=\"text\" name=\"{}\" value=\"{}\" required></label></p>\n",
            Esc(label),
            Esc(name),
            Esc(value)
        ))
    }

    /// A labelled checkbox.
    pub(super) fn checkbox(
        &mut self,
        label: &str,
        name: &str,
        value: &str,
        checked: bool,
    ) -> &mut Self {
        self.fmt(format_args!(
            "<label class=\"check\"><input type=\"checkbox\" name=\"{}\" value=\"{}\"{}> {}</label>\n",
            Esc(name),
            Esc(value),
            if checked { " checked" } else { "" },
            Esc(label)
        ))
    }

    /// A labelled radio button.
    pub(super) fn radio(
        &mut self,
        label: &str,
        name: &str,
        value: &str,
        checked: bool,
    ) -> &mut Self {
        self.fmt(format_args!(
            "<label class=\"check\"><input type=\"radio\" name=\"{}\" value=\"{}\"{}> {}</label>\n",
            Esc(name),
            Esc(value),
            if checked { " checked" } else { "" },
            Esc(label)
        ))
    }

    /// A labelled select of `(value, text)` options.
    pub(super) fn select(
        &mut self,
        label: &str,
        name: &str,
        options: &[(String, String)],
        selected: &str,
    ) -> &mut Self {
        self.fmt(format_args!(
            "<p><label>{} <select name=\"{}\">",
            Esc(label),
            Esc(name)
        ));
        for (value, text) in options {
            self.fmt(format_args!(
                "<option value=\"{}\"{}>{}</option>",
                Esc(value),
                if value == selected { " selected" } else { "" },
                Esc(text)
            ));
        }
        self.raw("</select></label></p>\n")
    }

    /// A labelled text area.
    pub(super) fn textarea(&mut self, label: &str, name: &str, value: &str, id: &str) -> &mut Self {
        self.fmt(format_args!(
            "<p><label for=\"{id}\">{}</label><br><textarea id=\"{id}\" name=\"{}\" rows=\"18\" cols=\"90\" spellcheck=\"false\">{}</textarea></p>\n",
            Esc(label),
            Esc(name),
            Esc(value)
        ))
    }

    /// A hidden field.
    pub(super) fn hidden(&mut self, name: &str, value: &str) -> &mut Self {
        self.fmt(format_args!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            Esc(name),
            Esc(value)
        ))
    }

    /// A submit button, optionally with a `name=value` of its own.
    pub(super) fn button(&mut self, text: &str, name_value: Option<(&str, &str)>) -> &mut Self {
        match name_value {
            Some((name, value)) => self.fmt(format_args!(
                "<button type=\"submit\" name=\"{}\" value=\"{}\">{}</button>\n",
                Esc(name),
                Esc(value),
                Esc(text)
            )),
            None => self.fmt(format_args!(
                "<button type=\"submit\">{}</button>\n",
                Esc(text)
            )),
        }
    }

    /// A link.
    pub(super) fn link(&mut self, href: &str, text: &str) -> &mut Self {
        self.fmt(format_args!("<a href=\"{}\">{}</a>", Esc(href), Esc(text)))
    }

    /// A table: a header row, then rows of cells that are already HTML.
    pub(super) fn table(
        &mut self,
        caption: &str,
        headers: &[&str],
        rows: &[Vec<String>],
    ) -> &mut Self {
        self.fmt(format_args!(
            "<table>\n<caption>{}</caption>\n<thead><tr>",
            Esc(caption)
        ));
        for h in headers {
            self.fmt(format_args!("<th scope=\"col\">{}</th>", Esc(h)));
        }
        self.raw("</tr></thead>\n<tbody>\n");
        if rows.is_empty() {
            self.fmt(format_args!(
                "<tr><td colspan=\"{}\" class=\"empty\">None</td></tr>\n",
                headers.len().max(1)
            ));
        }
        for row in rows {
            self.raw("<tr>");
            for cell in row {
                self.raw("<td>").raw(cell).raw("</td>");
            }
            self.raw("</tr>\n");
        }
        self.raw("</tbody></table>\n")
    }
}

/// A cell: escaped text.
pub(super) fn cell(text: &str) -> String {
    Esc(text).to_string()
}

/// A cell: a link.
pub(super) fn cell_link(href: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", Esc(href), Esc(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_makes_markup_text() {
        let hostile = r#"<script>alert(1)</script><img src=x onerror="alert('x')">&"#;
        let out = esc(hostile).to_string();
        assert_eq!(
            out,
            "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;&amp;"
        );
        assert!(!out.contains('<') && !out.contains('"') && !out.contains('\''));
    }

    #[test]
    fn fields_escape_their_labels_names_and_values() {
        let mut html = Html::new();
        html.input("a<b", "n\"x", "v'><script>", "text")
            .checkbox("<i>", "c", "\"", true)
            .textarea("t", "doc", "</textarea><script>alert(1)</script>", "ta");
        let out = html.into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(!out.contains("<i>"), "{out}");
        assert!(out.contains("&lt;/textarea&gt;"), "{out}");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("a b/c?d"), "a%20b%2Fc%3Fd");
        assert_eq!(seg("alice+ops@x.y"), "alice%2Bops%40x.y");
    }
}

//! Java's `.properties` syntax, as `java.util.Properties.load` reads it: `zoo.cfg` is one.
//!
//! - A line whose first non-blank character is `#` or `!` is a comment.
//! - A line ending in an odd number of backslashes goes on in the next line, whose leading
//!   blanks are dropped.
//! - The key runs to the first unescaped `=`, `:` or blank; blanks, then one `=` or `:`,
//!   then blanks, separate it from the value. `key value`, `key=value` and `key: value`
//!   all mean the same; a key alone has the empty value.
//! - In keys and values, `\t`, `\n`, `\r`, `\f` and `\uXXXX` are escapes, and a backslash
//!   before any other character stands for that character.

/// A `\uXXXX` escape that is not four hex digits: Java's "Malformed \uxxxx encoding".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: malformed \\uxxxx escape")]
pub struct MalformedEscape {
    /// The 1-based line where the logical line holding it starts.
    pub line: usize,
}

/// Java's blanks in a properties file.
fn blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// The natural lines of `text`: Java ends them at `\n`, `\r` or `\r\n`.
fn natural_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(end) = rest.find(['\n', '\r']) else {
            lines.push(rest);
            break;
        };
        let (line, end) = rest.split_at(end);
        lines.push(line);
        rest = end
            .strip_prefix("\r\n")
            .or_else(|| end.get(1..))
            .unwrap_or_default();
    }
    lines
}

/// The logical lines of `text`, each with the number of the natural line it starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, piece) in natural_lines(text).into_iter().enumerate() {
        let trimmed = piece.trim_start_matches(blank);
        if current.is_none() && (trimmed.is_empty() || trimmed.starts_with(['#', '!'])) {
            continue;
        }
        let backslashes = trimmed.chars().rev().take_while(|c| *c == '\\').count();
        let goes_on = backslashes % 2 == 1;
        let body = if goes_on {
            trimmed.strip_suffix('\\').unwrap_or(trimmed)
        } else {
            trimmed
        };
        let (start, mut line) = current.take().unwrap_or((i + 1, String::new()));
        line.push_str(body);
        if goes_on {
            current = Some((start, line));
        } else {
            lines.push((start, line));
        }
    }
    lines.extend(current);
    lines
}

/// Undoes the escapes of a key or value.
fn unescape(text: &str, line: usize) -> Result<String, MalformedEscape> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or(MalformedEscape { line })?;
                // A lone surrogate half has no char of its own; Java would keep it.
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// The entries of a properties text, in order (a later duplicate overrides an earlier
/// one when they are collected into a map).
pub fn parse(text: &str) -> Result<Vec<(String, String)>, MalformedEscape> {
    let mut entries = Vec::new();
    for (number, line) in logical_lines(text) {
        let mut key_end = line.len();
        let mut escaped = false;
        for (i, c) in line.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '=' || c == ':' || blank(c) {
                key_end = i;
                break;
            }
        }
        let (key, rest) = line.split_at(key_end);
        let mut rest = rest.trim_start_matches(blank);
        if let Some(after) = rest.strip_prefix(['=', ':']) {
            rest = after.trim_start_matches(blank);
        }
        entries.push((unescape(key, number)?, unescape(rest, number)?));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators_comments_and_blanks() {
        let text = "# comment\n  ! another\n\na=1\nb = 2\nc:3\nd 4\n  e\t=\t5  \nf\n";
        assert_eq!(
            entries(text),
            vec![
                pair("a", "1"),
                pair("b", "2"),
                pair("c", "3"),
                pair("d", "4"),
                pair("e", "5  "),
                pair("f", ""),
            ]
        );
        assert_eq!(entries("a==b"), vec![pair("a", "=b")]);
        assert_eq!(entries("just a line"), vec![pair("just", "a line")]);
    }

    #[test]
    fn continuation_lines_and_line_ends() {
        let text = "list=a,\\\n    b,\\\r\n\tc\r\nnext=x\rlast=\\\\\n";
        assert_eq!(
            entries(text),
            vec![pair("list", "a,b,c"), pair("next", "x"), pair("last", "\\")]
        );
        // A comment does not go on, even ending in a backslash.
        assert_eq!(entries("# a \\\nk=v"), vec![pair("k", "v")]);
        // A continuation at the end of the text ends the line.
        assert_eq!(entries("k=v\\"), vec![pair("k", "v")]);
    }

    #[test]
    fn escapes_in_keys_and_values() {
        assert_eq!(
            entries("a\\=b\\ c=x\\ty\\u0041\\z"),
            vec![pair("a=b c", "x\tyAz")]
        );
        assert_eq!(
            parse("k=\\u00zz\n"),
            Err(MalformedEscape { line: 1 }),
            "as Java refuses it"
        );
        assert_eq!(parse("a=1\nk=\\u12"), Err(MalformedEscape { line: 2 }));
    }
}

//! Diagnostics: what is wrong, where, and how bad.

use serde::Serialize;
use std::fmt;

/// How bad a problem is: an error rejects the inventory, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem in one file, at a 1-based line and a 1-based column counted in characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: error: message`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.severity, self.message
        )
    }
}

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// Collects diagnostics up to a cap, so a hostile input cannot make the list grow without
/// bound; what is dropped is counted and reported once at the end.
pub(crate) struct Diags {
    list: Vec<Diagnostic>,
    max: usize,
    dropped: usize,
}

impl Diags {
    pub fn new(max: usize) -> Diags {
        Diags {
            list: Vec::new(),
            max: max.max(1),
            dropped: 0,
        }
    }

    pub fn push(&mut self, file: &str, pos: Pos, severity: Severity, message: String) {
        if self.list.len() >= self.max {
            self.dropped += 1;
            return;
        }
        self.list.push(Diagnostic {
            file: file.to_owned(),
            line: pos.line,
            col: pos.col,
            severity,
            message: sanitize(&message),
        });
    }

    pub fn has_errors(&self) -> bool {
        self.dropped > 0 || self.list.iter().any(|d| d.severity == Severity::Error)
    }

    /// The diagnostics ordered by file (in the order given), line and column.
    pub fn finish(mut self, file_order: &[&str]) -> Vec<Diagnostic> {
        let rank = |f: &str| {
            file_order
                .iter()
                .position(|x| *x == f)
                .unwrap_or(usize::MAX)
        };
        self.list.sort_by_key(|d| (rank(&d.file), d.line, d.col));
        if self.dropped > 0 {
            let last = self.list.last().map(|d| d.file.clone()).unwrap_or_default();
            self.list.push(Diagnostic {
                file: last,
                line: 1,
                col: 1,
                severity: Severity::Error,
                message: format!(
                    "{} more problems not shown (at most {} are reported)",
                    self.dropped, self.max
                ),
            });
        }
        self.list
    }
}

/// Messages quote user text; keep them on one line and free of control characters.
fn sanitize(message: &str) -> String {
    if !message.chars().any(char::is_control) {
        return message.to_owned();
    }
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Byte offsets of line starts, to turn line/column positions into byte offsets and back.
pub(crate) struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(src: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { src, starts }
    }

    /// The byte offset of a position, if it lies within the source.
    pub fn offset(&self, pos: Pos) -> Option<usize> {
        let start = *self.starts.get((pos.line as usize).checked_sub(1)?)?;
        let line = &self.src[start..];
        let line = &line[..line.find('\n').unwrap_or(line.len())];
        let skip = (pos.col as usize).checked_sub(1)?;
        let mut chars = line.char_indices();
        match chars.nth(skip) {
            Some((i, _)) => Some(start + i),
            None if line.chars().count() == skip => Some(start + line.len()),
            None => None,
        }
    }

    /// The source text of `len_chars` characters starting at `pos`.
    pub fn slice(&self, pos: Pos, len_chars: usize) -> Option<&'a str> {
        let start = self.offset(pos)?;
        let rest = &self.src[start..];
        let end = rest
            .char_indices()
            .nth(len_chars)
            .map_or(rest.len(), |(i, _)| i);
        Some(&rest[..end])
    }
}

/// The position reached after walking over `text` from `pos`.
pub(crate) fn advance(mut pos: Pos, text: &str) -> Pos {
    for c in text.chars() {
        if c == '\n' {
            pos.line += 1;
            pos.col = 1;
        } else {
            pos.col += 1;
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_maps_positions() {
        let src = "ab\nçd: x\n";
        let idx = LineIndex::new(src);
        assert_eq!(idx.offset(Pos { line: 1, col: 1 }), Some(0));
        assert_eq!(idx.offset(Pos { line: 2, col: 2 }), Some(5));
        assert_eq!(idx.slice(Pos { line: 2, col: 1 }, 2), Some("çd"));
        assert_eq!(idx.offset(Pos { line: 9, col: 1 }), None);
        assert_eq!(advance(Pos::START, "a\nbc"), Pos { line: 2, col: 3 });
    }

    #[test]
    fn diagnostics_are_capped_and_sorted() {
        let mut d = Diags::new(2);
        d.push("b", Pos::START, Severity::Error, "x".into());
        d.push(
            "a",
            Pos { line: 3, col: 1 },
            Severity::Warning,
            "y\tz".into(),
        );
        d.push("a", Pos::START, Severity::Error, "dropped".into());
        let out = d.finish(&["a", "b"]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].to_string(), "a:3:1: warning: y\\tz");
        assert_eq!(out[1].file, "b");
        assert!(out[2].message.contains("1 more problems"));
    }
}

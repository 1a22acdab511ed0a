//! Notice expressions: which boards must have a notice for `expect` and `consume`.
//!
//! `A && (B || C)`: board names joined by `&&` (binds tighter) and `||`, with parentheses; a
//! name may be quoted `'A'` as in JS7's `noticesExpression`. An expression holds when it is
//! true with "this board has a live notice with the order's key" for each name.
//!
//! JS7 evaluates these expressions in three-valued logic: a notice that is posted is true, one
//! that is announced (by the daily plan) but not posted is false, one that is neither is
//! unknown, and `whenNotAnnounced` decides what unknown means. Ordo's boards have no
//! announcements, so a leaf is true or unknown; then the three-valued result is true exactly
//! when the two-valued one (unknown as false) is, and unknown otherwise. [`NoticeExpr::holds`]
//! is that two-valued evaluation.

use crate::ids::BoardName;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Most characters of a notice expression.
pub const NOTICE_EXPR_CHARS_MAX: usize = 4096;
/// Most nested parentheses in a notice expression.
pub const NOTICE_EXPR_DEPTH_MAX: usize = 32;
/// Most board names in a notice expression.
pub const NOTICE_EXPR_BOARDS_MAX: usize = 64;

/// A parsed notice expression. Part of workflows (journaled with postcard): append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeExpr {
    Board(BoardName),
    /// Every part holds (two or more).
    And(Vec<NoticeExpr>),
    /// Some part holds (two or more).
    Or(Vec<NoticeExpr>),
}

/// Why a notice expression does not parse, with the byte offset in its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NoticeExprError {
    pub offset: usize,
    pub message: String,
}

impl NoticeExpr {
    /// Whether the expression holds when exactly the boards `has` says have the notice.
    pub fn holds(&self, has: &dyn Fn(&BoardName) -> bool) -> bool {
        match self {
            NoticeExpr::Board(b) => has(b),
            NoticeExpr::And(parts) => parts.iter().all(|p| p.holds(has)),
            NoticeExpr::Or(parts) => parts.iter().any(|p| p.holds(has)),
        }
    }

    /// Every board name in it, by reference, as often as it appears.
    pub fn board_refs(&self) -> Vec<&BoardName> {
        fn walk<'e>(e: &'e NoticeExpr, out: &mut Vec<&'e BoardName>) {
            match e {
                NoticeExpr::Board(b) => out.push(b),
                NoticeExpr::And(parts) | NoticeExpr::Or(parts) => {
                    parts.iter().for_each(|p| walk(p, out))
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// The boards it names, each once, in the order they first appear.
    pub fn boards(&self) -> Vec<BoardName> {
        fn walk(e: &NoticeExpr, out: &mut Vec<BoardName>) {
            match e {
                NoticeExpr::Board(b) => {
                    if !out.contains(b) {
                        out.push(b.clone());
                    }
                }
                NoticeExpr::And(parts) | NoticeExpr::Or(parts) => {
                    parts.iter().for_each(|p| walk(p, out))
                }
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// The boards when the expression is just `&&` of names (or one name): the form a list
    /// of boards means.
    pub fn as_all_of(&self) -> Option<Vec<BoardName>> {
        match self {
            NoticeExpr::Board(b) => Some(vec![b.clone()]),
            NoticeExpr::And(parts) => parts
                .iter()
                .map(|p| match p {
                    NoticeExpr::Board(b) => Some(b.clone()),
                    _ => None,
                })
                .collect(),
            NoticeExpr::Or(_) => None,
        }
    }
}

impl fmt::Display for NoticeExpr {
    /// The expression as it parses again: parentheses only where `||` is inside `&&`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoticeExpr::Board(b) => write!(f, "{b}"),
            NoticeExpr::Or(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" || ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
            NoticeExpr::And(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" && ")?;
                    }
                    match p {
                        NoticeExpr::Or(_) => write!(f, "({p})")?,
                        _ => write!(f, "{p}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// Parses a notice expression (see the module doc).
pub fn parse(text: &str) -> Result<NoticeExpr, NoticeExprError> {
    if text.chars().count() > NOTICE_EXPR_CHARS_MAX {
        return Err(NoticeExprError {
            offset: 0,
            message: format!(
                "the expression is longer than {NOTICE_EXPR_CHARS_MAX} characters (NOTICE_EXPR_CHARS_MAX)"
            ),
        });
    }
    let mut p = Parser {
        text,
        at: 0,
        boards: 0,
    };
    let e = p.or(0)?;
    p.skip_space();
    if p.at < text.len() {
        return Err(p.error("expected `&&`, `||` or the end of the expression"));
    }
    Ok(e)
}

struct Parser<'t> {
    text: &'t str,
    at: usize,
    boards: usize,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> NoticeExprError {
        NoticeExprError {
            offset: self.at,
            message: message.into(),
        }
    }

    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self, depth: usize) -> Result<NoticeExpr, NoticeExprError> {
        let mut parts = vec![self.and(depth)?];
        while self.eat("||") {
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            NoticeExpr::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<NoticeExpr, NoticeExprError> {
        let mut parts = vec![self.atom(depth)?];
        while self.eat("&&") {
            parts.push(self.atom(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            NoticeExpr::And(parts)
        })
    }

    fn atom(&mut self, depth: usize) -> Result<NoticeExpr, NoticeExprError> {
        self.skip_space();
        if self.eat("(") {
            if depth >= NOTICE_EXPR_DEPTH_MAX {
                return Err(self.error(format!(
                    "more than {NOTICE_EXPR_DEPTH_MAX} nested parentheses (NOTICE_EXPR_DEPTH_MAX)"
                )));
            }
            let e = self.or(depth + 1)?;
            if !self.eat(")") {
                return Err(self.error("expected `)`"));
            }
            return Ok(e);
        }
        let start = self.at;
        let quoted = self.rest().starts_with('\'');
        if quoted {
            self.at += 1;
        }
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error(if self.rest().is_empty() {
                "expected a board name, not the end of the expression".to_owned()
            } else {
                "expected a board name or `(`".to_owned()
            }));
        }
        let name = &self.text[self.at..self.at + len];
        self.at += len;
        if quoted {
            if !self.rest().starts_with('\'') {
                return Err(self.error("expected `'` after the board name"));
            }
            self.at += 1;
        }
        self.boards += 1;
        if self.boards > NOTICE_EXPR_BOARDS_MAX {
            self.at = start;
            return Err(self.error(format!(
                "more than {NOTICE_EXPR_BOARDS_MAX} board names (NOTICE_EXPR_BOARDS_MAX)"
            )));
        }
        BoardName::new(name).map(NoticeExpr::Board).map_err(|e| {
            self.at = start;
            self.error(format!("board name {name:?} {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> BoardName {
        BoardName::new(s).unwrap()
    }

    #[test]
    fn precedence_parentheses_and_quotes() {
        let e = parse("A && (B || 'C')").unwrap();
        assert_eq!(
            e,
            NoticeExpr::And(vec![
                NoticeExpr::Board(b("A")),
                NoticeExpr::Or(vec![NoticeExpr::Board(b("B")), NoticeExpr::Board(b("C"))]),
            ])
        );
        assert_eq!(e.to_string(), "A && (B || C)");
        let e = parse("A || B && C").unwrap();
        assert_eq!(e.to_string(), "A || B && C");
        assert!(matches!(e, NoticeExpr::Or(_)));
        assert_eq!(parse(&e.to_string()).unwrap(), e);
        assert_eq!(parse(" x.y-z ").unwrap(), NoticeExpr::Board(b("x.y-z")));
    }

    #[test]
    fn holds_and_boards() {
        let e = parse("A && (B || C) && A").unwrap();
        assert_eq!(e.boards(), vec![b("A"), b("B"), b("C")]);
        let with =
            |names: &'static [&'static str]| move |x: &BoardName| names.contains(&x.as_str());
        assert!(e.holds(&with(&["A", "C"])));
        assert!(!e.holds(&with(&["B", "C"])));
        assert!(!e.holds(&with(&["A"])));
        assert_eq!(
            parse("A && B").unwrap().as_all_of(),
            Some(vec![b("A"), b("B")])
        );
        assert_eq!(parse("A").unwrap().as_all_of(), Some(vec![b("A")]));
        assert_eq!(parse("A || B").unwrap().as_all_of(), None);
    }

    #[test]
    fn errors_carry_offsets() {
        let err = |t: &str| parse(t).unwrap_err();
        assert_eq!(err("A &&").offset, 4);
        assert_eq!(err("A & B").offset, 2);
        assert_eq!(err("(A || B").offset, 7);
        assert_eq!(err("A B").offset, 2);
        assert_eq!(err("'A").offset, 2);
        assert_eq!(err("").offset, 0);
        let deep = "(".repeat(NOTICE_EXPR_DEPTH_MAX + 1) + "A" + &")".repeat(40);
        assert!(err(&deep).message.contains("NOTICE_EXPR_DEPTH_MAX"));
        let many = vec!["A"; NOTICE_EXPR_BOARDS_MAX + 1].join(" || ");
        assert!(err(&many).message.contains("NOTICE_EXPR_BOARDS_MAX"));
        let long = "A".repeat(NOTICE_EXPR_CHARS_MAX + 1);
        assert!(err(&long).message.contains("NOTICE_EXPR_CHARS_MAX"));
    }
}

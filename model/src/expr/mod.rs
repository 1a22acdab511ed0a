//! Expressions for `if`, and templates for `env`, job arguments and messages.
//!
//! # Expression syntax
//!
//! ```text
//! expr    := or
//! or      := and ( "||" and )*
//! and     := cmp ( "&&" cmp )*
//! cmp     := add ( ( "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" ) add )?
//! add     := mul ( ( "+" | "-" | "++" ) mul )*
//! mul     := unary ( ( "*" | "/" ) unary )*
//! unary   := "!" unary | "-" unary | postfix
//! postfix := primary ( "[" expr "]" | "." name )*
//! primary := number | string | "true" | "false" | variable
//!          | "(" expr ")" | "[" ( expr ( "," expr )* )? "]" | function "(" args ")"
//!          | ( "variable" | "argument" ) "(" key ( "," name "=" value )* ")"
//! ```
//!
//! - Variables are `$name` or `${name}`; a name is letters, digits and `_`, with `.` allowed
//!   between them (`$order.id`). `$returnCode` is an ordinary variable that the order state
//!   machine sets after a job.
//! - Numbers are `12` or `12.5`. A `-` before an expression is the unary minus ([`Expr::Neg`]);
//!   right before a number it makes a negative literal (`-3` is the literal −3, `-(3)` negates 3).
//! - Strings are in `'...'` or `"..."`, with the escapes `\\ \" \' \n \t \$`. They are never
//!   interpolated.
//! - Comparisons do not chain: `a < b < c` is an error; write parentheses.
//! - Functions ([`functions`]): `toNumber(x)`, `toString(x)`, `toBoolean(x)`,
//!   `matches(s, regex)`, `length(x)` and `size(x)` (characters of a string, elements of a
//!   list, entries of a map), `contains(list_or_map_or_string, x)`, `default(x, fallback)`,
//!   `substring(s, begin[, end])` (characters `begin` up to, not including, `end`; JS7's
//!   `substring`), `replaceAll(s, regex, replacement)` (`$1`, `${name}` name groups),
//!   `min(list)`/`max(list)` or `min(a, b, ...)`/`max(a, b, ...)` over numbers or strings.
//! - Lists and maps are read inside ([`access`]): `$x.key`, `$x[0]`, `$x["key"]`,
//!   `$x.a[1].b`, `$list[-1]` (the last element). A key or index that is not there gives no
//!   value: the error "$x has no key \"a\"" where a value is needed (an order is Disrupted
//!   with it), or the fallback of `default`.
//! - `variable("key", label=L)`: the value named `key` that the last outcome kept at the step
//!   labelled `L` carried (a job's return value); `variable("key", job=J)`: the same for the
//!   last run of job `J`; `variable("key")` is `$key`; `argument("key")`: the order's argument
//!   as it was given. Each takes `default=value` for when there is no value. Labels and jobs
//!   are bare names (`label=step-a`) or strings.
//! - A source holds at most [`EXPR_BYTES_MAX`] bytes and nests at most [`EXPR_DEPTH_MAX`] levels
//!   (parentheses, lists, calls, unary operators and the height of the syntax tree all count).
//!
//! # Meaning
//!
//! - `==` and `!=` compare any two values; values of different types are never equal (the number
//!   `1` is not the string `"1"`).
//! - `<`, `<=`, `>`, `>=` compare two numbers or two strings (by code point).
//! - `&&`, `||` and `!` take booleans; `&&` and `||` skip their right side when the left decides.
//! - `+ - * /` take numbers; dividing by zero or overflowing is an error. `++` joins the text of
//!   two values.
//! - `x in list` is true when an element equals `x`.
//! - Using a variable that is not set is the error "variable $x is not set" everywhere but as
//!   the first argument of `default` (also in `==` and `!=`, and in templates), as in JS7: a
//!   misspelt name is a mistake to see, not a `false` to act on. An order meets the error as
//!   an uncatchable `Disrupted` outcome. `default($x, "") == ""` asks whether `$x` is set.
//! - `matches(s, regex)` is true when the regular expression (Rust `regex` syntax) matches
//!   anywhere in `s`; anchor it with `^...$` to match the whole text. A pattern that compiles to
//!   more than [`REGEX_SIZE_BYTES_MAX`] bytes is refused, at parse time when it is a literal.
//!
//! [`Display`](fmt::Display) prints an expression or template so that parsing the text gives the
//! same tree back. `Literal(Missing)` and numbers that are not finite have no syntax; the parser
//! never makes them.
//!
//! # Template syntax
//!
//! A template is text with `$name` (letters, digits and `_`; a `.` ends the name, so
//! `report-$day.csv` is `$day` followed by `.csv`), `${name}` (a name, dots allowed),
//! `${expression}` and `$$` (a literal `$`). Inside braces a bare name other than `true` and
//! `false` is a variable (`${day}`); anything else is an expression (`${$day ++ "x"}`, `${3}`).
//! A `$` followed by anything else is an error. A
//! template holds at most [`TEMPLATE_BYTES_MAX`] bytes. When a template is one variable or
//! expression and nothing else, rendering keeps the value's type; otherwise the values' text is
//! joined; a variable that is not set is an error there too.

use crate::position::Position;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::fmt;

pub mod access;
pub mod functions;

pub use access::{VarFrom, VarRef};

/// The most bytes an expression source may hold.
pub const EXPR_BYTES_MAX: usize = 4096;
/// The deepest an expression may nest.
pub const EXPR_DEPTH_MAX: usize = 32;
/// The most bytes a template source may hold.
pub const TEMPLATE_BYTES_MAX: usize = 65_536;
/// The most memory a compiled regular expression of `matches` may take.
pub const REGEX_SIZE_BYTES_MAX: usize = 256 * 1024;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Literal(Value),
    /// `$name` or `${name}`: an order variable, or a built-in like `$returnCode`.
    Var(String),
    List(Vec<Expr>),
    Not(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// A function call, e.g. `toNumber($x)`, `matches($s, "^a.*")`.
    Call(Func, Vec<Expr>),
    /// The unary minus `-x`.
    Neg(Box<Expr>),
    // New variants go at the end: workflows, and so expressions, are journaled (postcard).
    /// `base.key`: an entry of a map read after an index or a parenthesis (`$x[0].name`);
    /// `$x.name` alone is the dotted variable [`Expr::Var`], read the same way.
    Field(Box<Expr>, String),
    /// `base[index]`: an element of a list or an entry of a map.
    Index(Box<Expr>, Box<Expr>),
    /// `variable(...)` or `argument(...)`.
    Variable(Box<VarRef>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Add,
    Sub,
    Mul,
    Div,
    /// String concatenation `++`.
    Concat,
    /// `x in [a, b]`.
    In,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Func {
    ToNumber,
    ToString,
    ToBoolean,
    Matches,
    Length,
    Contains,
    /// `default($x, v)`: `$x`, or `v` when `$x` is missing.
    Default,
    // New variants go at the end (see `Expr`).
    Substring,
    ReplaceAll,
    Size,
    Min,
    Max,
}

/// A text with `$name` and `${expression}` parts; `$$` is a literal `$`. When a template is a
/// single variable or expression it keeps that value's type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TemplatePart {
    Text(String),
    Expr(Expr),
}

impl Expr {
    /// Whether the expression reads any variable (an order variable, an argument or a
    /// built-in); one that does not always gives the same value.
    pub fn uses_variables(&self) -> bool {
        match self {
            Expr::Literal(_) => false,
            Expr::Var(_) => true,
            Expr::List(items) | Expr::Call(_, items) => items.iter().any(Expr::uses_variables),
            Expr::Not(e) | Expr::Neg(e) | Expr::Field(e, _) => e.uses_variables(),
            Expr::Binary(_, a, b) | Expr::Index(a, b) => a.uses_variables() || b.uses_variables(),
            Expr::Variable(_) => true,
        }
    }
}

impl Expr {
    /// The expressions directly inside this one, to change them (e.g. to fill in the
    /// positions of `variable(..., label=…)` once a workflow is read).
    pub fn children_mut(&mut self) -> Vec<&mut Expr> {
        match self {
            Expr::Literal(_) | Expr::Var(_) => Vec::new(),
            Expr::List(items) | Expr::Call(_, items) => items.iter_mut().collect(),
            Expr::Not(e) | Expr::Neg(e) | Expr::Field(e, _) => vec![&mut **e],
            Expr::Binary(_, a, b) | Expr::Index(a, b) => vec![&mut **a, &mut **b],
            Expr::Variable(v) => v.default.iter_mut().collect(),
        }
    }

    /// Calls `f` on this expression and every one inside it, outermost first.
    pub fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Expr)) {
        f(self);
        for child in self.children_mut() {
            child.visit_mut(f);
        }
    }
}

impl Template {
    /// Calls `f` on every expression of the template and every one inside them.
    pub fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Expr)) {
        for part in &mut self.parts {
            if let TemplatePart::Expr(e) = part {
                e.visit_mut(f);
            }
        }
    }

    /// Whether any part of the template reads a variable; one that does not is a constant
    /// written by the workflow's author.
    pub fn uses_variables(&self) -> bool {
        self.parts.iter().any(|p| match p {
            TemplatePart::Text(_) => false,
            TemplatePart::Expr(e) => e.uses_variables(),
        })
    }
}

/// A syntax error at a byte offset of the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset})")]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

/// An error while evaluating an expression (wrong types, a bad regular expression, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

/// Where variables come from when an expression is evaluated.
pub trait Scope {
    /// The variable's value, or `None` when it is not set.
    fn get(&self, name: &str) -> Option<Value>;

    /// The value named `key` of the newest outcome kept at one of `positions`
    /// (`variable(key, label=…)`, `variable(key, job=…)`); `None` without one.
    fn returned(&self, _key: &str, _positions: &[Position]) -> Option<Value> {
        None
    }

    /// The order's argument `key` as it was given (`argument(key)`); `None` without one.
    fn argument(&self, key: &str) -> Option<Value> {
        self.get(key)
    }
}

impl Scope for crate::value::Vars {
    fn get(&self, name: &str) -> Option<Value> {
        crate::value::Vars::get(self, name).cloned()
    }
}

impl BinaryOp {
    /// The operator as written in an expression.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Concat => "++",
            BinaryOp::In => "in",
        }
    }

    fn prec(self) -> u8 {
        match self {
            BinaryOp::Or => PREC_OR,
            BinaryOp::And => PREC_AND,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::In => PREC_CMP,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Concat => PREC_ADD,
            BinaryOp::Mul | BinaryOp::Div => PREC_MUL,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Var(String),
    Word(String),
    /// An operator or punctuation: `( ) [ ] , } == != < <= > >= && || ! + - ++ * /`.
    Punct(&'static str),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num(n) => format!("the number {}", Value::Number(*n)),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Var(name) => format!("the variable ${name}"),
            Tok::Word(w) => format!("'{w}'"),
            Tok::Punct(p) => format!("'{p}'"),
            Tok::End => "the end of the expression".to_owned(),
        }
    }
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

/// The length of a dotted name (`a.b_1.c`) at the start of `s`: name characters, with single dots
/// allowed between them.
fn dotted_name_len(s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() {
        let dot_inside = s[i] == b'.' && i > 0 && s.get(i + 1).copied().is_some_and(is_name_char);
        if !is_name_char(s[i]) && !dot_inside {
            break;
        }
        i += 1;
    }
    i
}

/// Whether `name` can be written as `$name` in an expression.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && dotted_name_len(name.as_bytes()) == name.len()
}

fn err(offset: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        offset,
        message: message.into(),
    }
}

const PUNCTS: [&str; 20] = [
    "==", "!=", "<=", ">=", "&&", "||", "++", "<", ">", "!", "+", "-", "*", "/", "(", ")", "[",
    "]", ",", ".",
];

struct Parser<'a> {
    src: &'a str,
    /// Where the next token starts being read.
    pos: usize,
    /// The next token, its start and its end, once read.
    peeked: Option<(Tok, usize, usize)>,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, pos: usize) -> Parser<'a> {
        Parser {
            src,
            pos,
            peeked: None,
            depth: 0,
        }
    }

    fn skip_space(&mut self) {
        let bytes = self.src.as_bytes();
        while self.pos < bytes.len() && matches!(bytes[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    fn lex(&mut self) -> Result<(Tok, usize, usize), ExprError> {
        self.skip_space();
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let Some(&c) = bytes.get(start) else {
            return Ok((Tok::End, start, start));
        };
        let tok = match c {
            b'$' => self.lex_var(start)?,
            b'"' | b'\'' => self.lex_string(start, c)?,
            b'0'..=b'9' => {
                let mut i = start;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'.') {
                    i += 1;
                    let frac = i;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i == frac {
                        return Err(err(i, "expected digits after the decimal point"));
                    }
                }
                self.pos = i;
                let n: f64 = self.src[start..i]
                    .parse()
                    .map_err(|_| err(start, "this number cannot be read"))?;
                if !n.is_finite() {
                    return Err(err(start, "this number is too large"));
                }
                Tok::Num(n)
            }
            c if is_name_start(c) => {
                let mut i = start;
                while i < bytes.len() && is_name_char(bytes[i]) {
                    i += 1;
                }
                self.pos = i;
                Tok::Word(self.src[start..i].to_owned())
            }
            b'}' => {
                self.pos += 1;
                Tok::Punct("}")
            }
            _ => {
                let rest = &self.src[start..];
                if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
                    self.pos += p.len();
                    Tok::Punct(p)
                } else {
                    let ch = rest.chars().next().unwrap_or('?');
                    let hint = match ch {
                        '=' => "; did you mean '=='?",
                        '&' => "; did you mean '&&'?",
                        '|' => "; did you mean '||'?",
                        _ => "",
                    };
                    return Err(err(start, format!("unexpected character '{ch}'{hint}")));
                }
            }
        };
        Ok((tok, start, self.pos))
    }

    fn lex_var(&mut self, start: usize) -> Result<Tok, ExprError> {
        let bytes = self.src.as_bytes();
        if bytes.get(start + 1) == Some(&b'{') {
            let mut i = start + 2;
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
                i += 1;
            }
            let len = dotted_name_len(&bytes[i..]);
            if len == 0 {
                return Err(err(i, "expected a variable name after '${'"));
            }
            let name = self.src[i..i + len].to_owned();
            i += len;
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
                i += 1;
            }
            if bytes.get(i) != Some(&b'}') {
                return Err(err(i, "expected '}' after the variable name"));
            }
            self.pos = i + 1;
            Ok(Tok::Var(name))
        } else {
            let len = dotted_name_len(&bytes[start + 1..]);
            if len == 0 {
                return Err(err(
                    start + 1,
                    "expected a variable name after '$' (letters, digits, '_' and '.')",
                ));
            }
            self.pos = start + 1 + len;
            Ok(Tok::Var(self.src[start + 1..self.pos].to_owned()))
        }
    }

    fn lex_string(&mut self, start: usize, quote: u8) -> Result<Tok, ExprError> {
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        while let Some((i, ch)) = chars.next() {
            let at = start + 1 + i;
            match ch {
                c if c as u32 == u32::from(quote) => {
                    self.pos = at + 1;
                    return Ok(Tok::Str(out));
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('\\' | '"' | '\'' | '$'))) => out.push(e),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, other)) => {
                        return Err(err(
                            at,
                            format!("unknown escape '\\{other}'; known: \\\\ \\\" \\' \\n \\t \\$"),
                        ));
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(err(start, "unterminated string"))
    }

    fn peek(&mut self) -> Result<&Tok, ExprError> {
        let next = match self.peeked.take() {
            Some(p) => p,
            None => self.lex()?,
        };
        Ok(&self.peeked.insert(next).0)
    }

    /// The start offset of the next token.
    fn peek_start(&mut self) -> Result<usize, ExprError> {
        self.peek()?;
        Ok(self.peeked.as_ref().map_or(self.pos, |p| p.1))
    }

    fn next(&mut self) -> Result<(Tok, usize), ExprError> {
        let (tok, start, _) = match self.peeked.take() {
            Some(p) => p,
            None => self.lex()?,
        };
        Ok((tok, start))
    }

    fn eat(&mut self, punct: &str) -> Result<bool, ExprError> {
        if matches!(self.peek()?, Tok::Punct(p) if *p == punct) {
            self.next()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn enter(&mut self, offset: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > EXPR_DEPTH_MAX {
            return Err(too_deep(offset));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn expr(&mut self) -> Result<Node, ExprError> {
        let offset = self.peek_start()?;
        self.enter(offset)?;
        let node = self.or();
        self.leave();
        node
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        let mut left = self.and()?;
        loop {
            let offset = self.peek_start()?;
            if !self.eat("||")? {
                return Ok(left);
            }
            let right = self.and()?;
            left = Node::binary(BinaryOp::Or, left, right, offset)?;
        }
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let mut left = self.cmp()?;
        loop {
            let offset = self.peek_start()?;
            if !self.eat("&&")? {
                return Ok(left);
            }
            let right = self.cmp()?;
            left = Node::binary(BinaryOp::And, left, right, offset)?;
        }
    }

    fn cmp_op(&mut self) -> Result<Option<BinaryOp>, ExprError> {
        Ok(match self.peek()? {
            Tok::Punct("==") => Some(BinaryOp::Eq),
            Tok::Punct("!=") => Some(BinaryOp::Ne),
            Tok::Punct("<") => Some(BinaryOp::Lt),
            Tok::Punct("<=") => Some(BinaryOp::Le),
            Tok::Punct(">") => Some(BinaryOp::Gt),
            Tok::Punct(">=") => Some(BinaryOp::Ge),
            Tok::Word(w) if w == "in" => Some(BinaryOp::In),
            _ => None,
        })
    }

    fn cmp(&mut self) -> Result<Node, ExprError> {
        let left = self.add()?;
        let Some(op) = self.cmp_op()? else {
            return Ok(left);
        };
        let (_, offset) = self.next()?;
        let right = self.add()?;
        if let Some(again) = self.cmp_op()? {
            let at = self.peek_start()?;
            return Err(err(
                at,
                format!(
                    "comparisons cannot be chained: add parentheses around one side of '{}'",
                    again.symbol()
                ),
            ));
        }
        Node::binary(op, left, right, offset)
    }

    fn add(&mut self) -> Result<Node, ExprError> {
        let mut left = self.mul()?;
        loop {
            let op = match self.peek()? {
                Tok::Punct("+") => BinaryOp::Add,
                Tok::Punct("-") => BinaryOp::Sub,
                Tok::Punct("++") => BinaryOp::Concat,
                _ => return Ok(left),
            };
            let (_, offset) = self.next()?;
            let right = self.mul()?;
            left = Node::binary(op, left, right, offset)?;
        }
    }

    fn mul(&mut self) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek()? {
                Tok::Punct("*") => BinaryOp::Mul,
                Tok::Punct("/") => BinaryOp::Div,
                _ => return Ok(left),
            };
            let (_, offset) = self.next()?;
            let right = self.unary()?;
            left = Node::binary(op, left, right, offset)?;
        }
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        let offset = self.peek_start()?;
        let neg = match self.peek()? {
            Tok::Punct("!") => false,
            Tok::Punct("-") => true,
            _ => return self.postfix(),
        };
        self.next()?;
        if neg && let Tok::Num(n) = *self.peek()? {
            self.next()?;
            return Ok(Node::leaf(Expr::Literal(Value::Number(-n))));
        }
        self.enter(offset)?;
        let inner = self.unary();
        self.leave();
        let inner = inner?;
        let expr = if neg {
            Expr::Neg(Box::new(inner.expr))
        } else {
            Expr::Not(Box::new(inner.expr))
        };
        Node::new(expr, inner.height + 1, offset)
    }

    /// A primary followed by `[index]` and `.key` reads.
    fn postfix(&mut self) -> Result<Node, ExprError> {
        let mut node = self.primary()?;
        loop {
            let offset = self.peek_start()?;
            if self.eat("[")? {
                let index = self.expr()?;
                if !self.eat("]")? {
                    let at = self.peek_start()?;
                    let found = self.peek()?.describe();
                    return Err(err(
                        at,
                        format!("expected ']' to close the '[' at offset {offset}, found {found}"),
                    ));
                }
                let height = node.height.max(index.height) + 1;
                node = Node::new(
                    Expr::Index(Box::new(node.expr), Box::new(index.expr)),
                    height,
                    offset,
                )?;
            } else if self.eat(".")? {
                let (tok, _) = self.next()?;
                let Tok::Word(key) = tok else {
                    return Err(err(
                        offset,
                        format!(
                            "expected a key after '.', found {} (write [\"key\"] for other keys)",
                            tok.describe()
                        ),
                    ));
                };
                node = Node::new(
                    Expr::Field(Box::new(node.expr), key),
                    node.height + 1,
                    offset,
                )?;
            } else {
                return Ok(node);
            }
        }
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let (tok, start) = self.next()?;
        match tok {
            Tok::Num(n) => Ok(Node::leaf(Expr::Literal(Value::Number(n)))),
            Tok::Str(s) => Ok(Node::leaf(Expr::Literal(Value::String(s)))),
            Tok::Var(name) => Ok(Node::leaf(Expr::Var(name))),
            Tok::Word(w) if w == "true" => Ok(Node::leaf(Expr::Literal(Value::Bool(true)))),
            Tok::Word(w) if w == "false" => Ok(Node::leaf(Expr::Literal(Value::Bool(false)))),
            Tok::Word(w) => self.call(w, start),
            Tok::Punct("(") => {
                let inner = self.expr()?;
                if !self.eat(")")? {
                    let at = self.peek_start()?;
                    let found = self.peek()?.describe();
                    return Err(err(
                        at,
                        format!("expected ')' to close the '(' at offset {start}, found {found}"),
                    ));
                }
                Ok(inner)
            }
            Tok::Punct("[") => {
                let mut items = Vec::new();
                let mut height = 0;
                if !self.eat("]")? {
                    loop {
                        let item = self.expr()?;
                        height = height.max(item.height);
                        items.push(item.expr);
                        if self.eat("]")? {
                            break;
                        }
                        if !self.eat(",")? {
                            let at = self.peek_start()?;
                            let found = self.peek()?.describe();
                            return Err(err(
                                at,
                                format!(
                                    "expected ',' or ']' in the list opened at offset {start}, found {found}"
                                ),
                            ));
                        }
                    }
                }
                Node::new(Expr::List(items), height + 1, start)
            }
            other => Err(err(
                start,
                format!("expected a value, found {}", other.describe()),
            )),
        }
    }

    fn call(&mut self, word: String, start: usize) -> Result<Node, ExprError> {
        if !matches!(self.peek()?, Tok::Punct("(")) {
            return Err(err(
                start,
                format!(
                    "unexpected word '{word}': variables start with '$' (${word}), strings are quoted (\"{word}\"), functions are called ({word}(...))"
                ),
            ));
        }
        if word == "variable" || word == "argument" {
            return self.variable(word == "argument", start);
        }
        let Some(func) = Func::from_name(&word) else {
            let known: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
            return Err(err(
                start,
                format!("unknown function '{word}'; known: {}", known.join(", ")),
            ));
        };
        self.next()?;
        let mut args = Vec::new();
        let mut height = 0;
        if !self.eat(")")? {
            loop {
                let arg_start = self.peek_start()?;
                let arg = self.expr()?;
                height = height.max(arg.height);
                args.push((arg.expr, arg_start));
                if self.eat(")")? {
                    break;
                }
                if !self.eat(",")? {
                    let at = self.peek_start()?;
                    let found = self.peek()?.describe();
                    return Err(err(
                        at,
                        format!(
                            "expected ')' after the arguments of {}, found {found}",
                            func.name()
                        ),
                    ));
                }
            }
        }
        let (least, most) = func.arity();
        if args.len() < least || args.len() > most {
            let n = if least == most {
                least.to_string()
            } else if most == least + 1 {
                format!("{least} or {most}")
            } else {
                format!("{least} to {most}")
            };
            return Err(err(
                start,
                format!(
                    "{} takes {n} argument{}, got {}",
                    func.name(),
                    if most == 1 { "" } else { "s" },
                    args.len()
                ),
            ));
        }
        let literal_regex = match func {
            Func::Matches | Func::ReplaceAll => args.get(1),
            _ => None,
        };
        if let Some((Expr::Literal(Value::String(pattern)), at)) = literal_regex {
            compile_regex(pattern).map_err(|e| err(*at, e.0))?;
        }
        let args = args.into_iter().map(|(a, _)| a).collect();
        Node::new(Expr::Call(func, args), height + 1, start)
    }
}

impl Parser<'_> {
    /// Whether `=` (not `==`) follows the peeked token; consumes the token and the `=` then.
    fn eat_named(&mut self) -> Result<Option<(String, usize)>, ExprError> {
        let Tok::Word(word) = self.peek()?.clone() else {
            return Ok(None);
        };
        let at = self.peek_start()?;
        let rest = self.src[self.pos..].trim_start_matches([' ', '\t', '\n', '\r']);
        if !rest.starts_with('=') || rest.starts_with("==") {
            return Ok(None);
        }
        self.next()?;
        self.pos = self.src.len() - rest.len() + 1;
        Ok(Some((word, at)))
    }

    /// A label or job name after `label=` or `job=`: a string, or a bare name that may hold
    /// `-` and `.` (`step-a`).
    fn bare_or_string(&mut self, what: &str) -> Result<String, ExprError> {
        debug_assert!(self.peeked.is_none());
        self.skip_space();
        let bytes = self.src.as_bytes();
        let start = self.pos;
        if matches!(bytes.get(start), Some(b'"' | b'\'')) {
            return match self.next()? {
                (Tok::Str(s), _) => Ok(s),
                (other, at) => Err(err(
                    at,
                    format!("expected a {what}, found {}", other.describe()),
                )),
            };
        }
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || matches!(bytes[end], b'-' | b'_' | b'.'))
        {
            end += 1;
        }
        let name = &self.src[start..end];
        if !access::is_bare_name(name) {
            return Err(err(
                start,
                format!("expected a {what}: a name (letters, digits, '-', '_', '.') or a string"),
            ));
        }
        self.pos = end;
        Ok(name.to_owned())
    }

    /// `variable(key, label=L | job=J, default=value)` or `argument(key, default=value)`,
    /// after its word; the key is a string (or `key="..."`).
    fn variable(&mut self, argument: bool, start: usize) -> Result<Node, ExprError> {
        let what = if argument { "argument" } else { "variable" };
        self.next()?;
        let mut key: Option<String> = None;
        let mut from = if argument {
            VarFrom::Argument
        } else {
            VarFrom::Order
        };
        let mut default: Option<Node> = None;
        let mut index = 0usize;
        loop {
            if index > 0 || !matches!(self.peek()?, Tok::Punct(")")) {
                let at = self.peek_start()?;
                match self.eat_named()? {
                    None if index == 0 => match self.next()? {
                        (Tok::Str(k), _) => key = Some(k),
                        (other, at) => {
                            return Err(err(
                                at,
                                format!(
                                    "{what}(...) takes the variable's name as a string first, found {}",
                                    other.describe()
                                ),
                            ));
                        }
                    },
                    None => {
                        return Err(err(
                            at,
                            format!(
                                "{what}(...) takes its further arguments by name: {}default=...",
                                if argument { "" } else { "label=..., job=..., " }
                            ),
                        ));
                    }
                    Some((name, at)) => {
                        let again = |set: bool| {
                            if set {
                                Err(err(at, format!("{what}(...) has {name}= twice")))
                            } else {
                                Ok(())
                            }
                        };
                        match name.as_str() {
                            "key" => {
                                again(key.is_some())?;
                                match self.next()? {
                                    (Tok::Str(k), _) => key = Some(k),
                                    (other, at) => {
                                        return Err(err(
                                            at,
                                            format!(
                                                "key= takes a string, found {}",
                                                other.describe()
                                            ),
                                        ));
                                    }
                                }
                            }
                            "default" => {
                                again(default.is_some())?;
                                default = Some(self.expr()?);
                            }
                            "label" | "job" if !argument => {
                                if !matches!(from, VarFrom::Order) {
                                    return Err(err(
                                        at,
                                        "variable(...) takes one of label= and job=, once",
                                    ));
                                }
                                let value = self.bare_or_string(&name)?;
                                from = if name == "label" {
                                    VarFrom::Label {
                                        label: value,
                                        positions: Vec::new(),
                                    }
                                } else {
                                    VarFrom::Job {
                                        job: value,
                                        positions: Vec::new(),
                                    }
                                };
                            }
                            other => {
                                return Err(err(
                                    at,
                                    format!(
                                        "{what}(...) has no argument {other}=; it takes {}default=",
                                        if argument { "" } else { "label=, job=, " }
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            index += 1;
            if self.eat(")")? {
                break;
            }
            if !self.eat(",")? {
                let at = self.peek_start()?;
                let found = self.peek()?.describe();
                return Err(err(
                    at,
                    format!("expected ',' or ')' in {what}(...), found {found}"),
                ));
            }
        }
        let Some(key) = key else {
            return Err(err(
                start,
                format!("{what}(...) needs the variable's name, e.g. {what}(\"name\")"),
            ));
        };
        let height = default.as_ref().map_or(0, |d| d.height) + 1;
        let var = VarRef {
            key,
            from,
            default: default.map(|d| d.expr),
        };
        Node::new(Expr::Variable(Box::new(var)), height, start)
    }
}

fn too_deep(offset: usize) -> ExprError {
    err(
        offset,
        format!("expression nested too deeply (more than {EXPR_DEPTH_MAX} levels)"),
    )
}

/// An expression with the height of its tree.
struct Node {
    expr: Expr,
    height: usize,
}

impl Node {
    fn leaf(expr: Expr) -> Node {
        Node { expr, height: 1 }
    }

    fn new(expr: Expr, height: usize, offset: usize) -> Result<Node, ExprError> {
        if height > EXPR_DEPTH_MAX {
            return Err(too_deep(offset));
        }
        Ok(Node { expr, height })
    }

    fn binary(op: BinaryOp, left: Node, right: Node, offset: usize) -> Result<Node, ExprError> {
        let height = left.height.max(right.height) + 1;
        Node::new(
            Expr::Binary(op, Box::new(left.expr), Box::new(right.expr)),
            height,
            offset,
        )
    }
}

/// Parses an expression, e.g. `$returnCode == 3 && matches($host, "^db")`.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    if src.len() > EXPR_BYTES_MAX {
        return Err(err(
            EXPR_BYTES_MAX,
            format!(
                "expression is {} bytes long, more than the {EXPR_BYTES_MAX} allowed",
                src.len()
            ),
        ));
    }
    let mut p = Parser::new(src, 0);
    if matches!(p.peek()?, Tok::End) {
        return Err(err(0, "empty expression"));
    }
    let node = p.expr()?;
    let (tok, at) = p.next()?;
    if tok != Tok::End {
        let message = if tok == Tok::Punct(")") {
            "unexpected ')' without a matching '('".to_owned()
        } else {
            format!(
                "expected an operator or the end after the expression, found {}",
                tok.describe()
            )
        };
        return Err(err(at, message));
    }
    Ok(node.expr)
}

/// Parses a template, e.g. `report-$day.csv` or `${toNumber($n) + 1}`.
pub fn parse_template(src: &str) -> Result<Template, ExprError> {
    if src.len() > TEMPLATE_BYTES_MAX {
        return Err(err(
            TEMPLATE_BYTES_MAX,
            format!(
                "template is {} bytes long, more than the {TEMPLATE_BYTES_MAX} allowed",
                src.len()
            ),
        ));
    }
    let bytes = src.as_bytes();
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while let Some(rel) = src[i..].find('$') {
        let at = i + rel;
        text.push_str(&src[i..at]);
        match bytes.get(at + 1) {
            Some(b'$') => {
                text.push('$');
                i = at + 2;
            }
            Some(b'{') => {
                let (expr, end) = template_braces(src, at)?;
                if !text.is_empty() {
                    parts.push(TemplatePart::Text(std::mem::take(&mut text)));
                }
                parts.push(TemplatePart::Expr(expr));
                i = end;
            }
            Some(&c) if is_name_char(c) => {
                let mut end = at + 1;
                while end < bytes.len() && is_name_char(bytes[end]) {
                    end += 1;
                }
                if !text.is_empty() {
                    parts.push(TemplatePart::Text(std::mem::take(&mut text)));
                }
                parts.push(TemplatePart::Expr(Expr::Var(src[at + 1..end].to_owned())));
                i = end;
            }
            _ => {
                return Err(err(
                    at,
                    "'$' must be followed by a variable name, '{' or '$' (write $$ for a literal $)",
                ));
            }
        }
    }
    text.push_str(&src[i..]);
    if !text.is_empty() {
        parts.push(TemplatePart::Text(text));
    }
    Ok(Template { parts })
}

/// Reads `${name}` or `${expression}` starting at the `$` at `at`; returns it and the offset
/// after the closing `}`.
fn template_braces(src: &str, at: usize) -> Result<(Expr, usize), ExprError> {
    let bytes = src.as_bytes();
    let open = at + 1;
    // `${name}` (dots allowed), unless the name is a literal.
    let mut i = open + 1;
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
        i += 1;
    }
    if bytes.get(i).copied().is_some_and(is_name_start) {
        let len = dotted_name_len(&bytes[i..]);
        let name = &src[i..i + len];
        let mut j = i + len;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t') {
            j += 1;
        }
        if bytes.get(j) == Some(&b'}') && braces_name_is_var(name) {
            return Ok((Expr::Var(name.to_owned()), j + 1));
        }
    }
    let mut p = Parser::new(src, open + 1);
    if matches!(p.peek()?, Tok::Punct("}")) {
        return Err(err(at, "empty '${}'"));
    }
    let node = p.expr()?;
    let (tok, end_at) = p.next()?;
    if tok != Tok::Punct("}") {
        return Err(err(
            end_at,
            format!(
                "expected '}}' to close the '${{' at offset {at}, found {}",
                tok.describe()
            ),
        ));
    }
    Ok((node.expr, end_at + 1))
}

// ---------------------------------------------------------------------------------------------
// Evaluation

pub(crate) fn eval_err(message: impl Into<String>) -> EvalError {
    EvalError(message.into())
}

/// The error for a value that is `Missing` where a value is needed.
fn not_set(expr: &Expr, scope: &dyn Scope) -> EvalError {
    if let Some(why) = access::missing(expr, scope) {
        return eval_err(why);
    }
    match expr {
        Expr::Var(name) => {
            let root = name.split('.').next().unwrap_or(name);
            eval_err(format!("variable ${root} is not set"))
        }
        Expr::Variable(var) => eval_err(access::var_not_set(var)),
        other => eval_err(format!("{other} has no value")),
    }
}

/// Evaluates `expr` and fails when its value is `Missing`.
fn eval_set(expr: &Expr, scope: &dyn Scope) -> Result<Value, EvalError> {
    match eval(expr, scope)? {
        Value::Missing => Err(not_set(expr, scope)),
        v => Ok(v),
    }
}

/// A text cut to its first characters, for an error message.
fn shorten(text: &str) -> String {
    const SHOWN_CHARS_MAX: usize = 40;
    if text.chars().count() > SHOWN_CHARS_MAX {
        let cut: String = text.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{cut}...")
    } else {
        text.to_owned()
    }
}

/// A value for an error message: its type and, shortened, its text.
fn shown(v: &Value) -> String {
    struct Literal<'a>(&'a Value);
    impl fmt::Display for Literal<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_value(f, self.0)
        }
    }
    let text = Literal(v).to_string();
    const SHOWN_CHARS_MAX: usize = 40;
    if text.chars().count() > SHOWN_CHARS_MAX {
        let cut: String = text.chars().take(SHOWN_CHARS_MAX).collect();
        format!("{} {cut}...", v.type_name())
    } else {
        format!("{} {text}", v.type_name())
    }
}

fn eval_bool(expr: &Expr, scope: &dyn Scope, op: &str) -> Result<bool, EvalError> {
    match eval_set(expr, scope)? {
        Value::Bool(b) => Ok(b),
        v => Err(eval_err(format!(
            "'{op}' needs booleans, got {}",
            shown(&v)
        ))),
    }
}

/// Compiles a regular expression for `matches`, refusing patterns that need too much memory.
fn compile_regex(pattern: &str) -> Result<regex::Regex, EvalError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_BYTES_MAX)
        .dfa_size_limit(REGEX_SIZE_BYTES_MAX)
        .nest_limit(EXPR_DEPTH_MAX as u32 * 4)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => eval_err(format!(
                "regular expression {pattern:?} is too big (more than {REGEX_SIZE_BYTES_MAX} bytes compiled)"
            )),
            other => eval_err(format!("bad regular expression {pattern:?}: {other}")),
        })
}

fn number_result(n: f64, op: BinaryOp) -> Result<Value, EvalError> {
    if n.is_finite() {
        Ok(Value::Number(n))
    } else {
        Err(eval_err(format!(
            "'{}' overflowed the range of numbers",
            op.symbol()
        )))
    }
}

/// Evaluates an expression.
pub fn eval(expr: &Expr, scope: &dyn Scope) -> Result<Value, EvalError> {
    match expr {
        Expr::Literal(v) => Ok(v.clone()),
        Expr::Var(name) => access::var(scope, name),
        Expr::List(items) => items
            .iter()
            .map(|e| eval_set(e, scope))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List),
        Expr::Not(inner) => Ok(Value::Bool(!eval_bool(inner, scope, "!")?)),
        Expr::Neg(inner) => match eval_set(inner, scope)? {
            Value::Number(n) => Ok(Value::Number(-n)),
            v => Err(eval_err(format!("'-' needs a number, got {}", shown(&v)))),
        },
        Expr::Binary(op, left, right) => eval_binary(*op, left, right, scope),
        Expr::Call(func, args) => functions::eval_call(*func, args, scope),
        Expr::Field(base, key) => access::field(eval_set(base, scope)?, key, &base.to_string()),
        Expr::Index(base, index) => {
            let value = eval_set(base, scope)?;
            let index = eval_set(index, scope)?;
            access::index(value, index, base)
        }
        Expr::Variable(var) => match access::lookup(var, scope) {
            Value::Missing => match &var.default {
                Some(d) => eval(d, scope),
                None => Ok(Value::Missing),
            },
            v => Ok(v),
        },
    }
}

fn eval_binary(
    op: BinaryOp,
    left: &Expr,
    right: &Expr,
    scope: &dyn Scope,
) -> Result<Value, EvalError> {
    match op {
        BinaryOp::And => Ok(Value::Bool(
            eval_bool(left, scope, "&&")? && eval_bool(right, scope, "&&")?,
        )),
        BinaryOp::Or => Ok(Value::Bool(
            eval_bool(left, scope, "||")? || eval_bool(right, scope, "||")?,
        )),
        BinaryOp::Eq => Ok(Value::Bool(
            eval_set(left, scope)? == eval_set(right, scope)?,
        )),
        BinaryOp::Ne => Ok(Value::Bool(
            eval_set(left, scope)? != eval_set(right, scope)?,
        )),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            let a = eval_set(left, scope)?;
            let b = eval_set(right, scope)?;
            let ord = match (&a, &b) {
                (Value::Number(x), Value::Number(y)) => x.partial_cmp(y),
                (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                _ => {
                    return Err(eval_err(format!(
                        "'{}' compares two numbers or two strings, got {} and {}",
                        op.symbol(),
                        a.type_name(),
                        b.type_name()
                    )));
                }
            };
            let Some(ord) = ord else {
                return Ok(Value::Bool(false));
            };
            Ok(Value::Bool(match op {
                BinaryOp::Lt => ord.is_lt(),
                BinaryOp::Le => ord.is_le(),
                BinaryOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            }))
        }
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div => {
            let a = eval_set(left, scope)?;
            let b = eval_set(right, scope)?;
            let (Value::Number(x), Value::Number(y)) = (&a, &b) else {
                let hint = if op == BinaryOp::Add {
                    " (use ++ to join text)"
                } else {
                    ""
                };
                return Err(eval_err(format!(
                    "'{}' needs numbers, got {} and {}{hint}",
                    op.symbol(),
                    a.type_name(),
                    b.type_name()
                )));
            };
            match op {
                BinaryOp::Add => number_result(x + y, op),
                BinaryOp::Sub => number_result(x - y, op),
                BinaryOp::Mul => number_result(x * y, op),
                _ if *y == 0.0 => Err(eval_err(format!("division by zero in {left} / {right}"))),
                _ => number_result(x / y, op),
            }
        }
        BinaryOp::Concat => {
            let a = eval_set(left, scope)?;
            let b = eval_set(right, scope)?;
            Ok(Value::String(format!("{a}{b}")))
        }
        BinaryOp::In => {
            let x = eval_set(left, scope)?;
            match eval_set(right, scope)? {
                Value::List(items) => Ok(Value::Bool(items.contains(&x))),
                v => Err(eval_err(format!(
                    "'in' needs a list on its right side, got {}",
                    v.type_name()
                ))),
            }
        }
    }
}

/// Evaluates a template: a single expression keeps its type, anything else is a string.
pub fn render(template: &Template, scope: &dyn Scope) -> Result<Value, EvalError> {
    match template.parts.as_slice() {
        [TemplatePart::Expr(e)] => eval_set(e, scope),
        parts => {
            let mut out = String::new();
            for part in parts {
                match part {
                    TemplatePart::Text(t) => out.push_str(t),
                    TemplatePart::Expr(e) => {
                        out.push_str(&eval_set(e, scope)?.to_string());
                    }
                }
            }
            Ok(Value::String(out))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Printing

const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_CMP: u8 = 3;
const PREC_ADD: u8 = 4;
const PREC_MUL: u8 = 5;
const PREC_UNARY: u8 = 6;
const PREC_ATOM: u8 = 7;

impl Expr {
    fn prec(&self) -> u8 {
        match self {
            Expr::Binary(op, _, _) => op.prec(),
            Expr::Not(_) | Expr::Neg(_) => PREC_UNARY,
            Expr::Literal(Value::Number(n)) if n.is_sign_negative() => PREC_UNARY,
            _ => PREC_ATOM,
        }
    }

    /// Writes the expression, in parentheses when it binds less tightly than `min`.
    fn fmt_prec(&self, f: &mut fmt::Formatter<'_>, min: u8) -> fmt::Result {
        if self.prec() < min {
            f.write_str("(")?;
            fmt::Display::fmt(self, f)?;
            f.write_str(")")
        } else {
            fmt::Display::fmt(self, f)
        }
    }
}

pub(crate) fn write_string(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '"' => f.write_str("\\\"")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("\"")
}

fn write_value(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        // No syntax gives a missing value or a number that is not finite; they print as words
        // that do not parse.
        Value::Missing => f.write_str("missing"),
        Value::Bool(b) => write!(f, "{b}"),
        // `{}` of an f64 never uses an exponent and reads back to the same number.
        Value::Number(n) => write!(f, "{n}"),
        Value::String(s) => write_string(f, s),
        Value::List(items) => {
            f.write_str("[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_value(f, item)?;
            }
            f.write_str("]")
        }
        // No syntax gives a map (maps come from outside); printed as JSON-like text.
        Value::Map(entries) => {
            f.write_str("{")?;
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_string(f, k)?;
                f.write_str(": ")?;
                write_value(f, v)?;
            }
            f.write_str("}")
        }
    }
}

/// Prints the expression so that [`parse`] reads it back to the same expression.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(v) => write_value(f, v),
            Expr::Var(name) if is_plain_name(name) => write!(f, "${name}"),
            Expr::Var(name) => write!(f, "${{{name}}}"),
            Expr::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    fmt::Display::fmt(item, f)?;
                }
                f.write_str("]")
            }
            Expr::Not(inner) => {
                f.write_str("!")?;
                inner.fmt_prec(f, PREC_UNARY)
            }
            Expr::Neg(inner) => {
                f.write_str("-")?;
                // `-3` would read back as the literal −3 (and `-3[0]` as that literal and
                // `[0]`), so an expression that starts with a number is put in parentheses.
                if starts_with_number(inner) {
                    inner.fmt_prec(f, PREC_ATOM + 1)
                } else {
                    inner.fmt_prec(f, PREC_UNARY)
                }
            }
            Expr::Binary(op, left, right) => {
                let p = op.prec();
                // Left-associative, except comparisons, which do not chain.
                let left_min = if p == PREC_CMP { p + 1 } else { p };
                left.fmt_prec(f, left_min)?;
                write!(f, " {} ", op.symbol())?;
                right.fmt_prec(f, p + 1)
            }
            Expr::Call(func, args) => {
                write!(f, "{}(", func.name())?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    fmt::Display::fmt(arg, f)?;
                }
                f.write_str(")")
            }
            // `$x.key` would read back as the dotted variable `x.key`: a variable base is
            // written `${x}`.
            Expr::Field(base, key) => {
                match &**base {
                    Expr::Var(name) => write!(f, "${{{name}}}")?,
                    // `3.key` would read as a number with a bad fraction.
                    Expr::Literal(Value::Number(_)) => base.fmt_prec(f, PREC_ATOM + 1)?,
                    other => other.fmt_prec(f, PREC_ATOM)?,
                }
                write!(f, ".{key}")
            }
            Expr::Index(base, index) => {
                base.fmt_prec(f, PREC_ATOM)?;
                write!(f, "[{index}]")
            }
            Expr::Variable(var) => fmt::Display::fmt(var, f),
        }
    }
}

/// Whether the printed expression starts with a number literal.
fn starts_with_number(e: &Expr) -> bool {
    match e {
        Expr::Literal(Value::Number(_)) => true,
        Expr::Index(base, _) | Expr::Field(base, _) => starts_with_number(base),
        _ => false,
    }
}

/// Whether `${name}` in a template reads the variable `name`: not when its first part is
/// `true` or `false` (`${true}`, `${false.a}` are expressions).
fn braces_name_is_var(name: &str) -> bool {
    let first = name.split('.').next().unwrap_or(name);
    first != "true" && first != "false"
}

/// Prints the template so that [`parse_template`] reads it back to the same template.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => f.write_str(&t.replace('$', "$$"))?,
                TemplatePart::Expr(Expr::Var(name))
                    if is_plain_name(name)
                        && name.as_bytes()[0].is_ascii_alphabetic()
                        && braces_name_is_var(name) =>
                {
                    write!(f, "${{{name}}}")?
                }
                TemplatePart::Expr(e) => write!(f, "${{{e}}}")?,
            }
        }
        Ok(())
    }
}

//! Expressions for `if`, and templates for `env`, job arguments and messages.
//!
//! This module owns the syntax; see [`parse`] and [`parse_template`].

use crate::value::Value;
use serde::{Deserialize, Serialize};

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
}

impl Scope for crate::value::Vars {
    fn get(&self, name: &str) -> Option<Value> {
        crate::value::Vars::get(self, name).cloned()
    }
}

/// Parses an expression, e.g. `$returnCode == 3 && matches($host, "^db")`.
pub fn parse(src: &str) -> Result<Expr, ExprError> {
    let _ = src;
    todo!("expression parser")
}

/// Parses a template, e.g. `report-$day.csv` or `${toNumber($n) + 1}`.
pub fn parse_template(src: &str) -> Result<Template, ExprError> {
    let _ = src;
    todo!("template parser")
}

/// Evaluates an expression.
pub fn eval(expr: &Expr, scope: &dyn Scope) -> Result<Value, EvalError> {
    let _ = (expr, scope);
    todo!("evaluator")
}

/// Evaluates a template: a single expression keeps its type, anything else is a string.
pub fn render(template: &Template, scope: &dyn Scope) -> Result<Value, EvalError> {
    let _ = (template, scope);
    todo!("template rendering")
}

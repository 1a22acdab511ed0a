//! The variables an expression sees while an order runs.

use super::state::{Frame, Order, Outcome, RETURN_CODE, TIMED_OUT, TIMED_OUT_RETURN_CODE};
use crate::expr::{self, Expr, Scope, Template};
use crate::position::{BlockKey, Position};
use crate::value::{Value, Vars};

/// Variables of an order, with step arguments on top and built-ins below:
/// step/job arguments, then order variables, then `orderId`, `workflow`, `position`,
/// `attempt`, `tryCount` ([`try_count`]). An order variable shadows a built-in of the same name.
pub struct OrderScope<'a> {
    pub order: &'a Order,
    pub args: Option<&'a Vars>,
}

impl<'a> OrderScope<'a> {
    pub fn new(order: &'a Order) -> OrderScope<'a> {
        OrderScope { order, args: None }
    }
}

impl Scope for OrderScope<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.args.and_then(|a| a.get(name)) {
            return Some(v.clone());
        }
        if let Some(v) = self.order.vars.get(name) {
            return Some(v.clone());
        }
        match name {
            "orderId" => Some(Value::String(self.order.id.to_string())),
            "workflow" => Some(Value::String(self.order.workflow.to_string())),
            "position" => Some(Value::String(self.order.position.to_string())),
            "attempt" => Some(Value::Number(f64::from(self.order.attempt))),
            "tryCount" => Some(Value::Number(f64::from(try_count(self.order)))),
            _ => None,
        }
    }

    /// The newest kept outcome at one of `positions` (the order keeps its last
    /// [`super::state::OUTCOMES_MAX`]), and its value `key`: a returned value, or
    /// `returnCode` of a failed job.
    fn returned(&self, key: &str, positions: &[Position]) -> Option<Value> {
        let kept = self
            .order
            .outcomes
            .iter()
            .rev()
            .find(|h| positions.contains(&h.position))?;
        outcome_value(&kept.outcome, key)
    }

    /// The variable as the order was given it: unless a kept outcome set it (a step replaced
    /// the argument; the order keeps only the newest value, so there is none then).
    fn argument(&self, key: &str) -> Option<Value> {
        let replaced = self
            .order
            .outcomes
            .iter()
            .any(|h| outcome_value(&h.outcome, key).is_some());
        if replaced {
            None
        } else {
            self.order.vars.get(key).cloned()
        }
    }
}

/// The value `key` an outcome carries (and so set on its order).
fn outcome_value(outcome: &Outcome, key: &str) -> Option<Value> {
    match outcome {
        Outcome::Succeeded { values } => values.get(key).cloned(),
        Outcome::Completed {
            values,
            return_code,
            ..
        } => match (values.get(key), return_code) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(rc)) if key == RETURN_CODE => Some(Value::Number(f64::from(*rc))),
            _ => None,
        },
        Outcome::Failed {
            return_code: Some(rc),
            ..
        } if key == RETURN_CODE => Some(Value::Number(f64::from(*rc))),
        Outcome::TimedOut if key == RETURN_CODE => {
            Some(Value::Number(f64::from(TIMED_OUT_RETURN_CODE)))
        }
        Outcome::TimedOut if key == TIMED_OUT => Some(Value::Bool(true)),
        _ => None,
    }
}

/// The try of the innermost retry (a `retry` block, or a `try` with `maxTries`) the order is
/// in: 1 on its first try (and outside any retry), then 2, ...; it starts at 1 again when an
/// outer retry runs the inner one anew, since that leaves the inner one's frame behind.
///
/// Found from the position and the frames alone: of the instructions with a `do` block only
/// `retry` has no frame on its first try (lock, cycle and consume always have one); a `try`
/// with `maxTries` has its retry frame from its first try on.
pub fn try_count(order: &Order) -> u32 {
    let p = &order.position;
    for level in (0..p.outer.len()).rev() {
        let (index, key) = &p.outer[level];
        let at = Position {
            outer: p.outer[..level].to_vec(),
            index: *index,
        };
        match (order.frame_at(&at), key) {
            (Some(Frame::Retry { tries }), _) => return *tries,
            (None, BlockKey::Do) => return 1,
            _ => {}
        }
    }
    1
}

/// Evaluates `expr` for `order`; the error says what failed.
pub fn eval_for(order: &Order, expr: &Expr) -> Result<Value, String> {
    expr::eval(expr, &OrderScope::new(order)).map_err(|e| e.to_string())
}

/// Renders `template` for `order` as text.
pub fn render_text(order: &Order, template: &Template) -> Result<String, String> {
    expr::render(template, &OrderScope::new(order))
        .map(|v| v.to_string())
        .map_err(|e| e.to_string())
}

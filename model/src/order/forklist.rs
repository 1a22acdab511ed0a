//! What a fork-list gives each child order (its element, index, id and arguments), and the
//! results its children give back at the join.
//!
//! A child over a list gets its element in the `as` variable and its index (from 0) in
//! [`FORK_LIST_INDEX`]; its id is `parent|<index>`, or `parent|<childToId>` where
//! `childToId` is an expression evaluated with those two set; `childToArguments` is an
//! expression giving a map of further variables for the child, evaluated the same way.
//! A `result:` of the fork-list is a closing `finish` with values at the end of its block
//! (see `yaml::workflow`); at the join each value becomes a list on the parent, one element
//! per child in the children's order (JS7: a fork-list's result is a list variable).

use super::scope::OrderScope;
use super::state::Order;
use crate::expr::{self, Expr, Template, TemplatePart};
use crate::ids::OrderId;
use crate::inventory::{Block, Instruction};
use crate::value::{Value, Vars};
use std::collections::BTreeSet;

/// The variable holding a fork-list child's index in the list, from 0.
pub const FORK_LIST_INDEX: &str = "forkListIndex";

/// One child of a fork-list over a list: its id, its element and its further arguments.
pub(crate) struct ListChild {
    pub id: OrderId,
    pub vars: Vars,
}

/// The children of `parent` for the elements `items`, or the problem that keeps the
/// fork-list from starting.
pub(crate) fn list_children(
    parent: &Order,
    items: Vec<Value>,
    var: &str,
    child_to_id: Option<&Expr>,
    child_to_arguments: Option<&Expr>,
) -> Result<Vec<ListChild>, String> {
    let mut out = Vec::with_capacity(items.len());
    let mut seen = BTreeSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let mut own = Vars::new();
        own.insert(var.to_owned(), item);
        own.insert(FORK_LIST_INDEX.to_owned(), Value::Number(i as f64));
        let scope = OrderScope {
            order: parent,
            args: Some(&own),
        };
        let suffix = match child_to_id {
            None => i.to_string(),
            Some(e) => match expr::eval(e, &scope) {
                Ok(Value::String(s)) => s,
                Ok(Value::Number(n)) if n.fract() == 0.0 => Value::Number(n).to_string(),
                Ok(other) => {
                    return Err(format!(
                        "childToId of element {i} gives a {}, not a string",
                        other.type_name()
                    ));
                }
                Err(e) => return Err(format!("childToId of element {i}: {e}")),
            },
        };
        if !seen.insert(suffix.clone()) {
            return Err(format!(
                "childToId gives {suffix:?} for two elements (the second is element {i})"
            ));
        }
        let Ok(id) = parent.id.child(&suffix) else {
            return Err(format!(
                "the child order id {}|{suffix} is not valid",
                parent.id
            ));
        };
        let mut vars = parent.vars.clone();
        if let Some(e) = child_to_arguments {
            match expr::eval(e, &scope) {
                Ok(Value::Map(args)) => {
                    if let Some(bad) = args.keys().find(|k| !crate::value::is_var_name(k)) {
                        return Err(format!(
                            "childToArguments of element {i} names the variable {bad:?}, which is not a valid name"
                        ));
                    }
                    vars.extend(args);
                }
                Ok(other) => {
                    return Err(format!(
                        "childToArguments of element {i} gives a {}, not a map",
                        other.type_name()
                    ));
                }
                Err(e) => return Err(format!("childToArguments of element {i}: {e}")),
            }
        }
        vars.extend(own);
        out.push(ListChild { id, vars });
    }
    Ok(out)
}

/// The names of a fork-list's `result:`: the values of the closing `finish` of its block.
pub(crate) fn result_names(steps: &Block) -> Vec<&str> {
    match steps.last() {
        Some(Instruction::FinishWith {
            failed: false,
            message: None,
            values,
        }) => values.keys().map(String::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The closing step that a `result:` mapping stands for: a `finish` with the values,
/// each an expression keeping its type.
pub fn result_step(values: std::collections::BTreeMap<String, Expr>) -> Instruction {
    Instruction::FinishWith {
        failed: false,
        message: None,
        values: values
            .into_iter()
            .map(|(k, e)| {
                (
                    k,
                    Template {
                        parts: vec![TemplatePart::Expr(e)],
                    },
                )
            })
            .collect(),
    }
}

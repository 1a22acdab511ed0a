//! Which arguments a workflow takes: the one rule for an order's argument names, wherever
//! the order comes from (JS7's `OrderParameterList(parameters, allowUndeclared)`).
//!
//! # Rule
//!
//! | workflow | takes |
//! |---|---|
//! | no `parameters` | any argument |
//! | `parameters` | only its parameters' names; another name refuses the order |
//! | `parameters` and `allowUndeclared: true` | any argument |
//!
//! The refusal names every unknown argument and the declared names, in name order:
//! "unknown argument `x`; workflow `w` declares: a, b". It applies to orders added from
//! outside (`POST /orders`, the daily plan) and by an `addOrder` step (through
//! [`prepare_vars_with`](super::prepare_vars_with)); the deployment check of schedules' and
//! `addOrder`s' `args` uses it too (`yaml::refs`), so those are refused on deploy. A fork
//! child runs in its parent's workflow with the parent's variables and is not an added
//! order: its `childToArguments` are not checked.

use std::collections::BTreeSet;

/// Whether a workflow with the parameters `declared` takes the argument `names`: `Err` with
/// the refusal naming the unknown ones when it does not ([the rule](self)).
pub fn undeclared_arguments<'a, D, N>(
    workflow: &str,
    declared: D,
    allow_undeclared: bool,
    names: N,
) -> Result<(), String>
where
    D: IntoIterator<Item = &'a str>,
    N: IntoIterator<Item = &'a str>,
{
    let declared: BTreeSet<&str> = declared.into_iter().collect();
    if allow_undeclared || declared.is_empty() {
        return Ok(());
    }
    let unknown: BTreeSet<&str> = names
        .into_iter()
        .filter(|n| !declared.contains(n))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let quoted: Vec<String> = unknown.iter().map(|n| format!("`{n}`")).collect();
    Err(format!(
        "unknown argument{} {}; workflow `{workflow}` declares: {}",
        if unknown.len() == 1 { "" } else { "s" },
        quoted.join(", "),
        Vec::from_iter(declared).join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(declared: &[&str], allow: bool, names: &[&str]) -> Result<(), String> {
        undeclared_arguments("w", declared.iter().copied(), allow, names.iter().copied())
    }

    #[test]
    fn declared_names_pass() {
        assert_eq!(check(&["a", "b"], false, &["a", "b"]), Ok(()));
        assert_eq!(check(&["a", "b"], false, &[]), Ok(()));
    }

    #[test]
    fn an_undeclared_name_is_refused_with_the_declared_ones() {
        assert_eq!(
            check(&["a", "b"], false, &["a", "x"]),
            Err("unknown argument `x`; workflow `w` declares: a, b".to_owned())
        );
        assert_eq!(
            check(&["a"], false, &["x", "y"]),
            Err("unknown arguments `x`, `y`; workflow `w` declares: a".to_owned())
        );
    }

    #[test]
    fn no_parameters_or_allow_undeclared_take_any_name() {
        assert_eq!(check(&[], false, &["x"]), Ok(()));
        assert_eq!(check(&["a"], true, &["x"]), Ok(()));
    }
}

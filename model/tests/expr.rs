//! Expressions and templates: parsing, errors with offsets, evaluation, printing.

use ordo_model::expr::{
    BinaryOp, EXPR_BYTES_MAX, EXPR_DEPTH_MAX, Expr, ExprError, Func, Template, TemplatePart, eval,
    parse, parse_template, render,
};
use ordo_model::value::{Value, Vars};

fn vars() -> Vars {
    let mut v = Vars::new();
    v.insert("returnCode".into(), Value::from(3i64));
    v.insert("host".into(), Value::from("db-01"));
    v.insert("n".into(), Value::from("41"));
    v.insert("t".into(), Value::from(true));
    v.insert("f".into(), Value::from(false));
    v.insert("order.id".into(), Value::from("o-7"));
    v.insert("day".into(), Value::from("2024-05-01"));
    v.insert(
        "list".into(),
        Value::List(vec![Value::from(1i64), Value::from("a")]),
    );
    v
}

fn ev(src: &str) -> Value {
    let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    eval(&e, &vars()).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn ev_err(src: &str) -> String {
    let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    match eval(&e, &vars()) {
        Ok(v) => panic!("{src} gave {v:?}, expected an error"),
        Err(e) => e.0,
    }
}

fn perr(src: &str) -> ExprError {
    match parse(src) {
        Ok(e) => panic!("{src} parsed as {e:?}, expected an error"),
        Err(e) => e,
    }
}

fn num(n: f64) -> Value {
    Value::Number(n)
}

#[test]
fn smoke() {
    assert_eq!(ev("$returnCode == 3 && matches($host, \"^db\")"), Value::Bool(true));
    assert_eq!(ev("toNumber($n) + 1"), num(42.0));
    assert_eq!(ev("1 + 2 * 3"), num(7.0));
    assert_eq!(ev("-3 * 2"), num(-6.0));
    assert_eq!(ev("$missing == 1"), Value::Bool(false));
    let t = parse_template("report-$day.csv").unwrap();
    assert_eq!(render(&t, &vars()).unwrap(), Value::from("report-2024-05-01.csv"));
    let _ = (BinaryOp::Eq, Func::Length, EXPR_BYTES_MAX, EXPR_DEPTH_MAX);
    let _: Option<Template> = None;
    let _: Option<TemplatePart> = None;
    let _: Option<Expr> = None;
    let _ = ev_err("$missing + 1");
    let _ = perr("(");
}

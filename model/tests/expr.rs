//! Expressions and templates: parsing, errors with their offsets, limits, evaluation, rendering,
//! and printing that parses back to the same tree.

use ordo_model::expr::{
    BinaryOp, EXPR_BYTES_MAX, EXPR_DEPTH_MAX, Expr, ExprError, Func, TEMPLATE_BYTES_MAX, Template,
    TemplatePart, VarFrom, VarRef, eval, parse, parse_template, render,
};
use ordo_model::value::{Value, Vars};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn vars() -> Vars {
    let mut v = Vars::new();
    v.insert("returnCode".into(), Value::from(3i64));
    v.insert("host".into(), Value::from("db-01"));
    v.insert("n".into(), Value::from("41"));
    v.insert("t".into(), Value::from(true));
    v.insert("f".into(), Value::from(false));
    v.insert("zero".into(), Value::from(0i64));
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

fn terr(src: &str) -> ExprError {
    match parse_template(src) {
        Ok(t) => panic!("{src} parsed as {t:?}, expected an error"),
        Err(e) => e,
    }
}

fn rend(src: &str) -> Value {
    let t = parse_template(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    render(&t, &vars()).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn num(n: f64) -> Value {
    Value::Number(n)
}

fn b(v: bool) -> Value {
    Value::Bool(v)
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn lit(n: f64) -> Expr {
    Expr::Literal(Value::Number(n))
}

fn var(name: &str) -> Expr {
    Expr::Var(name.to_owned())
}

fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    Expr::Binary(op, Box::new(l), Box::new(r))
}

// ----------------------------------------------------------------------------------------------
// Syntax

#[test]
fn variables_in_all_spellings() {
    assert_eq!(parse("$x"), Ok(var("x")));
    assert_eq!(parse("${x}"), Ok(var("x")));
    assert_eq!(parse("${ order.id }"), Ok(var("order.id")));
    assert_eq!(parse("$order.id"), Ok(var("order.id")));
    assert_eq!(parse("$returnCode"), Ok(var("returnCode")));
    assert_eq!(parse("$_a1"), Ok(var("_a1")));
    assert_eq!(parse("$1"), Ok(var("1")));
}

#[test]
fn constants_are_told_from_templates_that_read_variables() {
    for src in [
        "/opt/bin:/usr/bin",
        "price $$5",
        "${\"x\" ++ \"y\"}",
        "${[1, -2]}",
        "",
    ] {
        assert!(!parse_template(src).unwrap().uses_variables(), "{src}");
    }
    for src in [
        "$x",
        "/opt/${x}/bin",
        "${toString($x)}",
        "${[1, $x]}",
        "${!$x}",
        "${-$x}",
        "${1 + $x}",
        "$orderId",
    ] {
        assert!(parse_template(src).unwrap().uses_variables(), "{src}");
    }
}

#[test]
fn literals() {
    assert_eq!(parse("12"), Ok(lit(12.0)));
    assert_eq!(parse("12.25"), Ok(lit(12.25)));
    assert_eq!(parse("-3"), Ok(lit(-3.0)));
    assert_eq!(parse("- 3"), Ok(lit(-3.0)));
    assert_eq!(parse("-(3)"), Ok(Expr::Neg(Box::new(lit(3.0)))));
    assert_eq!(parse("true"), Ok(Expr::Literal(b(true))));
    assert_eq!(parse("false"), Ok(Expr::Literal(b(false))));
    assert_eq!(parse("'it''s'"), Err(perr("'it''s'")));
    assert_eq!(
        parse(r#""a\"b\\c\n\t\$d\'""#),
        Ok(Expr::Literal(s("a\"b\\c\n\t$d'")))
    );
    assert_eq!(parse(r#"'say "hi"'"#), Ok(Expr::Literal(s("say \"hi\""))));
    assert_eq!(parse("'$x'"), Ok(Expr::Literal(s("$x"))));
    assert_eq!(parse("'é ✓'"), Ok(Expr::Literal(s("é ✓"))));
    assert_eq!(parse("[]"), Ok(Expr::List(vec![])));
    assert_eq!(
        parse("[1, 'a', $x]"),
        Ok(Expr::List(vec![lit(1.0), Expr::Literal(s("a")), var("x")]))
    );
}

#[test]
fn function_calls() {
    assert_eq!(
        parse("toNumber($x)"),
        Ok(Expr::Call(Func::ToNumber, vec![var("x")]))
    );
    assert_eq!(
        parse("default( $x , 'none' )"),
        Ok(Expr::Call(
            Func::Default,
            vec![var("x"), Expr::Literal(s("none"))]
        ))
    );
    for f in Func::ALL {
        assert_eq!(Func::from_name(f.name()), Some(f));
    }
    assert_eq!(Func::from_name("foo"), None);
}

#[test]
fn precedence_from_loosest_to_tightest() {
    let (a, bb, c) = (var("a"), var("b"), var("c"));
    assert_eq!(
        parse("$a || $b && $c"),
        Ok(bin(
            BinaryOp::Or,
            a.clone(),
            bin(BinaryOp::And, bb.clone(), c.clone())
        ))
    );
    assert_eq!(
        parse("$a && $b == $c"),
        Ok(bin(
            BinaryOp::And,
            a.clone(),
            bin(BinaryOp::Eq, bb.clone(), c.clone())
        ))
    );
    assert_eq!(
        parse("$a == $b + $c"),
        Ok(bin(
            BinaryOp::Eq,
            a.clone(),
            bin(BinaryOp::Add, bb.clone(), c.clone())
        ))
    );
    assert_eq!(
        parse("$a in $b ++ $c"),
        Ok(bin(
            BinaryOp::In,
            a.clone(),
            bin(BinaryOp::Concat, bb.clone(), c.clone())
        ))
    );
    assert_eq!(
        parse("$a - $b * $c"),
        Ok(bin(
            BinaryOp::Sub,
            a.clone(),
            bin(BinaryOp::Mul, bb.clone(), c.clone())
        ))
    );
    assert_eq!(
        parse("-$a * $b"),
        Ok(bin(
            BinaryOp::Mul,
            Expr::Neg(Box::new(a.clone())),
            bb.clone()
        ))
    );
    assert_eq!(
        parse("!$a && $b"),
        Ok(bin(
            BinaryOp::And,
            Expr::Not(Box::new(a.clone())),
            bb.clone()
        ))
    );
    assert_eq!(
        parse("!($a && $b)"),
        Ok(Expr::Not(Box::new(bin(
            BinaryOp::And,
            a.clone(),
            bb.clone()
        ))))
    );
    // Left-associative.
    assert_eq!(
        parse("$a - $b - $c"),
        Ok(bin(
            BinaryOp::Sub,
            bin(BinaryOp::Sub, a.clone(), bb.clone()),
            c.clone()
        ))
    );
    assert_eq!(
        parse("$a / $b * $c"),
        Ok(bin(
            BinaryOp::Mul,
            bin(BinaryOp::Div, a.clone(), bb.clone()),
            c.clone()
        ))
    );
    assert_eq!(
        parse("$a ++ $b + $c"),
        Ok(bin(
            BinaryOp::Add,
            bin(BinaryOp::Concat, a.clone(), bb.clone()),
            c.clone()
        ))
    );
    assert_eq!(parse("$a - -1"), Ok(bin(BinaryOp::Sub, a, lit(-1.0))));
    assert_eq!(ev("2 + 3 * 4 - 6 / 2"), num(11.0));
    assert_eq!(ev("(2 + 3) * 4"), num(20.0));
    assert_eq!(ev("10 - 4 - 3"), num(3.0));
    assert_eq!(ev("true || false && false"), b(true));
    assert_eq!(ev("!false && false"), b(false));
}

// ----------------------------------------------------------------------------------------------
// Syntax errors, each with its offset

#[test]
fn syntax_errors_have_offsets_and_clear_messages() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "empty expression"),
        ("   ", 0, "empty expression"),
        (
            "toNumber($x",
            11,
            "expected ')' after the arguments of toNumber",
        ),
        (
            "toNumber($x $y)",
            12,
            "expected ')' after the arguments of toNumber",
        ),
        (
            "foo(1)",
            0,
            "unknown function 'foo'; known: toNumber, toString, toBoolean, matches, length, size, contains, default, substring, replaceAll, min, max",
        ),
        ("1 == 'abc", 5, "unterminated string"),
        ("\"abc\\", 0, "unterminated string"),
        ("'a\\qb'", 2, "unknown escape '\\q'"),
        ("(1 + 2", 6, "expected ')' to close the '(' at offset 0"),
        ("1 + 2)", 5, "unexpected ')' without a matching '('"),
        (
            "1 2",
            2,
            "expected an operator or the end after the expression, found the number 2",
        ),
        ("$", 1, "expected a variable name after '$'"),
        ("$ x", 1, "expected a variable name after '$'"),
        ("${}", 2, "expected a variable name after '${'"),
        ("${a", 3, "expected '}' after the variable name"),
        ("${1 + 2}", 4, "expected '}' after the variable name"),
        ("$a.", 2, "expected a key after '.'"),
        ("1.", 2, "expected digits after the decimal point"),
        ("$a = 1", 3, "did you mean '=='?"),
        ("$a & $b", 3, "did you mean '&&'?"),
        ("$a | $b", 3, "did you mean '||'?"),
        ("$a ? 1", 3, "unexpected character '?'"),
        (
            "1 +",
            3,
            "expected a value, found the end of the expression",
        ),
        ("* 2", 0, "expected a value, found '*'"),
        ("$a == == 1", 6, "expected a value, found '=='"),
        (
            "[1, 2",
            5,
            "expected ',' or ']' in the list opened at offset 0",
        ),
        ("[1 2]", 3, "expected ',' or ']'"),
        ("[1,]", 3, "expected a value, found ']'"),
        ("1 < 2 < 3", 6, "comparisons cannot be chained"),
        ("$a == 1 in [1]", 8, "comparisons cannot be chained"),
        (
            "host == 'x'",
            0,
            "unexpected word 'host': variables start with '$' ($host)",
        ),
        ("in", 0, "unexpected word 'in'"),
        ("toNumber(1, 2)", 0, "toNumber takes 1 argument, got 2"),
        ("matches($s)", 0, "matches takes 2 arguments, got 1"),
        ("length()", 0, "length takes 1 argument, got 0"),
        ("matches($s, '(')", 12, "bad regular expression \"(\""),
        ("1 == 2 }", 7, "found '}'"),
    ];
    for (src, offset, message) in cases {
        let e = perr(src);
        assert!(
            e.message.contains(message),
            "{src:?}: message {:?} lacks {message:?}",
            e.message
        );
        assert_eq!(e.offset, *offset, "{src:?}: {}", e.message);
    }
}

#[test]
fn error_display_names_the_offset() {
    assert_eq!(
        perr("(1").to_string(),
        "expected ')' to close the '(' at offset 0, found the end of the expression (at offset 2)"
    );
}

// ----------------------------------------------------------------------------------------------
// Limits

#[test]
fn source_longer_than_the_limit_is_refused() {
    let ok = format!("'{}'", "a".repeat(EXPR_BYTES_MAX - 2));
    assert!(parse(&ok).is_ok());
    let long = format!("'{}'", "a".repeat(EXPR_BYTES_MAX - 1));
    let e = perr(&long);
    assert_eq!(e.offset, EXPR_BYTES_MAX);
    assert!(e.message.contains("4097 bytes"), "{}", e.message);
}

#[test]
fn nesting_up_to_the_limit_parses_and_beyond_is_an_error() {
    let d = EXPR_DEPTH_MAX;
    // Parentheses: the outer expression is one level, each pair one more.
    let ok = format!("{}1{}", "(".repeat(d - 1), ")".repeat(d - 1));
    assert!(parse(&ok).is_ok());
    let deep = format!("{}1{}", "(".repeat(d), ")".repeat(d));
    let e = perr(&deep);
    assert!(e.message.contains("nested too deeply"), "{}", e.message);
    assert_eq!(e.offset, d);

    // Lists.
    let ok = format!("{}{}", "[".repeat(d), "]".repeat(d));
    assert!(parse(&ok).is_ok());
    let deep = format!("{}{}", "[".repeat(d + 1), "]".repeat(d + 1));
    assert!(perr(&deep).message.contains("nested too deeply"));

    // Unary operators.
    let deep = format!("{}true", "!".repeat(d));
    assert!(perr(&deep).message.contains("nested too deeply"));
    let ok = format!("{}true", "!".repeat(d - 2));
    assert!(parse(&ok).is_ok());

    // A chain of binary operators builds a tall tree without recursion; its height counts.
    let ok = vec!["1"; d].join(" + ");
    assert!(parse(&ok).is_ok());
    let tall = vec!["1"; d + 1].join(" + ");
    let e = perr(&tall);
    assert!(e.message.contains("nested too deeply"), "{}", e.message);

    // Function calls.
    let deep = format!("{}$x{}", "length(".repeat(d), ")".repeat(d));
    assert!(perr(&deep).message.contains("nested too deeply"));
}

#[test]
fn hostile_sources_at_the_size_limit_give_errors_not_stack_overflows() {
    for unit in ["(", "[", "!", "-", "- ", "toNumber(", "1 + ", "$a == ", "'"] {
        let src: String = unit.repeat(EXPR_BYTES_MAX / unit.len());
        assert!(parse(&src).is_err(), "{unit}");
        let template = format!("${{{}}}", unit.repeat(TEMPLATE_BYTES_MAX / unit.len() - 3));
        assert!(parse_template(&template).is_err(), "{unit}");
    }
}

#[test]
fn hostile_regex_is_refused() {
    let e = perr("matches($s, 'a{1000}{1000}')");
    assert!(e.message.contains("too big"), "{}", e.message);
    assert_eq!(e.offset, 12);
    // Also when the pattern comes from a variable.
    let mut v = vars();
    v.insert("re".into(), s("(\\w{200}){200}"));
    let err = eval(&parse("matches($host, $re)").unwrap(), &v).unwrap_err();
    assert!(err.0.contains("too big"), "{}", err.0);
}

// ----------------------------------------------------------------------------------------------
// Evaluation

#[test]
fn equality_compares_any_values_and_types_never_mix() {
    assert_eq!(ev("1 == 1"), b(true));
    assert_eq!(ev("1 == 1.0"), b(true));
    assert_eq!(ev("1 != 2"), b(true));
    assert_eq!(ev("1 == '1'"), b(false));
    assert_eq!(ev("1 != '1'"), b(true));
    assert_eq!(ev("'a' == \"a\""), b(true));
    assert_eq!(ev("true == true"), b(true));
    assert_eq!(ev("true == 'true'"), b(false));
    assert_eq!(ev("[1, 'a'] == $list"), b(true));
    assert_eq!(ev("[1] == [1, 2]"), b(false));
    assert_eq!(ev("$returnCode == 3"), b(true));
    assert_eq!(ev("$order.id == 'o-7'"), b(true));
}

#[test]
fn missing_variables_are_errors_everywhere_but_in_default() {
    assert_eq!(ev("default($x, 1) == 1"), b(true));
    assert_eq!(ev("default($x, '') != ''"), b(false));
    for src in [
        "$x == 1",
        "$x != 1",
        "1 == $x",
        "$x == $y",
        "$x in [1, 2]",
        "[$x]",
        "contains([1], $x)",
        "$x + 1",
        "1 - $x",
        "$x * 2",
        "$x / 2",
        "$x < 1",
        "1 >= $x",
        "!$x",
        "-$x",
        "$x && true",
        "false || $x",
        "$x ++ 'a'",
        "1 in $x",
        "toNumber($x)",
        "toString($x)",
        "toBoolean($x)",
        "length($x)",
        "matches($x, 'a')",
        "matches('a', $x)",
        "contains($x, 1)",
        "contains('abc', $x)",
    ] {
        assert_eq!(ev_err(src), "variable $x is not set", "{src}");
    }
}

#[test]
fn ordering_of_numbers_and_strings() {
    assert_eq!(ev("1 < 2"), b(true));
    assert_eq!(ev("2 < 2"), b(false));
    assert_eq!(ev("2 <= 2"), b(true));
    assert_eq!(ev("3 > 2"), b(true));
    assert_eq!(ev("2 >= 3"), b(false));
    assert_eq!(ev("-1.5 < -1"), b(true));
    assert_eq!(ev("'abc' < 'abd'"), b(true));
    assert_eq!(ev("'b' > 'abc'"), b(true));
    assert_eq!(ev("'a' >= 'a'"), b(true));
    assert_eq!(
        ev_err("1 < 'a'"),
        "'<' compares two numbers or two strings, got number and string"
    );
    assert_eq!(
        ev_err("true >= false"),
        "'>=' compares two numbers or two strings, got boolean and boolean"
    );
    assert_eq!(
        ev_err("$list > 1"),
        "'>' compares two numbers or two strings, got list and number"
    );
}

#[test]
fn logic_short_circuits_on_booleans() {
    assert_eq!(ev("$t && $t"), b(true));
    assert_eq!(ev("$t && $f"), b(false));
    assert_eq!(ev("$f || $t"), b(true));
    assert_eq!(ev("$f || $f"), b(false));
    assert_eq!(ev("!$f"), b(true));
    assert_eq!(ev("!!$t"), b(true));
    // The right side is not evaluated when the left side decides.
    assert_eq!(ev("$f && 1 / 0 == 1"), b(false));
    assert_eq!(ev("$t || $nothing"), b(true));
    assert_eq!(ev("$f && 'not a boolean'"), b(false));
    assert_eq!(ev_err("1 && true"), "'&&' needs booleans, got number 1");
    assert_eq!(
        ev_err("false || 'yes'"),
        "'||' needs booleans, got string \"yes\""
    );
    assert_eq!(ev_err("!'x'"), "'!' needs booleans, got string \"x\"");
    let long = format!("!'{}'", "x".repeat(100));
    assert!(ev_err(&long).ends_with("xxx..."));
}

#[test]
fn arithmetic_on_numbers() {
    assert_eq!(ev("1 + 2"), num(3.0));
    assert_eq!(ev("1.5 - 2"), num(-0.5));
    assert_eq!(ev("4 * 2.5"), num(10.0));
    assert_eq!(ev("7 / 2"), num(3.5));
    assert_eq!(ev("-(2 + 3)"), num(-5.0));
    assert_eq!(ev("--2"), num(2.0));
    assert_eq!(ev("$returnCode * 2"), num(6.0));
    assert_eq!(ev_err("1 / 0"), "division by zero in 1 / 0");
    assert_eq!(ev_err("1 / $zero"), "division by zero in 1 / $zero");
    assert_eq!(
        ev_err("'a' + 1"),
        "'+' needs numbers, got string and number (use ++ to join text)"
    );
    assert_eq!(
        ev_err("true * 1"),
        "'*' needs numbers, got boolean and number"
    );
    assert_eq!(ev_err("-'a'"), "'-' needs a number, got string \"a\"");
    let huge = format!("1{} * 10", "0".repeat(308));
    assert_eq!(ev_err(&huge), "'*' overflowed the range of numbers");
}

#[test]
fn concat_joins_text_of_any_values() {
    assert_eq!(ev("'a' ++ 'b'"), s("ab"));
    assert_eq!(ev("'rc=' ++ $returnCode"), s("rc=3"));
    assert_eq!(ev("1.5 ++ true"), s("1.5true"));
    assert_eq!(ev("$list ++ ''"), s("1,a"));
    assert_eq!(ev("1 ++ 2 ++ 3"), s("123"));
}

#[test]
fn in_looks_for_an_equal_element() {
    assert_eq!(ev("$returnCode in [1, 2, 3]"), b(true));
    assert_eq!(ev("'3' in [1, 2, 3]"), b(false));
    assert_eq!(ev("'a' in $list"), b(true));
    assert_eq!(ev("1 in []"), b(false));
    assert_eq!(
        ev_err("'a' in 'abc'"),
        "'in' needs a list on its right side, got string"
    );
}

#[test]
fn functions() {
    assert_eq!(ev("toNumber($n)"), num(41.0));
    assert_eq!(ev("toNumber(' -2.5 ')"), num(-2.5));
    assert_eq!(ev("toNumber('1e3')"), num(1000.0));
    assert_eq!(ev("toNumber(7)"), num(7.0));
    assert_eq!(ev("toNumber(true)"), num(1.0));
    assert_eq!(
        ev_err("toNumber('abc')"),
        "toNumber: \"abc\" is not a number"
    );
    assert_eq!(
        ev_err("toNumber('inf')"),
        "toNumber: \"inf\" is not a number"
    );
    assert_eq!(
        ev_err("toNumber('NaN')"),
        "toNumber: \"NaN\" is not a number"
    );
    assert_eq!(ev_err("toNumber('')"), "toNumber: \"\" is not a number");
    assert_eq!(
        ev_err("toNumber([1])"),
        "toNumber needs a string, number or boolean, got list"
    );

    assert_eq!(ev("toString(3)"), s("3"));
    assert_eq!(ev("toString(2.5)"), s("2.5"));
    assert_eq!(ev("toString(false)"), s("false"));
    assert_eq!(ev("toString('x')"), s("x"));

    assert_eq!(ev("toBoolean('true')"), b(true));
    assert_eq!(ev("toBoolean('false')"), b(false));
    assert_eq!(ev("toBoolean($t)"), b(true));
    assert_eq!(
        ev_err("toBoolean('yes')"),
        "toBoolean: \"yes\" is neither \"true\" nor \"false\""
    );
    assert_eq!(
        ev_err("toBoolean(1)"),
        "toBoolean needs a string or boolean, got number"
    );

    assert_eq!(ev("matches($host, '^db-\\\\d+$')"), b(true));
    assert_eq!(ev("matches($host, '^web')"), b(false));
    assert_eq!(ev("matches('DB', '(?i)^db$')"), b(true));
    assert_eq!(
        ev_err("matches(1, '1')"),
        "matches needs a string to search, got number (use toString)"
    );
    assert_eq!(
        ev_err("matches('1', 1)"),
        "matches needs a string as its regular expression, got number"
    );
    let mut v = vars();
    v.insert("re".into(), s("["));
    let e = eval(&parse("matches('a', $re)").unwrap(), &v).unwrap_err();
    assert!(e.0.starts_with("bad regular expression \"[\""), "{}", e.0);

    assert_eq!(ev("length('héllo')"), num(5.0));
    assert_eq!(ev("length($list)"), num(2.0));
    assert_eq!(ev("length([])"), num(0.0));
    assert_eq!(
        ev_err("length(3)"),
        "length needs a string, list or map, got number"
    );

    assert_eq!(ev("contains($list, 'a')"), b(true));
    assert_eq!(ev("contains($list, 2)"), b(false));
    assert_eq!(ev_err("contains($list, $x)"), "variable $x is not set");
    assert_eq!(ev("contains($host, 'b-0')"), b(true));
    assert_eq!(ev("contains($host, 'x')"), b(false));
    assert_eq!(
        ev_err("contains('abc', 1)"),
        "contains on a string needs a string to look for, got number"
    );
    assert_eq!(
        ev_err("contains(1, 1)"),
        "contains needs a list, map or string, got number"
    );

    assert_eq!(ev("default($x, 'none')"), s("none"));
    assert_eq!(ev("default($host, 'none')"), s("db-01"));
    assert_eq!(
        ev_err("default($x, $y) == 1"),
        "default($x, $y) has no value"
    );
    // The fallback is only evaluated when needed.
    assert_eq!(ev("default($returnCode, 1 / 0)"), num(3.0));
}

#[test]
fn a_call_built_with_too_few_arguments_is_an_error_not_a_panic() {
    let e = Expr::Call(Func::Matches, vec![Expr::Literal(s("a"))]);
    assert_eq!(
        eval(&e, &vars()),
        Err(ordo_model::expr::EvalError(
            "matches takes 2 arguments, got 1".into()
        ))
    );
    let e = Expr::Call(Func::Length, vec![]);
    assert!(eval(&e, &vars()).is_err());
}

// ----------------------------------------------------------------------------------------------
// Templates

#[test]
fn template_parts() {
    let t = parse_template("report-$day.csv").unwrap();
    assert_eq!(
        t.parts,
        vec![
            TemplatePart::Text("report-".into()),
            TemplatePart::Expr(var("day")),
            TemplatePart::Text(".csv".into()),
        ]
    );
    assert_eq!(
        parse_template("a$$b$$").unwrap().parts,
        vec![TemplatePart::Text("a$b$".into())]
    );
    assert_eq!(
        parse_template("${order.id}").unwrap().parts,
        vec![TemplatePart::Expr(var("order.id"))]
    );
    assert_eq!(
        parse_template("${true}").unwrap().parts,
        vec![TemplatePart::Expr(Expr::Literal(b(true)))]
    );
    assert_eq!(
        parse_template("${3}").unwrap().parts,
        vec![TemplatePart::Expr(lit(3.0))]
    );
    assert_eq!(parse_template("").unwrap().parts, vec![]);
    assert_eq!(
        parse_template("${'}'}").unwrap().parts,
        vec![TemplatePart::Expr(Expr::Literal(s("}")))]
    );
}

#[test]
fn template_rendering() {
    assert_eq!(rend("report-$day.csv"), s("report-2024-05-01.csv"));
    assert_eq!(rend("${toNumber($n) + 1}"), num(42.0));
    assert_eq!(rend("$returnCode"), num(3.0));
    assert_eq!(rend("${list}"), vars()["list"]);
    assert_eq!(rend("$t"), b(true));
    assert_eq!(rend("rc=$returnCode"), s("rc=3"));
    assert_eq!(rend("n=${toNumber($n) + 1}!"), s("n=42!"));
    for src in ["[$missing]", "$missing", "${missing}"] {
        let t = parse_template(src).unwrap();
        assert_eq!(
            render(&t, &vars()).unwrap_err().0,
            "variable $missing is not set",
            "{src}"
        );
    }
    assert_eq!(rend("cost: $$5"), s("cost: $5"));
    assert_eq!(rend(""), s(""));
    assert_eq!(rend("plain"), s("plain"));
    assert_eq!(rend("$host$day"), s("db-012024-05-01"));
    let t = parse_template("x${1 / 0}").unwrap();
    assert_eq!(
        render(&t, &vars()).unwrap_err().0,
        "division by zero in 1 / 0"
    );
}

#[test]
fn template_errors_point_into_the_template() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "a $ b",
            2,
            "'$' must be followed by a variable name, '{' or '$'",
        ),
        ("end$", 3, "'$' must be followed by"),
        ("x-$-", 2, "'$' must be followed by"),
        ("ab${}", 2, "empty '${}'"),
        ("ab${1 + }", 8, "expected a value, found '}'"),
        ("ab${1 + 2", 9, "expected '}' to close the '${' at offset 2"),
        (
            "ab${1 2}",
            6,
            "expected '}' to close the '${' at offset 2, found the number 2",
        ),
        ("ab${'x}", 4, "unterminated string"),
        ("ab${foo(1)}", 4, "unknown function 'foo'"),
    ];
    for (src, offset, message) in cases {
        let e = terr(src);
        assert!(
            e.message.contains(message),
            "{src:?}: message {:?} lacks {message:?}",
            e.message
        );
        assert_eq!(e.offset, *offset, "{src:?}: {}", e.message);
    }
    let long = "a".repeat(TEMPLATE_BYTES_MAX + 1);
    assert_eq!(terr(&long).offset, TEMPLATE_BYTES_MAX);
}

// ----------------------------------------------------------------------------------------------
// Printing

#[test]
fn printing_is_canonical() {
    let cases = [
        ("$a||$b&&$c", "$a || $b && $c"),
        ("($a || $b) && $c", "($a || $b) && $c"),
        ("1 - (2 - 3)", "1 - (2 - 3)"),
        ("(1 - 2) - 3", "1 - 2 - 3"),
        ("(1 < 2) == true", "(1 < 2) == true"),
        ("-(3)", "-(3)"),
        ("- 3", "-3"),
        ("-(-3)", "-(-3)"),
        ("--$x", "--$x"),
        ("!(!$x)", "!!$x"),
        ("-($a + 1) * 2", "-($a + 1) * 2"),
        ("${a.b}", "$a.b"),
        ("'it\\'s \"x\"\\n'", "\"it's \\\"x\\\"\\n\""),
        ("[1,[2 , 'a']]", "[1, [2, \"a\"]]"),
        ("matches( $s,'^a' )", "matches($s, \"^a\")"),
        ("0.1 + 100000000000000000000", "0.1 + 100000000000000000000"),
    ];
    for (src, printed) in cases {
        let e = parse(src).unwrap();
        assert_eq!(e.to_string(), printed, "{src}");
        assert_eq!(parse(printed), Ok(e), "{src}");
    }
    let t = parse_template("a$$-$x.${1 + 1}${true}").unwrap();
    assert_eq!(t.to_string(), "a$$-${x}.${1 + 1}${true}");
    assert_eq!(parse_template(&t.to_string()), Ok(t));
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_]{0,6}",
        "[a-z]{1,4}\\.[a-z0-9_]{1,4}",
        "[0-9]{1,3}",
        Just("true".to_owned()),
        Just("returnCode".to_owned()),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        any::<bool>().prop_map(|v| Expr::Literal(Value::Bool(v))),
        (-1e6f64..1e6).prop_map(|n| Expr::Literal(Value::Number(n))),
        (0u32..1000).prop_map(|n| Expr::Literal(Value::Number(f64::from(n)))),
        // Any mantissa, at a scale that prints in a few dozen digits.
        (any::<i64>(), -40i32..40).prop_map(|(m, e)| lit(m as f64 * 2f64.powi(e))),
        "(?s).{0,8}".prop_map(|t| Expr::Literal(Value::String(t))),
        "[\"'\\\\$\n\t{}]{0,4}".prop_map(|t| Expr::Literal(Value::String(t))),
        name().prop_map(Expr::Var),
    ]
}

fn binary_op() -> impl Strategy<Value = BinaryOp> {
    prop::sample::select(vec![
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Concat,
        BinaryOp::In,
    ])
}

/// Expressions as the parser builds them: no tree taller than the depth limit.
fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(8, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Expr::List),
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            inner.clone().prop_map(|e| Expr::Neg(Box::new(e))),
            (binary_op(), inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Binary(
                op,
                Box::new(l),
                Box::new(r)
            )),
            (
                prop::sample::select(Func::ALL.to_vec()),
                inner.clone(),
                inner.clone(),
                0usize..3,
            )
                .prop_map(|(f, a, b, extra)| {
                    let (least, most) = f.arity();
                    let n = (least + extra).min(most);
                    let mut args = vec![a];
                    args.extend(std::iter::repeat_n(b, n - 1));
                    Expr::Call(f, args)
                }),
            (inner.clone(), "[a-z][a-z0-9_]{0,4}")
                .prop_map(|(e, key)| Expr::Field(Box::new(e), key)),
            (inner.clone(), inner.clone()).prop_map(|(e, i)| Expr::Index(Box::new(e), Box::new(i))),
            (
                "(?s).{0,6}",
                0u8..4,
                "[a-z][a-z0-9._-]{0,5}|(?s).{0,4}",
                prop::option::of(inner)
            )
                .prop_map(|(key, from, name, default)| {
                    let from = match from {
                        0 => VarFrom::Order,
                        1 => VarFrom::Argument,
                        2 => VarFrom::Label {
                            label: name,
                            positions: Vec::new(),
                        },
                        _ => VarFrom::Job {
                            job: name,
                            positions: Vec::new(),
                        },
                    };
                    Expr::Variable(Box::new(VarRef { key, from, default }))
                }),
        ]
    })
}

fn template() -> impl Strategy<Value = Template> {
    let part = prop_oneof![
        "(?s).{1,6}".prop_map(TemplatePart::Text),
        "[$.{}a]{1,4}".prop_map(TemplatePart::Text),
        expr().prop_map(TemplatePart::Expr),
    ];
    prop::collection::vec(part, 0..5).prop_map(|parts| {
        // The parser joins neighbouring texts.
        let mut out: Vec<TemplatePart> = Vec::new();
        for p in parts {
            match (out.last_mut(), p) {
                (Some(TemplatePart::Text(prev)), TemplatePart::Text(t)) => prev.push_str(&t),
                (_, p) => out.push(p),
            }
        }
        Template { parts: out }
    })
}

/// A regular expression literal that does not compile is refused by the parser, so a generated
/// `matches` with such a literal has no printed form to compare.
fn has_bad_regex_literal(e: &Expr) -> bool {
    match e {
        Expr::Call(Func::Matches | Func::ReplaceAll, args) => {
            matches!(args.get(1), Some(Expr::Literal(Value::String(p))) if regex_fails(p))
                || args.iter().any(has_bad_regex_literal)
        }
        Expr::Call(_, args) | Expr::List(args) => args.iter().any(has_bad_regex_literal),
        Expr::Not(e) | Expr::Neg(e) | Expr::Field(e, _) => has_bad_regex_literal(e),
        Expr::Binary(_, l, r) | Expr::Index(l, r) => {
            has_bad_regex_literal(l) || has_bad_regex_literal(r)
        }
        Expr::Variable(v) => v.default.as_ref().is_some_and(has_bad_regex_literal),
        Expr::Literal(_) | Expr::Var(_) => false,
    }
}

fn regex_fails(p: &str) -> bool {
    parse(&format!(
        "matches('', {})",
        Expr::Literal(Value::String(p.to_owned()))
    ))
    .is_err()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/expr.txt"
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn printed_expressions_parse_back_to_the_same_tree(e in expr()) {
        prop_assume!(!has_bad_regex_literal(&e));
        let printed = e.to_string();
        prop_assert_eq!(parse(&printed), Ok(e), "printed as {}", printed);
    }

    #[test]
    fn printed_templates_parse_back_to_the_same_parts(t in template()) {
        prop_assume!(!t.parts.iter().any(|p| matches!(p, TemplatePart::Expr(e) if has_bad_regex_literal(e))));
        let printed = t.to_string();
        prop_assert_eq!(parse_template(&printed), Ok(t), "printed as {}", printed);
    }

    #[test]
    fn parse_never_panics(src in "(?s).{0,64}") {
        let _ = parse(&src);
        let _ = parse_template(&src);
    }

    #[test]
    fn parse_never_panics_on_expression_alphabet(src in "[$(){}\\[\\],!=<>&|+\\-*/'\"\\\\a-z0-9. ]{0,64}") {
        if let Ok(e) = parse(&src) {
            let _ = eval(&e, &vars());
            prop_assert_eq!(parse(&e.to_string()), Ok(e));
        }
        if let Ok(t) = parse_template(&src) {
            let _ = render(&t, &vars());
            prop_assert_eq!(parse_template(&t.to_string()), Ok(t));
        }
    }

    #[test]
    fn errors_point_inside_the_source(src in "[$(){}\\[\\],!=<>&|+\\-*/'\"\\\\a-z0-9. ]{0,64}") {
        if let Err(e) = parse(&src) {
            prop_assert!(e.offset <= src.len());
        }
        if let Err(e) = parse_template(&src) {
            prop_assert!(e.offset <= src.len());
        }
    }
}

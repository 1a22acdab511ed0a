//! Lists and maps in expressions (`$x.key`, `$x[0]`), the string functions, and
//! `variable(...)`/`argument(...)`: values, the problems they give, and their syntax errors.

use ordo_model::expr::{Expr, Scope, VarFrom, eval, parse, parse_template, render};
use ordo_model::position::Position;
use ordo_model::value::{Value, Vars};
use std::collections::BTreeMap;

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn list(items: &[Value]) -> Value {
    Value::List(items.to_vec())
}

/// Variables, a returned value at position 1 and the argument `given`.
struct TestScope(Vars);

impl Scope for TestScope {
    fn get(&self, name: &str) -> Option<Value> {
        self.0.get(name).cloned()
    }
    fn returned(&self, key: &str, positions: &[Position]) -> Option<Value> {
        let at = Position {
            outer: Vec::new(),
            index: 1,
        };
        (positions.contains(&at) && key == "size").then(|| Value::from(10i64))
    }
    fn argument(&self, key: &str) -> Option<Value> {
        (key == "given").then(|| Value::from("as given"))
    }
}

fn scope() -> TestScope {
    let mut v = Vars::new();
    v.insert(
        "cfg".into(),
        map(&[
            (
                "hosts",
                list(&[Value::from("db1"), Value::from("db2"), Value::from("db3")]),
            ),
            (
                "db",
                map(&[
                    ("port", Value::from(5432i64)),
                    ("name", Value::from("main-db")),
                ]),
            ),
            (
                "rows",
                list(&[
                    map(&[("id", Value::from(7i64))]),
                    map(&[("id", Value::from(8i64))]),
                ]),
            ),
        ]),
    );
    v.insert("i".into(), Value::from(1i64));
    v.insert("key".into(), Value::from("db"));
    v.insert("text".into(), Value::from("héllo-wörld"));
    v.insert("n".into(), Value::from(3i64));
    TestScope(v)
}

fn ev(src: &str) -> Value {
    let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    eval(&e, &scope()).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn ev_err(src: &str) -> String {
    let e = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
    match eval(&e, &scope()) {
        Ok(Value::Missing) => {
            // As the order state machine meets it: a value is needed.
            render(&parse_template(&format!("${{{src}}}")).unwrap(), &scope())
                .expect_err("no value is an error where a value is needed")
                .0
        }
        Ok(v) => panic!("{src} gave {v:?}, expected an error"),
        Err(e) => e.0,
    }
}

#[test]
fn keys_and_indexes_read_inside_maps_and_lists() {
    assert_eq!(ev("$cfg.db.port"), Value::from(5432i64));
    assert_eq!(ev("$cfg.hosts[0]"), Value::from("db1"));
    assert_eq!(ev("$cfg.hosts[-1]"), Value::from("db3"));
    assert_eq!(ev("$cfg.hosts[$i]"), Value::from("db2"));
    assert_eq!(ev("$cfg[$key].name"), Value::from("main-db"));
    assert_eq!(ev("$cfg['db']['port'] + 1"), Value::from(5433i64));
    assert_eq!(ev("$cfg.rows[1].id"), Value::from(8i64));
    assert_eq!(ev("$cfg.hosts.0"), Value::from("db1"));
    assert_eq!(ev("[10, 20, 30][1]"), Value::from(20i64));
    assert_eq!(ev("($cfg.db).name"), Value::from("main-db"));
    assert_eq!(ev("default($cfg.db.user, 'nobody')"), Value::from("nobody"));
    assert_eq!(ev("default($cfg.hosts[9], 'none')"), Value::from("none"));
    assert_eq!(ev("contains($cfg.db, 'port')"), Value::Bool(true));
    // Templates: `${name.key}` reads a key; `$name.key` is the variable and text.
    let t = parse_template("${cfg.db.port}/$n.txt").unwrap();
    assert_eq!(render(&t, &scope()).unwrap(), Value::from("5432/3.txt"));
}

#[test]
fn a_missing_key_or_index_names_what_is_there() {
    assert_eq!(
        ev_err("$cfg.db.user"),
        "$cfg.db has no key \"user\" (its keys: name, port)"
    );
    assert_eq!(
        ev_err("$cfg.hosts[3]"),
        "$cfg.hosts[3]: index 3 is out of range of 3 elements"
    );
    assert_eq!(
        ev_err("$cfg.rows[0].name"),
        "$cfg.rows[0] has no key \"name\" (its keys: id)"
    );
    assert_eq!(ev_err("$nothing.key"), "variable $nothing is not set");
    assert_eq!(
        ev_err("$cfg.db.port.x"),
        "$cfg.db.port.x: $cfg.db.port is number 5432, not a map"
    );
    assert_eq!(
        ev_err("$n[0]"),
        "$n[...]: $n is number 3, not a list or map"
    );
    assert_eq!(
        ev_err("$cfg.hosts['a']"),
        "$cfg.hosts[...]: a list is indexed by a number, got string \"a\""
    );
    assert_eq!(
        ev_err("$cfg.hosts[0.5]"),
        "$cfg.hosts[0.5]: a list's index is a whole number"
    );
}

#[test]
fn string_and_list_functions() {
    assert_eq!(ev("substring($text, 1, 4)"), Value::from("éll"));
    assert_eq!(ev("substring($text, 6)"), Value::from("wörld"));
    assert_eq!(ev("substring('', 0)"), Value::from(""));
    assert_eq!(
        ev_err("substring('abc', 2, 5)"),
        "substring(2, 5) is outside the 3 characters of \"abc\""
    );
    assert_eq!(
        ev_err("substring('abc', -1)"),
        "substring needs a whole number from 0 as its begin, got number -1"
    );
    assert_eq!(
        ev("replaceAll($text, '[éö]', '_')"),
        Value::from("h_llo-w_rld")
    );
    assert_eq!(
        ev("replaceAll('a-1 b-2', '([a-z])-([0-9])', '$2$1')"),
        Value::from("1a 2b")
    );
    assert_eq!(ev("size($cfg)"), Value::from(3i64));
    assert_eq!(ev("size($cfg.hosts)"), Value::from(3i64));
    assert_eq!(ev("length($text)"), Value::from(11i64));
    assert_eq!(ev("min([3, 1, 2])"), Value::from(1i64));
    assert_eq!(ev("max(3, 1, 2)"), Value::from(3i64));
    assert_eq!(ev("max($cfg.hosts)"), Value::from("db3"));
    assert_eq!(ev_err("min([])"), "min of an empty list has no value");
    assert_eq!(
        ev_err("max(1, 'a')"),
        "max compares numbers or strings, all of one type; got string with number"
    );
    assert_eq!(ev("toNumber('12') + toNumber(true)"), Value::from(13i64));
    assert_eq!(ev("toBoolean(' true ')"), Value::Bool(true));
    assert_eq!(
        parse("substring('a')").unwrap_err().message,
        "substring takes 2 or 3 arguments, got 1"
    );
    assert_eq!(
        parse("replaceAll('a', '(', 'b')").unwrap_err().offset,
        16,
        "a bad literal regular expression is refused where it is written"
    );
}

#[test]
fn variable_and_argument_read_outcomes_and_arguments() {
    let at = |label: &str| {
        let mut e = parse(&format!("variable('size', label={label}, default=0)")).unwrap();
        if let Expr::Variable(v) = &mut e
            && let VarFrom::Label { positions, .. } = &mut v.from
        {
            positions.push(Position {
                outer: Vec::new(),
                index: 1,
            });
        }
        eval(&e, &scope()).unwrap()
    };
    assert_eq!(at("step-a"), Value::from(10i64));
    // Unresolved (no position): the default.
    assert_eq!(
        ev("variable('size', label=step-a, default=0)"),
        Value::from(0i64)
    );
    assert_eq!(ev("variable('n')"), Value::from(3i64));
    assert_eq!(ev("variable(key='n', default=1)"), Value::from(3i64));
    assert_eq!(ev("argument('given')"), Value::from("as given"));
    assert_eq!(ev("argument('n', default='x')"), Value::from("x"));
    assert_eq!(
        ev_err("variable('size', job=measure)"),
        "variable(\"size\", job=measure): no outcome kept of job measure has size"
    );
    assert_eq!(
        ev_err("argument('n')"),
        "argument(\"n\"): the order was not given the argument n, or a step replaced it"
    );
}

#[test]
fn variable_syntax_errors_are_clear() {
    let cases: BTreeMap<&str, &str> = BTreeMap::from([
        ("variable()", "variable(...) needs the variable's name"),
        (
            "variable($x)",
            "takes the variable's name as a string first",
        ),
        ("variable('x', 'y')", "takes its further arguments by name"),
        (
            "variable('x', label=a, job=b)",
            "takes one of label= and job=, once",
        ),
        (
            "argument('x', label=a)",
            "argument(...) has no argument label=",
        ),
        ("variable('x', default=1, default=2)", "has default= twice"),
        ("variable('x', label=-a)", "expected a label"),
        ("variable('x', colour=1)", "has no argument colour="),
    ]);
    for (src, expected) in cases {
        let e = parse(src).expect_err(src);
        assert!(e.message.contains(expected), "{src}: {}", e.message);
    }
    // Printing parses back, with bare names where they can be.
    for src in [
        "variable(\"x\", label=step-a, default=[1, 2])",
        "variable(\"x\", job=\"a job\")",
        "argument(\"x\")",
        "${x}.a[0].b",
        "(1).a",
    ] {
        let e = parse(src).unwrap();
        assert_eq!(e.to_string(), src);
    }
}

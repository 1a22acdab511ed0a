//! The lenient layer: YAML read by serde-saphyr into a tree of nodes that keep their positions.
//!
//! serde-saphyr parses (with its budgets against hostile input: depth, node count, scalar
//! bytes, alias replay) and hands every node to our visitor wrapped in
//! [`serde_saphyr::Spanned`]. Nothing is typed here: the validator decides what each node must
//! be, so one run reports every problem instead of stopping at the first like serde would.
//!
//! YAML 1.1 guesses types (`n` and `yes` are booleans, `010` is a number). A scalar therefore
//! keeps the text the user wrote next to the type serde-saphyr inferred, and the validator uses
//! the text wherever it wants a string: `workflow: 2024` names the workflow `2024`.
//!
//! On top of serde-saphyr's budgets a per-file budget counts the nodes and scalar bytes this
//! layer materialises (after alias expansion) and the nesting depth, so memory stays bounded
//! whatever the aliases multiply.

use super::Limits;
use super::diag::{LineIndex, Pos};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::cell::RefCell;
use std::fmt;

/// A YAML node with the position where it is used (`pos`; for an alias, the alias) and where
/// its text is (`def`, `len_chars`; for an alias, the anchored original).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub def: Pos,
    pub len_chars: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// `~`, `null` or nothing at all.
    Null,
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in source order; duplicate keys are kept for the validator to report.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    /// The string value of a quoted or block scalar, or the source text of a plain one.
    pub text: String,
    pub typed: Typed,
}

/// The type YAML inferred for a scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Typed {
    Str,
    Bool(bool),
    Int(i128),
    Float(f64),
}

impl Node {
    /// What this node is, for messages: "a mapping", "a list", "the number 3", ...
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "nothing".to_owned(),
            Kind::Seq(_) => "a list".to_owned(),
            Kind::Map(_) => "a mapping".to_owned(),
            Kind::Scalar(s) => match s.typed {
                Typed::Str => {
                    let mut text: String = s.text.chars().take(40).collect();
                    if text.len() < s.text.len() {
                        text.push_str("...");
                    }
                    format!("the text {text:?}")
                }
                Typed::Bool(_) => format!("`{}`", s.text),
                Typed::Int(_) | Typed::Float(_) => format!("the number {}", s.text),
            },
        }
    }

    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }
}

/// A problem found while loading: the position and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoadError {
    pub pos: Pos,
    pub message: String,
}

/// Reads every YAML document of `src`. Returns the documents read and the errors met; after a
/// syntax error or an exhausted budget no further document is read.
pub(crate) fn load(src: &str, limits: &Limits) -> (Vec<Node>, Vec<LoadError>) {
    let depth_max = limits.depth_max.clamp(1, super::DEPTH_MAX_CAP);
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(limits.file_bytes_max.saturating_add(1)),
            max_depth: depth_max,
            max_nodes: limits.nodes_per_file_max,
            max_total_scalar_bytes: limits.file_bytes_max,
            max_documents: limits.documents_per_file_max,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: limits.alias_nodes_max,
            max_replay_stack_depth: depth_max,
        },
        emit_comments: false,
    };
    let _guard = BudgetGuard::install(LoadBudget {
        nodes_left: limits.nodes_per_file_max,
        bytes_left: limits.expanded_bytes_per_file_max,
        depth: 0,
        depth_max,
        exhausted: false,
    });
    let lines = LineIndex::new(src);
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    let mut reader = src.as_bytes();
    for (i, doc) in
        serde_saphyr::read_with_options::<_, Spanned<Raw>>(&mut reader, options).enumerate()
    {
        if i == limits.documents_per_file_max {
            let pos = match &doc {
                Ok(raw) => pos_of(&raw.referenced),
                Err(e) => load_error(e, limits).pos,
            };
            errors.push(LoadError {
                pos,
                message: format!(
                    "more than {} YAML documents in one file (limit documents_per_file_max)",
                    limits.documents_per_file_max
                ),
            });
            break;
        }
        match doc {
            Ok(raw) => docs.push(convert(raw, &lines)),
            Err(e) => {
                errors.push(load_error(&e, limits));
                if BUDGET.with(|b| b.borrow().as_ref().is_some_and(|b| b.exhausted)) {
                    break;
                }
            }
        }
        if errors.len() >= limits.diagnostics_max {
            break;
        }
    }
    (docs, errors)
}

fn load_error(e: &serde_saphyr::Error, limits: &Limits) -> LoadError {
    use serde_saphyr::MessageFormatter;
    use serde_saphyr::budget::BudgetBreach;
    let pos = e
        .location()
        .filter(|l| l.line() > 0)
        .map_or(Pos::START, |l| Pos {
            line: u32::try_from(l.line()).unwrap_or(u32::MAX),
            col: u32::try_from(l.column()).unwrap_or(u32::MAX),
        });
    let mut inner = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    let message = match inner {
        serde_saphyr::Error::Budget { breach, .. } => match breach {
            BudgetBreach::Depth { .. } => format!(
                "nested more than {} levels deep (limit depth_max)",
                limits.depth_max.clamp(1, super::DEPTH_MAX_CAP)
            ),
            BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => format!(
                "more than {} YAML nodes in one file (limit nodes_per_file_max)",
                limits.nodes_per_file_max
            ),
            BudgetBreach::ScalarBytes { .. } => format!(
                "more than {} bytes of text in one file (limit file_bytes_max)",
                limits.file_bytes_max
            ),
            BudgetBreach::Documents { .. } => format!(
                "more than {} YAML documents in one file (limit documents_per_file_max)",
                limits.documents_per_file_max
            ),
            BudgetBreach::Aliases { .. }
            | BudgetBreach::Anchors { .. }
            | BudgetBreach::AliasAnchorRatio { .. } => {
                "too many aliases: the file looks like an alias bomb".to_owned()
            }
            other => format!("the YAML exceeds a parser limit: {other:?}"),
        },
        serde_saphyr::Error::AliasReplayLimitExceeded { .. }
        | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
        | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. } => format!(
            "aliases expand to more than {} nodes (limit alias_nodes_max); is this an alias bomb?",
            limits.alias_nodes_max
        ),
        other => {
            let message = serde_saphyr::DefaultMessageFormatter.format_message(other);
            if message == "recursion limit exceeded" {
                format!(
                    "nested more than {} levels deep (limit depth_max)",
                    limits.depth_max.clamp(1, super::DEPTH_MAX_CAP)
                )
            } else {
                message.into_owned()
            }
        }
    };
    LoadError { pos, message }
}

/// The raw tree as serde-saphyr delivers it; converted into [`Node`] right away.
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

fn pos_of(l: &serde_saphyr::Location) -> Pos {
    Pos {
        line: u32::try_from(l.line()).unwrap_or(u32::MAX).max(1),
        col: u32::try_from(l.column()).unwrap_or(u32::MAX).max(1),
    }
}

fn convert(raw: Spanned<Raw>, lines: &LineIndex<'_>) -> Node {
    let pos = pos_of(&raw.referenced);
    let def = pos_of(&raw.defined);
    let len_chars = usize::try_from(raw.defined.span().len()).unwrap_or(0);
    let source_text = || {
        lines
            .slice(def, len_chars)
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let scalar = |typed: Typed, fallback: String| {
        Kind::Scalar(Scalar {
            text: source_text().unwrap_or(fallback),
            typed,
        })
    };
    let kind = match raw.value {
        Raw::Null => Kind::Null,
        Raw::Str(text) => Kind::Scalar(Scalar {
            text,
            typed: Typed::Str,
        }),
        Raw::Bool(b) => scalar(Typed::Bool(b), b.to_string()),
        Raw::Int(i) => scalar(Typed::Int(i), i.to_string()),
        Raw::Float(f) => scalar(Typed::Float(f), f.to_string()),
        Raw::Seq(items) => Kind::Seq(items.into_iter().map(|n| convert(n, lines)).collect()),
        Raw::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (convert(k, lines), convert(v, lines)))
                .collect(),
        ),
    };
    Node {
        pos,
        def,
        len_chars,
        kind,
    }
}

/// What this layer may still materialise in the file being read.
struct LoadBudget {
    nodes_left: usize,
    bytes_left: usize,
    depth: usize,
    depth_max: usize,
    exhausted: bool,
}

thread_local! {
    static BUDGET: RefCell<Option<LoadBudget>> = const { RefCell::new(None) };
}

/// Installs the budget for one file and removes it again, even on unwinding.
struct BudgetGuard;

impl BudgetGuard {
    fn install(budget: LoadBudget) -> BudgetGuard {
        BUDGET.with(|b| *b.borrow_mut() = Some(budget));
        BudgetGuard
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        BUDGET.with(|b| *b.borrow_mut() = None);
    }
}

/// Charges one node of `bytes` scalar bytes; an error once the budget is spent.
fn charge<E: de::Error>(bytes: usize) -> Result<(), E> {
    BUDGET.with(|b| {
        let mut b = b.borrow_mut();
        let Some(b) = b.as_mut() else {
            return Ok(());
        };
        if b.nodes_left == 0 {
            b.exhausted = true;
            return Err(E::custom(
                "more YAML nodes than nodes_per_file_max allows, counting alias expansion",
            ));
        }
        if b.bytes_left < bytes {
            b.exhausted = true;
            return Err(E::custom(
                "more scalar bytes than expanded_bytes_per_file_max allows, counting alias expansion",
            ));
        }
        b.nodes_left -= 1;
        b.bytes_left -= bytes;
        Ok(())
    })
}

/// Enters a collection; an error when it nests too deep.
fn enter<E: de::Error>() -> Result<(), E> {
    BUDGET.with(|b| {
        let mut b = b.borrow_mut();
        let Some(b) = b.as_mut() else {
            return Ok(());
        };
        if b.depth >= b.depth_max {
            b.exhausted = true;
            return Err(E::custom(format!(
                "nested more than {} levels deep (limit depth_max)",
                b.depth_max
            )));
        }
        b.depth += 1;
        Ok(())
    })
}

fn leave() {
    BUDGET.with(|b| {
        if let Some(b) = b.borrow_mut().as_mut() {
            b.depth = b.depth.saturating_sub(1);
        }
    });
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        charge(0)?;
        Ok(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        charge(0)?;
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        charge(0)?;
        Ok(Raw::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        charge(0)?;
        Ok(Raw::Int(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        charge(0)?;
        Ok(Raw::Int(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Raw, E> {
        charge(0)?;
        Ok(Raw::Int(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        charge(0)?;
        Ok(i128::try_from(v).map_or(Raw::Float(v as f64), Raw::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        charge(0)?;
        Ok(Raw::Float(v))
    }

    fn visit_char<E: de::Error>(self, v: char) -> Result<Raw, E> {
        charge(v.len_utf8())?;
        Ok(Raw::Str(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        charge(v.len())?;
        Ok(Raw::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        charge(v.len())?;
        Ok(Raw::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        charge(v.len())?;
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
        charge(0)?;
        enter()?;
        let mut items = Vec::new();
        let result = loop {
            match a.next_element::<Spanned<Raw>>() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break Ok(Raw::Seq(items)),
                Err(e) => break Err(e),
            }
        };
        leave();
        result
    }

    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
        charge(0)?;
        enter()?;
        let mut entries = Vec::new();
        let result = loop {
            match a.next_key::<Spanned<Raw>>() {
                Ok(Some(key)) => match a.next_value::<Spanned<Raw>>() {
                    Ok(value) => entries.push((key, value)),
                    Err(e) => break Err(e),
                },
                Ok(None) => break Ok(Raw::Map(entries)),
                Err(e) => break Err(e),
            }
        };
        leave();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Node {
        let (mut docs, errors) = load(src, &Limits::default());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn scalars_keep_their_text_and_positions() {
        let n = one("n: 010\ny: \"q\\tx\"\nz: 'a'\nw: |\n  l1\n  l2\n");
        let Kind::Map(entries) = &n.kind else {
            panic!("not a map")
        };
        let texts: Vec<(String, String, Pos)> = entries
            .iter()
            .map(|(k, v)| {
                (
                    k.scalar().unwrap().text.clone(),
                    v.scalar().unwrap().text.clone(),
                    v.pos,
                )
            })
            .collect();
        assert_eq!(
            texts,
            vec![
                ("n".into(), "010".into(), Pos { line: 1, col: 4 }),
                ("y".into(), "q\tx".into(), Pos { line: 2, col: 4 }),
                ("z".into(), "a".into(), Pos { line: 3, col: 4 }),
                ("w".into(), "l1\nl2\n".into(), Pos { line: 5, col: 3 }),
            ]
        );
        assert_eq!(entries[1].1.len_chars, 6);
    }

    #[test]
    fn documents_before_a_syntax_error_are_kept() {
        let (docs, errors) = load("a: 1\n---\nb: [\n", &Limits::default());
        assert_eq!(docs.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].pos, Pos { line: 3, col: 4 });
    }

    #[test]
    fn aliases_point_at_their_use() {
        let n = one("a: &x {k: v}\nb: *x\n");
        let Kind::Map(entries) = &n.kind else {
            panic!("not a map")
        };
        assert_eq!(entries[1].1.pos, Pos { line: 2, col: 4 });
        assert_eq!(entries[1].1.def, Pos { line: 1, col: 7 });
    }

    #[test]
    fn budgets_stop_deep_and_wide_input() {
        let limits = Limits {
            depth_max: 5,
            ..Limits::default()
        };
        let (_, errors) = load(&format!("{}1{}", "[".repeat(9), "]".repeat(9)), &limits);
        assert!(
            errors[0].message.contains("nested more than 5"),
            "{errors:?}"
        );
        let limits = Limits {
            nodes_per_file_max: 10,
            ..Limits::default()
        };
        let (_, errors) = load("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]", &limits);
        assert!(errors[0].message.contains("nodes"), "{errors:?}");
    }
}

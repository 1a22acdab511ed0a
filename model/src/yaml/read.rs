//! Reading typed values out of lenient nodes, reporting every mismatch with its position.

use super::Limits;
use super::diag::{Diags, LineIndex, Pos, Severity, advance};
use super::node::{Kind, Node, Typed};
use super::spec::{Obj, Ty};
use crate::expr::{self, Expr, ExprError, Template};
use crate::ids::IdError;
use crate::time::DurationMs;

/// The file being validated and where its diagnostics go.
pub(crate) struct Cx<'a> {
    pub file: &'a str,
    pub lines: LineIndex<'a>,
    pub limits: &'a Limits,
    pub diags: &'a mut Diags,
}

/// The known fields of a mapping, after unknown and duplicate keys were reported.
pub(crate) struct Fields<'n> {
    pub pos: Pos,
    entries: Vec<(&'static str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, v)| *v)
    }

    pub fn key_pos(&self, name: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, k, _)| k.pos)
    }
}

/// One entry of a mapping whose keys are names chosen by the user.
pub(crate) struct Entry<'n> {
    pub key: String,
    pub key_node: &'n Node,
    pub value: &'n Node,
}

impl<'a> Cx<'a> {
    pub fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags
            .push(self.file, pos, Severity::Error, message.into());
    }

    pub fn warn(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags
            .push(self.file, pos, Severity::Warning, message.into());
    }

    /// The entries of a mapping in source order; a repeated key is reported and skipped.
    pub fn entries<'n>(&mut self, node: &'n Node, label: &str) -> Option<Vec<Entry<'n>>> {
        let Kind::Map(pairs) = &node.kind else {
            self.err(
                node.pos,
                format!("{label} must be a mapping, not {}", node.describe()),
            );
            return None;
        };
        let mut out: Vec<Entry<'n>> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let Some(key) = k.scalar().map(|s| s.text.clone()) else {
                self.err(
                    k.pos,
                    format!(
                        "a key in {label} must be a plain word, not {}",
                        k.describe()
                    ),
                );
                continue;
            };
            if let Some(first) = out.iter().find(|e| e.key == key) {
                let first = first.key_node.pos;
                self.err(
                    k.pos,
                    format!("`{key}` appears twice in {label}; the first is at {first}"),
                );
                continue;
            }
            out.push(Entry {
                key,
                key_node: k,
                value: v,
            });
        }
        Some(out)
    }

    /// The fields of a mapping described by `obj`: unknown fields (with a suggestion),
    /// repeated and missing required fields are reported.
    pub fn fields<'n>(&mut self, node: &'n Node, obj: &'static Obj) -> Option<Fields<'n>> {
        self.fields_in(node, obj, &article(obj.what))
    }

    /// [`Cx::fields`] with messages naming the mapping `label`, e.g. "`retry`".
    pub fn fields_in<'n>(
        &mut self,
        node: &'n Node,
        obj: &'static Obj,
        label: &str,
    ) -> Option<Fields<'n>> {
        let entries = self.entries(node, label)?;
        let mut fields = Fields {
            pos: node.pos,
            entries: Vec::with_capacity(entries.len()),
        };
        for e in entries {
            match obj.field(&e.key) {
                Some(f) => fields.entries.push((f.name, e.key_node, e.value)),
                None => {
                    let hint = suggestion(&e.key, obj.names());
                    self.err(
                        e.key_node.pos,
                        format!("unknown field `{}` in {label}{hint}", e.key),
                    );
                }
            }
        }
        for f in obj.fields.iter().filter(|f| f.required) {
            if fields.get(f.name).is_none() {
                self.err(node.pos, format!("{label} needs the field `{}`", f.name));
            }
        }
        Some(fields)
    }

    pub(crate) fn type_error(&mut self, node: &Node, label: &str, ty: Ty) {
        self.err(
            node.pos,
            format!(
                "{label} must be {}, not {}",
                expectation(ty),
                node.describe()
            ),
        );
    }

    /// Any scalar as text.
    pub fn text(&mut self, node: &Node, label: &str) -> Option<String> {
        match node.scalar() {
            Some(s) => Some(s.text.clone()),
            None => {
                self.type_error(node, label, Ty::Str);
                None
            }
        }
    }

    /// A name checked by `make` (one of the id types) and by `name_bytes_max`.
    pub fn name<T>(
        &mut self,
        node: &Node,
        label: &str,
        make: impl FnOnce(String) -> Result<T, IdError>,
    ) -> Option<T> {
        let s = match node.scalar() {
            Some(s) => s.text.clone(),
            None => {
                self.type_error(node, label, Ty::Name);
                return None;
            }
        };
        let max = self.limits.name_bytes_max;
        if s.len() > max {
            self.err(
                node.pos,
                format!(
                    "{label} is {} bytes long; at most {max} bytes are allowed (limit name_bytes_max)",
                    s.len()
                ),
            );
            return None;
        }
        match make(s.clone()) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(node.pos, format!("{label} {:?} {e}", s));
                None
            }
        }
    }

    /// A variable or environment variable name.
    pub fn var_name(&mut self, text: &str, pos: Pos, label: &str) -> bool {
        let ok = text.len() <= self.limits.name_bytes_max && crate::value::is_var_name(text);
        if !ok {
            self.err(
                pos,
                format!(
                    "{label} {text:?} is not a valid name: use letters, digits and '_', not starting with a digit, at most {} bytes",
                    self.limits.name_bytes_max
                ),
            );
        }
        ok
    }

    pub fn bool(&mut self, node: &Node, label: &str) -> Option<bool> {
        match node.scalar() {
            Some(s) if s.text == "true" => Some(true),
            Some(s) if s.text == "false" => Some(false),
            _ => {
                self.type_error(node, label, Ty::Bool);
                None
            }
        }
    }

    pub fn int(&mut self, node: &Node, label: &str, min: i64, max: i64) -> Option<i64> {
        let value = match node.scalar().map(|s| s.typed) {
            Some(Typed::Int(i)) => i,
            _ => {
                self.type_error(node, label, Ty::Int { min, max });
                return None;
            }
        };
        match i64::try_from(value) {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.err(
                    node.pos,
                    format!("{label} must be between {min} and {max}, not {value}"),
                );
                None
            }
        }
    }

    pub fn duration(&mut self, node: &Node, label: &str) -> Option<DurationMs> {
        let text = match node.scalar() {
            Some(s) if matches!(s.typed, Typed::Str | Typed::Int(_)) => s.text.clone(),
            _ => {
                self.type_error(node, label, Ty::Duration);
                return None;
            }
        };
        match DurationMs::parse(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(node.pos, format!("{label}: bad duration {text:?}: {e}"));
                None
            }
        }
    }

    /// A list; `what` says what it should hold, e.g. "a list of steps".
    pub fn list<'n>(&mut self, node: &'n Node, label: &str, what: &str) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Seq(items) => Some(items),
            _ => {
                self.err(
                    node.pos,
                    format!("{label} must be {what}, not {}", node.describe()),
                );
                None
            }
        }
    }

    pub fn template(&mut self, node: &Node, label: &str) -> Option<Template> {
        let text = match node.scalar() {
            Some(s) => s.text.clone(),
            None => {
                self.type_error(node, label, Ty::Template);
                return None;
            }
        };
        match expr::parse_template(&text) {
            Ok(t) => Some(t),
            Err(e) => {
                self.expr_error(node, label, &text, &e);
                None
            }
        }
    }

    pub fn expr(&mut self, node: &Node, label: &str) -> Option<Expr> {
        let text = match node.scalar() {
            Some(s) => s.text.clone(),
            None => {
                self.type_error(node, label, Ty::Expr);
                return None;
            }
        };
        match expr::parse(&text) {
            Ok(e) => Some(e),
            Err(e) => {
                self.expr_error(node, label, &text, &e);
                None
            }
        }
    }

    fn expr_error(&mut self, node: &Node, label: &str, text: &str, e: &ExprError) {
        let pos = self.pos_in_scalar(node, text, e.offset);
        self.err(pos, format!("{label}: {}", e.message));
    }

    /// The source position of byte `offset` of a scalar's value, when the value can be
    /// matched against the source text (plain, quoted without escapes, block); otherwise the
    /// scalar's position.
    pub(crate) fn pos_in_scalar(&self, node: &Node, value: &str, offset: usize) -> Pos {
        let fallback = node.pos;
        let Some(raw) = self.lines.slice(node.def, node.len_chars) else {
            return fallback;
        };
        let (raw, mut pos) = match raw.chars().next() {
            Some(q @ ('"' | '\'')) => (
                &raw[q.len_utf8()..],
                Pos {
                    line: node.def.line,
                    col: node.def.col + 1,
                },
            ),
            _ => (raw, node.def),
        };
        let mut raw_chars = raw.chars().peekable();
        for (i, c) in value.char_indices() {
            if i >= offset {
                break;
            }
            loop {
                match raw_chars.peek() {
                    Some(&r) if r == c => {
                        raw_chars.next();
                        pos = advance(pos, r.encode_utf8(&mut [0; 4]));
                        break;
                    }
                    Some(&r) if r.is_whitespace() => {
                        raw_chars.next();
                        pos = advance(pos, r.encode_utf8(&mut [0; 4]));
                    }
                    _ => return fallback,
                }
            }
        }
        // Skip indentation in front of the character the offset points at.
        let at = value.get(offset..).and_then(|rest| rest.chars().next());
        while let Some(&r) = raw_chars.peek() {
            if Some(r) == at || !r.is_whitespace() {
                break;
            }
            raw_chars.next();
            pos = advance(pos, r.encode_utf8(&mut [0; 4]));
        }
        pos
    }
}

/// "a job", "an if step".
pub(crate) fn article(what: &str) -> String {
    let an = what
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {what}", if an { "an" } else { "a" })
}

/// What a type looks like, for "must be ..." messages.
pub(crate) fn expectation(ty: Ty) -> &'static str {
    match ty {
        Ty::Name => "a name",
        Ty::VarName => "a variable name",
        Ty::Str | Ty::Url => "a string",
        Ty::Template => "a text (a template)",
        Ty::Expr => "an expression",
        Ty::Duration => "a duration like 90s, 10m or 1h30m",
        Ty::Bool => "true or false",
        Ty::Int { .. } => "a whole number",
        Ty::IntOrExpr { .. } => "a whole number or an expression",
        Ty::Enum(_) => "one of the listed words",
        Ty::List(_) => "a list",
        Ty::Vars | Ty::Env | Ty::Branches | Ty::Jobs | Ty::Params | Ty::Obj(_) => "a mapping",
        Ty::Block => "a list of steps",
        Ty::NullOr(_) => "nothing or a mapping",
        Ty::ExprOr(_) => "an expression or a mapping",
        Ty::OneOrList(_) => "a value or a list",
        Ty::Date => "a date like 2026-12-24",
        Ty::TimeOfDay => "a time of day like 02:30 or 02:30:15",
        Ty::TimeZone => "a time zone name like Europe/Berlin",
        Ty::Cron => "a cron expression like \"30 2 * * MON-FRI\"",
        Ty::Weekdays => "a day of the week like MON, or a range like MON-FRI",
        Ty::MonthDay => "a day of the month: 1 to 31, or -1 (the last day) to -31",
        Ty::NoticeExpr => "a list of board names or a notice expression like \"A && (B || C)\"",
    }
}

/// "; did you mean `x`?" for the closest candidate, or the list of candidates.
pub(crate) fn suggestion<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> String {
    let candidates: Vec<&str> = candidates.collect();
    match closest(word, candidates.iter().copied()) {
        Some(c) => format!("; did you mean `{c}`?"),
        None if candidates.is_empty() => String::new(),
        None => format!("; expected one of: {}", candidates.join(", ")),
    }
}

/// The candidate nearest to `word`, if it is near enough to be a likely typo.
pub(crate) fn closest<'c>(
    word: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    let w = word.to_lowercase();
    let near = (w.chars().count().div_ceil(3)).max(1);
    let len = w.chars().count();
    candidates
        .map(|c| (edit_distance(&w, &c.to_lowercase()), c))
        // Replacing every character is no typo: `b` is not a misspelt `a`.
        .filter(|(d, c)| *d <= near && *d < len.min(c.chars().count()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment);
/// the words compared here are short names, and at most 64 characters of each are compared.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().take(64).collect();
    let b: Vec<char> = b.chars().take(64).collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos() {
        let names = ["timeout", "graceTimeout", "agent"];
        assert_eq!(closest("timout", names.iter().copied()), Some("timeout"));
        assert_eq!(closest("Agent", names.iter().copied()), Some("agent"));
        assert_eq!(closest("zzz", names.iter().copied()), None);
        assert_eq!(closest("b", ["a", "bc"].into_iter()), None);
        assert_eq!(
            suggestion("zzz", ["a", "b"].into_iter()),
            "; expected one of: a, b"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("stpes", "steps"), 1);
        assert_eq!(
            closest("brake", ["break", "run"].into_iter()),
            Some("break")
        );
    }
}

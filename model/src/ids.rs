//! Names and ids of inventory objects and orders.
//!
//! A name (workflow, job, agent, lock, board, branch, schedule, calendar) is 1 to
//! [`NAME_BYTES_MAX`] bytes of ASCII letters, digits, `-`, `_` and `.`, starting with a letter or
//! digit. An order id may also hold `|` (a fork child is `parent|branch`), `#`, `:`, `@` and `+`
//! (daily-plan ids such as `#2026-11-23#nightly@02:30:00+01:00`, see
//! [`crate::schedule::order_id`]), and is at most [`ORDER_ID_BYTES_MAX`] bytes.
//!
//! Order ids and fork branch names may also hold any character beyond ASCII ([`is_unicode_ok`]:
//! `Bestellung-Köln`, `注文-7`, `café|süd`) except control characters, white space and the
//! marks that reorder text (bidirectional overrides and isolates, U+FEFF); in ASCII they keep
//! the rule above, so path separators (`/`, `\`), white space and every character the id
//! syntax reserves (`|` between a parent and its branch, `#` of planned ids, `@` of added
//! orders, `:` and `/` of positions) keep their meaning. Lengths are in bytes (UTF-8).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest name of an inventory object, in bytes.
pub const NAME_BYTES_MAX: usize = 100;
/// Longest order id, in bytes.
pub const ORDER_ID_BYTES_MAX: usize = 255;

/// Why a string is not a valid name or id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} bytes long; at most {max} bytes are allowed")]
    TooLong { len: usize, max: usize },
    #[error("must start with a letter or a digit")]
    BadStart,
    #[error("contains {0:?}; only letters, digits, '-', '_' and '.' are allowed")]
    BadChar(char),
}

/// [`is_unicode_ok`] as a regular expression character class (ECMA-262 and most other
/// dialects), for schemas.
pub const UNICODE_OK_CLASS: &str =
    r"[^\x00-\xA0\u1680\u2000-\u200A\u2028-\u202F\u205F\u2066-\u2069\u3000\uFEFF]";

/// Whether `c`, a character beyond ASCII, may be part of an order id or a branch name: not a
/// control character, not white space, not a mark that reorders how text is shown.
pub fn is_unicode_ok(c: char) -> bool {
    !c.is_ascii()
        && !c.is_control()
        && !c.is_whitespace()
        && !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

fn check(s: &str, max: usize, extra: &[char], unicode: bool) -> Result<(), IdError> {
    let first = s.chars().next().ok_or(IdError::Empty)?;
    if s.len() > max {
        return Err(IdError::TooLong { len: s.len(), max });
    }
    let beyond_ascii = |c: char| unicode && is_unicode_ok(c);
    if !(first.is_ascii_alphanumeric() || extra.contains(&first) || beyond_ascii(first)) {
        return Err(IdError::BadStart);
    }
    match s.chars().find(|c| {
        !(c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.')
            || extra.contains(c)
            || beyond_ascii(*c))
    }) {
        Some(c) => Err(IdError::BadChar(c)),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $max:expr, $extra:expr) => {
        name_type!($(#[$doc])* $name, $max, $extra, false);
    };
    ($(#[$doc:meta])* $name:ident, $max:expr, $extra:expr, $unicode:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks `s` and makes the name.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check(&s, $max, $extra, $unicode)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// The name of a workflow.
    WorkflowName, NAME_BYTES_MAX, &[]
);
name_type!(
    /// The name of a job within a workflow.
    JobName, NAME_BYTES_MAX, &[]
);
name_type!(
    /// The id of an agent (an inventory object).
    AgentId, NAME_BYTES_MAX, &[]
);
name_type!(
    /// The name of a lock.
    LockName, NAME_BYTES_MAX, &[]
);
name_type!(
    /// The name of a notice board.
    BoardName, NAME_BYTES_MAX, &[]
);
name_type!(
    /// The name of a fork branch (beyond ASCII, see [`is_unicode_ok`]).
    BranchId, NAME_BYTES_MAX, &[], true
);
name_type!(
    /// The name of a schedule.
    ScheduleName, NAME_BYTES_MAX, &[]
);
name_type!(
    /// The name of a calendar.
    CalendarName, NAME_BYTES_MAX, &[]
);
name_type!(
    /// An order id, chosen by the user or the daily plan; fork children are `parent|branch`
    /// (beyond ASCII, see [`is_unicode_ok`]).
    OrderId, ORDER_ID_BYTES_MAX, &['|', '#', ':', '@', '+'], true
);

impl OrderId {
    /// The id of the child order of a fork branch: `parent|branch`.
    pub fn child(&self, branch: &str) -> Result<OrderId, IdError> {
        OrderId::new(format!("{}|{}", self.0, branch))
    }
}

/// A workflow version: assigned by the controller when a changed workflow is deployed,
/// strictly increasing per workflow. Running orders keep the version they started with.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct VersionId(pub u64);

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(WorkflowName::new("nightly-etl").is_ok());
        assert_eq!(WorkflowName::new(""), Err(IdError::Empty));
        assert_eq!(WorkflowName::new("-x"), Err(IdError::BadStart));
        assert_eq!(WorkflowName::new("a b"), Err(IdError::BadChar(' ')));
        assert!(matches!(
            WorkflowName::new("a".repeat(101)),
            Err(IdError::TooLong { len: 101, .. })
        ));
        assert!(OrderId::new("#2026-11-23#nightly@02:00").is_ok());
        assert!(OrderId::new("#2026-11-23#nightly@02:30:00+01:00").is_ok());
        assert!(OrderId::new("#2026-03-08#x@03:00:00-07:00").is_ok());
        assert_eq!(
            OrderId::new("o1").unwrap().child("b").unwrap().as_str(),
            "o1|b"
        );
    }

    #[test]
    fn order_ids_and_branches_take_unicode_but_no_separators_or_controls() {
        for ok in [
            "Bestellung-Köln",
            "注文-7",
            "ñ",
            "café|süd",
            "😀x",
            "Ωmega.1",
        ] {
            assert!(OrderId::new(ok).is_ok(), "{ok}");
        }
        assert!(BranchId::new("süd").is_ok());
        assert!(BranchId::new("分岐").is_ok());
        for (bad, c) in [
            ("a/b", '/'),
            ("a\\b", '\\'),
            ("a b", ' '),
            ("a\u{a0}b", '\u{a0}'),
            ("a\u{85}b", '\u{85}'),
            ("a\u{2028}b", '\u{2028}'),
            ("a\u{202e}b", '\u{202e}'),
            ("a\u{feff}b", '\u{feff}'),
            ("a\tb", '\t'),
            ("a\u{7f}b", '\u{7f}'),
        ] {
            assert_eq!(OrderId::new(bad), Err(IdError::BadChar(c)), "{bad:?}");
        }
        assert_eq!(OrderId::new("/x"), Err(IdError::BadStart));
        assert_eq!(OrderId::new("\u{3000}x"), Err(IdError::BadStart));
        assert_eq!(BranchId::new("a|b"), Err(IdError::BadChar('|')));
        // Other names stay ASCII.
        assert_eq!(WorkflowName::new("wörk"), Err(IdError::BadChar('ö')));
        // Bytes, not characters: 85 × 3 bytes fit, 86 do not.
        assert!(OrderId::new("注".repeat(85)).is_ok());
        assert!(matches!(
            OrderId::new("注".repeat(86)),
            Err(IdError::TooLong { len: 258, .. })
        ));
    }
}

/// Serde for a `u128` run id: a 32-digit hex string in human-readable formats (JSON, where
/// numbers that large do not fit), the plain integer in binary ones (postcard), so binary
/// encodings are unchanged. Use with `#[serde(with = "ordo_model::ids::run_id")]`.
pub mod run_id {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(id: &u128, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&format!("{id:032x}"))
        } else {
            s.serialize_u128(*id)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            u128::from_str_radix(&text, 16)
                .map_err(|e| D::Error::custom(format!("run id {text:?} is not hex: {e}")))
        } else {
            u128::deserialize(d)
        }
    }

    /// The same for `Option<u128>`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Serialize, Deserialize)]
        struct Wrap(#[serde(with = "super")] u128);

        pub fn serialize<S: Serializer>(id: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
            id.map(Wrap).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

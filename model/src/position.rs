//! Positions of an order in a workflow.
//!
//! A position is a path through nested blocks, written with `/`: `3/fork:b/1/try/0` means
//! instruction 3 of the top-level block (a fork), its branch `b`, instruction 1 of that branch
//! (a try), its try block, instruction 0. Block keys: `then:<i>` (the i-th `if` branch),
//! `else`, `fork:<branch>`, `forklist`, `try`, `catch`, `do` (retry, lock, cycle and
//! consume-notices bodies). A position one past the end of a block means "end of this block".

use serde::{Deserialize, Serialize};
use std::fmt;

/// One step down into a nested block.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BlockKey {
    Then(u32),
    Else,
    Fork(String),
    ForkList,
    Try,
    Catch,
    Do,
}

/// A path to an instruction: `(index, key)` pairs leading into nested blocks, then an index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Position {
    /// The enclosing instructions and the block taken in each, outermost first.
    pub outer: Vec<(u32, BlockKey)>,
    /// The instruction's index in its block.
    pub index: u32,
}

impl Position {
    /// The first instruction of the workflow.
    pub fn start() -> Position {
        Position::default()
    }

    /// The first instruction of the block `key` of the instruction at this position.
    pub fn enter(&self, key: BlockKey) -> Position {
        let mut outer = self.outer.clone();
        outer.push((self.index, key));
        Position { outer, index: 0 }
    }

    /// The next instruction in the same block.
    pub fn next(&self) -> Position {
        Position {
            outer: self.outer.clone(),
            index: self.index + 1,
        }
    }

    /// The position of the instruction whose block holds this position, if any.
    pub fn parent(&self) -> Option<Position> {
        let mut outer = self.outer.clone();
        let (index, _) = outer.pop()?;
        Some(Position { outer, index })
    }

    /// The block key that leads to this position's block, if nested.
    pub fn block_key(&self) -> Option<&BlockKey> {
        self.outer.last().map(|(_, k)| k)
    }
}

impl fmt::Display for BlockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockKey::Then(i) => write!(f, "then:{i}"),
            BlockKey::Else => f.write_str("else"),
            BlockKey::Fork(b) => write!(f, "fork:{b}"),
            BlockKey::ForkList => f.write_str("forklist"),
            BlockKey::Try => f.write_str("try"),
            BlockKey::Catch => f.write_str("catch"),
            BlockKey::Do => f.write_str("do"),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in &self.outer {
            write!(f, "{i}/{k}/")?;
        }
        write!(f, "{}", self.index)
    }
}

/// Why a position does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad position {text:?}: {why}")]
pub struct PositionError {
    pub text: String,
    pub why: &'static str,
}

impl std::str::FromStr for Position {
    type Err = PositionError;

    fn from_str(s: &str) -> Result<Position, PositionError> {
        let err = |why| PositionError {
            text: s.to_owned(),
            why,
        };
        if s.len() > 1000 {
            return Err(err("longer than 1000 bytes"));
        }
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len().is_multiple_of(2) {
            return Err(err("expected index/key/.../index"));
        }
        let index = |p: &str| {
            p.parse::<u32>()
                .map_err(|_| err("an index must be a number"))
        };
        let mut outer = Vec::new();
        for pair in parts[..parts.len() - 1].chunks(2) {
            let key = match pair[1] {
                "else" => BlockKey::Else,
                "forklist" => BlockKey::ForkList,
                "try" => BlockKey::Try,
                "catch" => BlockKey::Catch,
                "do" => BlockKey::Do,
                k => {
                    if let Some(i) = k.strip_prefix("then:") {
                        BlockKey::Then(i.parse().map_err(|_| err("then:<number> expected"))?)
                    } else if let Some(b) = k.strip_prefix("fork:") {
                        if b.is_empty() {
                            return Err(err("fork:<branch> needs a branch name"));
                        }
                        BlockKey::Fork(b.to_owned())
                    } else {
                        return Err(err("unknown block key"));
                    }
                }
            };
            outer.push((index(pair[0])?, key));
        }
        Ok(Position {
            outer,
            index: index(parts[parts.len() - 1])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let p: Position = "3/fork:b/1/try/0".parse().unwrap();
        assert_eq!(p.to_string(), "3/fork:b/1/try/0");
        assert_eq!(p.outer.len(), 2);
        assert_eq!(p.parent().unwrap().to_string(), "3/fork:b/1");
        assert_eq!(
            Position::start().enter(BlockKey::Then(0)).to_string(),
            "0/then:0/0"
        );
        assert!("3/x/0".parse::<Position>().is_err());
        assert!("3/try".parse::<Position>().is_err());
    }
}

//! Environment variable names of jobs: which names order variables may never set.
//!
//! # The rule (design §7)
//!
//! A job's environment is what its workflow declares (the job's `env:`) plus Ordo's own
//! `ORDO_*` variables; the agent's own environment is inherited beneath them. Order variables
//! reach a job only through `env:` templates that name them, and as `ORDO_ARG_<name>` (see
//! [`ARG_ENV_PREFIX`]); an order variable is never copied into the environment under its own
//! name.
//!
//! # Protected names
//!
//! Some names change how a process is loaded or how a shell or interpreter starts; whoever
//! sets one of them runs code of their choice in the job. [`protected`] says which, and why:
//!
//! | names | what they change |
//! |---|---|
//! | `LD_*` | the dynamic loader (`LD_PRELOAD`, `LD_LIBRARY_PATH`, `LD_AUDIT`, ...) |
//! | `DYLD_*` | the macOS dynamic loader |
//! | `GLIBC_TUNABLES`, `GCONV_PATH`, `LOCPATH`, `NLSPATH`, `HOSTALIASES` | what the C library loads and reads at start |
//! | `PATH` | which program a command name runs |
//! | `IFS`, `ENV`, `BASH_ENV`, `SHELLOPTS`, `BASHOPTS`, `PS4` | how `/bin/sh` and bash start, split words and trace |
//! | `PYTHON*`, `PERL*`, `RUBY*`, `NODE_OPTIONS`, `NODE_PATH`, `JAVA_TOOL_OPTIONS`, `_JAVA_OPTIONS`, `JDK_JAVA_OPTIONS`, `CLASSPATH` | what an interpreter loads or runs at start |
//!
//! Names are compared exactly (the environment is case-sensitive). A protected name:
//! - may be set in a job's `env:` only to a constant written by the workflow's author (no
//!   `$variable` or `${expression}` in it): a template would let order variables choose it.
//!   `ordo check` and deploy refuse anything else with `file:line:col`, and
//!   [`crate::order::start_job`] refuses it for a workflow that bypassed the check;
//! - may not be the name of an order variable given from outside (order arguments, `resume`
//!   and `answer` variables, `addOrder` arguments): [`crate::order::input`] refuses it, so an
//!   operator who expects the argument to reach the job as before gets a clear answer.
//!
//! The list guards the names that matter most; the fence itself is the rule above: nothing
//! outside the workflow's declarations sets a job's environment.

use crate::value::is_var_name;

/// Every variable the job sees whose name is letters, digits and `_` is also in its
/// environment as `ORDO_ARG_<name>` (its value as text), below the job's `env:`.
pub const ARG_ENV_PREFIX: &str = "ORDO_ARG_";

/// Prefixes of protected names, with what they change.
const PROTECTED_PREFIXES: &[(&str, &str)] = &[
    ("LD_", "changes what the dynamic loader loads"),
    ("DYLD_", "changes what the dynamic loader loads"),
    (
        "PYTHON",
        "changes what the Python interpreter loads or runs",
    ),
    ("PERL", "changes what the Perl interpreter loads or runs"),
    ("RUBY", "changes what the Ruby interpreter loads or runs"),
];

/// Protected names, with what they change.
const PROTECTED_NAMES: &[(&str, &str)] = &[
    ("PATH", "chooses which program a command name runs"),
    ("IFS", "changes how the shell splits words"),
    ("ENV", "names a file the shell runs when it starts"),
    ("BASH_ENV", "names a file bash runs when it starts"),
    ("SHELLOPTS", "sets options of bash when it starts"),
    ("BASHOPTS", "sets options of bash when it starts"),
    (
        "PS4",
        "is expanded, commands included, when the shell traces",
    ),
    ("GLIBC_TUNABLES", "changes how the C library starts"),
    ("GCONV_PATH", "changes which modules the C library loads"),
    ("LOCPATH", "changes which locale files the C library loads"),
    (
        "NLSPATH",
        "changes which message catalogs the C library loads",
    ),
    (
        "HOSTALIASES",
        "changes how the C library resolves host names",
    ),
    ("NODE_OPTIONS", "changes what Node.js loads or runs"),
    ("NODE_PATH", "changes what Node.js loads"),
    (
        "JAVA_TOOL_OPTIONS",
        "changes what the Java virtual machine loads or runs",
    ),
    (
        "_JAVA_OPTIONS",
        "changes what the Java virtual machine loads or runs",
    ),
    (
        "JDK_JAVA_OPTIONS",
        "changes what the Java launcher loads or runs",
    ),
    ("CLASSPATH", "changes what the Java virtual machine loads"),
];

/// Whether `name` is a portable environment variable name: ASCII letters, digits and `_`,
/// not starting with a digit (the rule of variable names, [`is_var_name`]).
pub fn is_env_name(name: &str) -> bool {
    is_var_name(name)
}

/// Why `name` is protected (what it changes), or `None` for an ordinary name.
pub fn protected(name: &str) -> Option<&'static str> {
    PROTECTED_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .or_else(|| PROTECTED_PREFIXES.iter().find(|(p, _)| name.starts_with(p)))
        .map(|(_, why)| *why)
}

/// An ECMAScript regular expression matching exactly the protected names (for the JSON
/// Schema of the inventory).
pub fn protected_pattern() -> String {
    let names = PROTECTED_NAMES.iter().map(|(n, _)| (*n).to_owned());
    let prefixes = PROTECTED_PREFIXES.iter().map(|(p, _)| format!("{p}.*"));
    format!(
        "^(?:{})$",
        names.chain(prefixes).collect::<Vec<_>>().join("|")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loader_and_shell_names_are_protected_and_others_not() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "DYLD_INSERT_LIBRARIES",
            "PATH",
            "IFS",
            "BASH_ENV",
            "ENV",
            "PS4",
            "PYTHONPATH",
            "PERL5OPT",
            "RUBYOPT",
            "GLIBC_TUNABLES",
            "NODE_OPTIONS",
        ] {
            assert!(protected(name).is_some(), "{name}");
        }
        for name in [
            "FOO",
            "path",
            "ld_preload",
            "MY_PATH",
            "PATHS",
            "HOME",
            "NODE_ENV",
            "ORDO_ARG_PATH",
            "ORDO_ARG_LD_PRELOAD",
        ] {
            assert_eq!(protected(name), None, "{name}");
        }
    }

    #[test]
    fn the_pattern_matches_the_same_names() {
        let re = regex::Regex::new(&protected_pattern()).unwrap();
        for name in [
            "LD_PRELOAD",
            "PATH",
            "PYTHONSTARTUP",
            "CLASSPATH",
            "_JAVA_OPTIONS",
        ] {
            assert!(re.is_match(name) && protected(name).is_some(), "{name}");
        }
        for name in ["PATHS", "XPATH", "HOME", "ORDO_ARG_PATH"] {
            assert!(!re.is_match(name) && protected(name).is_none(), "{name}");
        }
    }

    #[test]
    fn env_names_are_checked() {
        assert!(is_env_name("day"));
        assert!(is_env_name("_X1"));
        assert!(!is_env_name("1x"));
        assert!(!is_env_name("a-b"));
        assert!(!is_env_name(""));
    }
}

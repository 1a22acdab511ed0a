//! Who may import what (ARCHITECTURE.md, "Layering"), checked on the dependency graph that
//! `cargo metadata` resolves and on the sources:
//!
//! - `ordo-api` (the controller's published API) needs no runtime, web framework, journal or
//!   server crate;
//! - `ordo-cockpit-api` reaches neither `ordo-controller` nor `ordo-agent` through its normal
//!   dependencies and does not declare the controller at all (its tests start the controller's
//!   executable and run an agent in-process), and its sources do not name them;
//! - in `ordo-cli`, the servers are optional (the `servers` feature), and only the modules that
//!   run them (`up`, the hidden server commands, the `local` installation) name them.

use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is in the workspace")
        .to_owned()
}

/// The host's target triple (`rustc -vV`): the graph is resolved for it, so that crates of
/// other platforms need not be downloaded.
fn host() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

fn metadata() -> Json {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host()])
        .current_dir(workspace())
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// Package id → name, and package id → the ids of its normal (not dev, not build)
/// dependencies, as resolved with the default features.
struct Graph {
    names: BTreeMap<String, String>,
    normal: BTreeMap<String, Vec<String>>,
}

impl Graph {
    fn new(m: &Json) -> Graph {
        let names = m["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap_or_default().to_owned(),
                    p["name"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let mut normal = BTreeMap::new();
        for node in m["resolve"]["nodes"].as_array().expect("resolve nodes") {
            let deps = node["deps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|k| k["kind"].is_null())
                })
                .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
                .collect();
            normal.insert(node["id"].as_str().unwrap_or_default().to_owned(), deps);
        }
        Graph { names, normal }
    }

    fn id(&self, name: &str) -> String {
        self.names
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(id, _)| id.clone())
            .unwrap_or_else(|| panic!("no package {name}"))
    }

    /// The names of every package `name` reaches through normal dependencies.
    fn reaches(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![self.id(name)];
        while let Some(id) = todo.pop() {
            for dep in self.normal.get(&id).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen.into_iter()
            .filter_map(|id| self.names.get(&id).cloned())
            .collect()
    }
}

/// The declared dependencies of a workspace package: name → (kind, optional).
fn declared(m: &Json, package: &str) -> Vec<(String, Option<String>, bool)> {
    let p = m["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == package)
        .unwrap_or_else(|| panic!("no package {package}"));
    p["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["name"].as_str().unwrap_or_default().to_owned(),
                d["kind"].as_str().map(str::to_owned),
                d["optional"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// The `.rs` files under `dir` (recursively) whose text names one of `crates`.
fn naming(dir: &Path, crates: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("a source folder") {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                if crates.iter().any(|c| text.contains(c)) {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_published_api_stands_alone() {
    let m = metadata();
    let reached = Graph::new(&m).reaches("ordo-api");
    for banned in [
        "tokio",
        "axum",
        "hyper",
        "ordo-journal",
        "ordo-net",
        "ordo-controller",
        "ordo-agent",
        "ordo-cockpit-api",
    ] {
        assert!(
            !reached.contains(banned),
            "ordo-api depends on {banned}; it must stay the controller's contract only"
        );
    }
}

/// The "Never" column of ARCHITECTURE.md's layering table, on the resolved graph.
#[test]
fn every_crate_keeps_to_its_layer() {
    let m = metadata();
    let g = Graph::new(&m);
    let rules: [(&str, &[&str]); 6] = [
        (
            "ordo-model",
            &[
                "tokio",
                "ordo-api",
                "ordo-journal",
                "ordo-net",
                "ordo-controller",
                "ordo-agent",
                "ordo-cockpit-api",
            ],
        ),
        ("ordo-journal", &["ordo-model", "ordo-api", "ordo-net"]),
        (
            "ordo-net",
            &[
                "ordo-model",
                "ordo-api",
                "ordo-journal",
                "ordo-controller",
                "ordo-agent",
                "ordo-cockpit-api",
            ],
        ),
        // The replicated log may use `ordo-net` (the transport's TLS material): the raft
        // driver and transport are shared by the controller pair and the director pair.
        (
            "ordo-replica",
            &[
                "ordo-model",
                "ordo-api",
                "ordo-controller",
                "ordo-agent",
                "ordo-cockpit-api",
            ],
        ),
        ("ordo-controller", &["ordo-agent", "ordo-cockpit-api"]),
        ("ordo-agent", &["ordo-controller", "ordo-cockpit-api"]),
    ];
    for (krate, never) in rules {
        let reached = g.reaches(krate);
        for banned in never {
            assert!(!reached.contains(*banned), "{krate} reaches {banned}");
        }
    }
}

#[test]
fn the_cockpit_knows_only_the_published_api() {
    let m = metadata();
    let reached = Graph::new(&m).reaches("ordo-cockpit-api");
    assert!(reached.contains("ordo-api"));
    for server in ["ordo-controller", "ordo-agent"] {
        assert!(
            !reached.contains(server),
            "ordo-cockpit-api reaches {server} through its normal dependencies"
        );
    }
    for (name, kind, _) in declared(&m, "ordo-cockpit-api") {
        // Its tests run the controller as its own executable, so not even they link it.
        assert!(
            name != "ordo-controller",
            "ordo-cockpit-api declares ordo-controller ({kind:?})"
        );
        if name == "ordo-agent" {
            assert_eq!(
                kind.as_deref(),
                Some("dev"),
                "ordo-agent may be only a dev-dependency of ordo-cockpit-api"
            );
        }
    }
    let files = naming(
        &workspace().join("cockpit-api/src"),
        &["ordo_controller", "ordo_agent"],
    );
    assert!(
        files.is_empty(),
        "cockpit sources that name the servers: {files:?}"
    );
}

#[test]
fn only_the_server_commands_of_the_cli_import_the_servers() {
    let m = metadata();
    for (name, kind, optional) in declared(&m, "ordo-cli") {
        if ["ordo-controller", "ordo-agent", "ordo-cockpit-api"].contains(&name.as_str())
            && kind.is_none()
        {
            assert!(
                optional,
                "{name} must be an optional dependency of ordo-cli (feature `servers`)"
            );
        }
    }
    let allowed = ["servers.rs", "up.rs", "local.rs"];
    let files = naming(
        &workspace().join("cli/src"),
        &["ordo_controller", "ordo_agent", "ordo_cockpit_api"],
    );
    let strays: Vec<_> = files
        .iter()
        .filter(|f| {
            !f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| allowed.contains(&n))
        })
        .collect();
    assert!(
        strays.is_empty(),
        "client modules of the CLI that name a server crate (only {allowed:?} may): {strays:?}"
    );
}

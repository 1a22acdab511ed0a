//! `ordo certs` (CA, certificates, tokens that a real controller accepts) and where the CLI
//! takes its settings from (flags, then environment, then the profile file).

mod common;

use common::*;
use predicates::prelude::*;
use serde_json::Value as Json;
use std::path::Path;

fn sha256_hex(s: &str) -> String {
    ordo_api::auth::token_hash(s)
}

#[test]
fn process_certs_token_prints_a_token_and_its_config_entry() {
    let dir = tempfile::tempdir().unwrap();
    let out = bare(dir.path())
        .args(["certs", "token", "--role", "operator", "--name", "ci"])
        .assert()
        .success();
    let text = stdout(out.get_output());
    let token = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_owned();
    assert_eq!(token.len(), 64, "{text}");
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
    let snippet = &text[text.find("[[tokens]]").unwrap()..];
    assert_eq!(
        snippet,
        format!(
            "[[tokens]]\nname = \"ci\"\nsha256 = \"{}\"\nrole = \"operator\"\n",
            sha256_hex(&token)
        )
    );
    // Two tokens differ; --json carries the same fields.
    let out = bare(dir.path())
        .args(["certs", "token", "--json"])
        .assert()
        .success();
    let j: Json = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_ne!(j["token"], token.as_str());
    assert_eq!(j["role"], "admin");
    assert_eq!(j["name"], "admin");
    assert_eq!(j["sha256"], sha256_hex(j["token"].as_str().unwrap()));
    bare(dir.path())
        .args(["certs", "token", "--role", "root"])
        .assert()
        .code(2);
}

fn identity(cert: &Path) -> ordo_net::PeerIdentity {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_file(cert).unwrap();
    ordo_net::PeerIdentity::from_der(&der).unwrap()
}

/// A CA and a server certificate made by `ordo certs`, and a token made by `ordo certs
/// token`, serve a real controller that the CLI then reaches.
#[test]
fn process_certs_made_by_the_cli_serve_a_controller() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("pki");
    bare(dir.path())
        .args(["certs", "init", "--dir"])
        .arg(&certs)
        .assert()
        .success()
        .stdout(predicate::str::contains("created the CA of cluster main"));
    let ca_before = std::fs::read(certs.join("ca.pem")).unwrap();
    bare(dir.path())
        .args(["certs", "init", "--cluster-id", "main", "--dir"])
        .arg(&certs)
        .assert()
        .success()
        .stdout(predicate::str::contains("kept the existing CA"));
    assert_eq!(std::fs::read(certs.join("ca.pem")).unwrap(), ca_before);
    bare(dir.path())
        .args([
            "certs",
            "issue",
            "ctl",
            "--ip",
            "127.0.0.1",
            "--dns",
            "localhost",
        ])
        .args([
            "--uri",
            "ordo:controller:main",
            "--server",
            "--client",
            "--dir",
        ])
        .arg(&certs)
        .assert()
        .success()
        .stdout(predicate::str::contains("issued ctl"));
    bare(dir.path())
        .args(["certs", "issue", "a1", "--uri", "ordo:agent:a1", "--dir"])
        .arg(&certs)
        .assert()
        .success();
    assert!(identity(&certs.join("ctl.pem")).is_controller("main"));
    assert!(identity(&certs.join("a1.pem")).is_agent("a1"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(certs.join("ctl.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
    }
    bare(dir.path())
        .args(["certs", "issue", "nameless", "--server", "--dir"])
        .arg(&certs)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("DNS name or IP address"));
    bare(dir.path())
        .args(["certs", "issue", "bad name", "--dir"])
        .arg(&certs)
        .assert()
        .code(2);
    bare(dir.path())
        .args(["certs", "issue", "x", "--dir"])
        .arg(dir.path().join("no-ca-here"))
        .assert()
        .code(1);

    let out = bare(dir.path())
        .args(["certs", "token", "--role", "viewer"])
        .assert()
        .success();
    let text = stdout(out.get_output());
    let token = text.lines().next().unwrap()["token: ".len()..].to_owned();
    let snippet = &text[text.find("[[tokens]]").unwrap()..];
    let c = Controller::start_with(dir, &certs, "ctl", snippet);
    c.ordo_as(&token)
        .args(["cluster", "status"])
        .assert()
        .success();
    c.ordo_as(&token)
        .args(["order", "add", "x"])
        .assert()
        .code(3);
}

/// Writes a profile with these lines.
fn profile(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn process_flags_beat_environment_beat_profile() {
    let c = Controller::start();
    let home = c.dir.path().join("home");
    let path = home.join("profile.toml");
    // The profile alone: API, token and a CA path relative to the profile.
    std::fs::create_dir_all(&home).unwrap();
    std::fs::copy(&c.ca, home.join("ca.pem")).unwrap();
    profile(
        &path,
        &format!(
            "api = \"{}/api/v1\"\ntoken = \"{ADMIN_TOKEN}\"\nca = \"ca.pem\"\n",
            c.url
        ),
    );
    let ordo = || {
        let mut cmd = bare(c.dir.path());
        cmd.env("ORDO_CONFIG", &path);
        cmd
    };
    ordo().args(["cluster", "status"]).assert().success();

    // A bad token in the profile: the environment's wins; a bad one there: the flag's wins.
    profile(
        &path,
        &format!("api = \"{}\"\ntoken = \"wrong\"\nca = \"ca.pem\"\n", c.url),
    );
    ordo().arg("orders").assert().code(3);
    ordo()
        .env("ORDO_TOKEN", VIEWER_TOKEN)
        .arg("orders")
        .assert()
        .success();
    ordo()
        .env("ORDO_TOKEN", "also-wrong")
        .args(["--token", VIEWER_TOKEN, "orders"])
        .assert()
        .success();
    ordo()
        .env("ORDO_TOKEN", VIEWER_TOKEN)
        .args(["--token", "wrong-again", "orders"])
        .assert()
        .code(3);

    // The same for the URL and the CA.
    let nobody = format!("https://127.0.0.1:{}", free_port());
    ordo()
        .env("ORDO_TOKEN", ADMIN_TOKEN)
        .env("ORDO_API", &nobody)
        .arg("orders")
        .assert()
        .code(3);
    ordo()
        .env("ORDO_TOKEN", ADMIN_TOKEN)
        .env("ORDO_API", &nobody)
        .args(["--api", &c.url, "orders"])
        .assert()
        .success();
    ordo()
        .env("ORDO_TOKEN", ADMIN_TOKEN)
        .env("ORDO_CA", "/nonexistent.pem")
        .arg("orders")
        .assert()
        .code(2);
    ordo()
        .env("ORDO_TOKEN", ADMIN_TOKEN)
        .env("ORDO_CA", "/nonexistent.pem")
        .arg("--ca")
        .arg(&c.ca)
        .arg("orders")
        .assert()
        .success();

    // A profile that is not TOML of the known keys is a usage error naming the file.
    profile(&path, "api = \"x\"\nsecret = 1\n");
    ordo()
        .arg("orders")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("profile.toml"));
}

#[test]
fn process_the_profile_is_found_under_the_config_home() {
    let c = Controller::start();
    let config_home = c.dir.path().join("xdg");
    profile(
        &config_home.join("ordo/profile.toml"),
        &format!(
            "api = \"{}\"\ntoken = \"{ADMIN_TOKEN}\"\nca = \"{}\"\n",
            c.url,
            c.ca.display()
        ),
    );
    let mut cmd = bare(c.dir.path());
    cmd.env_remove("ORDO_CONFIG")
        .env("XDG_CONFIG_HOME", &config_home)
        .args(["cluster", "status"])
        .assert()
        .success();
    let mut cmd = bare(c.dir.path());
    cmd.env_remove("ORDO_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", c.dir.path().join("xdg-home"))
        .args(["cluster", "status"])
        .assert()
        .code(2);
    profile(
        &c.dir.path().join("xdg-home/.config/ordo/profile.toml"),
        &format!(
            "api = \"{}\"\ntoken = \"{ADMIN_TOKEN}\"\nca = \"{}\"\n",
            c.url,
            c.ca.display()
        ),
    );
    let mut cmd = bare(c.dir.path());
    cmd.env_remove("ORDO_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .env("HOME", c.dir.path().join("xdg-home"))
        .args(["cluster", "status"])
        .assert()
        .success();
}

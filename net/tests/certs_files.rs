//! `init_ca` and `issue` on disk: permissions, idempotence and refusals.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use ordo_net::PeerIdentity;
use ordo_net::certs::{self, CertError, IssueSpec, TestPki};
use ordo_net::tls::{CaBundle, TlsMaterial};

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_ca_writes_private_key_0600_and_is_idempotent() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pki");
    let first = certs::init_ca(&dir, "main").unwrap();
    assert!(first.created);
    assert_eq!(first.cert_path, dir.join("ca.pem"));
    assert_eq!(first.key_path, dir.join("ca.key"));
    assert_eq!(mode(&first.key_path), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let cert_before = fs::read(&first.cert_path).unwrap();
    let key_before = fs::read(&first.key_path).unwrap();

    let second = certs::init_ca(&dir, "main").unwrap();
    assert!(!second.created);
    assert_eq!(fs::read(&second.cert_path).unwrap(), cert_before);
    assert_eq!(fs::read(&second.key_path).unwrap(), key_before);
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn issue_writes_a_leaf_signed_by_the_ca_with_its_sans() {
    let dir = tempfile::tempdir().unwrap();
    certs::init_ca(dir.path(), "main").unwrap();
    let files = certs::issue(dir.path(), "agent-a1", &IssueSpec::local(["ordo:agent:a1"])).unwrap();
    assert_eq!(files.cert_path, dir.path().join("agent-a1.pem"));
    assert_eq!(files.key_path, dir.path().join("agent-a1.key"));
    assert_eq!(mode(&files.key_path), 0o600);

    let material = TlsMaterial::from_pem_files(&files.cert_path, &files.key_path).unwrap();
    let identity = PeerIdentity::from_der(&material.cert_chain[0]).unwrap();
    assert_eq!(identity.agent_id(), Some("a1"));
    assert_eq!(identity.common_name.as_deref(), Some("agent-a1"));

    // Re-issuing replaces the pair.
    let before = fs::read(&files.cert_path).unwrap();
    certs::issue(dir.path(), "agent-a1", &IssueSpec::local(["ordo:agent:a1"])).unwrap();
    assert_ne!(fs::read(&files.cert_path).unwrap(), before);
    CaBundle::from_pem_file(&dir.path().join("ca.pem")).unwrap();
}

#[test]
fn issue_refuses_bad_names_and_missing_or_broken_cas() {
    let dir = tempfile::tempdir().unwrap();
    let spec = IssueSpec::local(["ordo:agent:a1"]);
    let err = certs::issue(dir.path(), "a1", &spec).unwrap_err();
    assert!(matches!(err, CertError::Io { .. }), "{err}");
    assert!(err.to_string().contains("ca.pem"), "{err}");

    certs::init_ca(dir.path(), "main").unwrap();
    for bad in ["ca", "../x", "", ".x"] {
        let err = certs::issue(dir.path(), bad, &spec).unwrap_err();
        assert!(
            matches!(err, CertError::InvalidName { .. }),
            "{bad:?}: {err}"
        );
    }

    // A key that does not belong to the certificate.
    let other = TestPki::new("other").unwrap();
    fs::write(dir.path().join("ca.key"), &other.ca_pair().key_pem).unwrap();
    let err = certs::issue(dir.path(), "a1", &spec).unwrap_err();
    assert!(matches!(err, CertError::BadCa { .. }), "{err}");
    assert!(err.to_string().contains("does not belong"), "{err}");
    let err = certs::init_ca(dir.path(), "main").unwrap_err();
    assert!(matches!(err, CertError::BadCa { .. }), "{err}");

    // A half-written CA is reported, not replaced.
    fs::remove_file(dir.path().join("ca.pem")).unwrap();
    let err = certs::init_ca(dir.path(), "main").unwrap_err();
    assert!(matches!(err, CertError::IncompleteCa { .. }), "{err}");

    // Garbage instead of a certificate.
    fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let err = certs::issue(dir.path(), "a1", &spec).unwrap_err();
    assert!(matches!(err, CertError::BadCa { .. }), "{err}");
}

#[test]
fn a_ca_written_from_test_pki_issues_like_init_ca() {
    let pki = TestPki::new("main").unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ca.pem"), &pki.ca_pair().cert_pem).unwrap();
    fs::write(dir.path().join("ca.key"), &pki.ca_pair().key_pem).unwrap();
    let files = certs::issue(dir.path(), "c", &IssueSpec::local(["ordo:cockpit:main"])).unwrap();
    let material = TlsMaterial::from_pem_files(&files.cert_path, &files.key_path).unwrap();
    assert!(
        PeerIdentity::from_der(&material.cert_chain[0])
            .unwrap()
            .is_cockpit("main")
    );
}

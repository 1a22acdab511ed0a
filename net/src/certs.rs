//! A cluster's certificate authority and the certificates it issues (`ordo certs init|issue`).
//!
//! Directory layout (all PEM; keys are PKCS#8 ECDSA P-256, written with mode 0600):
//!
//! ```text
//! <dir>/ca.pem        CA certificate, CN "Ordo CA <cluster-id>", O "Ordo", path length 0
//! <dir>/ca.key        CA private key
//! <dir>/<name>.pem    leaf certificate signed by the CA, CN "<name>"
//! <dir>/<name>.key    leaf private key
//! ```
//!
//! Leaves carry the DNS, IP and URI subject alternative names of their [`IssueSpec`] (URI SANs
//! follow [`crate::identity`]: `ordo:agent:<id>`, `ordo:controller:<cluster-id>`, ...), the
//! `serverAuth` and/or `clientAuth` extended key usages, and an authority key identifier.
//! Files are written to a temporary name, synced and renamed, so a crash leaves either the old
//! file or the new one. [`init_ca`] keeps an existing CA; [`issue`] replaces `<name>.*`.
//!
//! [`TestPki`] does the same in memory, with a second, unrelated ("foreign") CA for tests of
//! refused certificates.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::tls::{CaBundle, TlsError, TlsMaterial};
use crate::x509;

/// File name of the CA certificate.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key.
pub const CA_KEY_FILE: &str = "ca.key";
/// Lifetime of a CA made by [`init_ca`].
pub const CA_VALIDITY_DAYS: u32 = 3650;
/// Longest lifetime [`issue`] accepts for a leaf certificate.
pub const LEAF_VALIDITY_DAYS_MAX: u32 = 3650;
/// Longest cluster id or certificate name.
pub const NAME_CHARS_MAX: usize = 64;
/// Largest CA file [`issue`] reads.
pub const CA_FILE_BYTES_MAX: u64 = 64 * 1024;
/// How far back `notBefore` is set, to tolerate clocks that run a little behind.
const CLOCK_SKEW_SECS: i64 = 3600;

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "incomplete CA in {}: {present} exists but {missing} does not; restore {missing} or remove {present} to make a new CA",
        dir.display()
    )]
    IncompleteCa {
        dir: PathBuf,
        present: &'static str,
        missing: &'static str,
    },
    #[error("{} is not a usable CA: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("cannot issue certificate {name:?}: {reason}")]
    InvalidSpec { name: String, reason: String },
    #[error("generating {what} failed: {source}")]
    Generate { what: String, source: rcgen::Error },
}

type Result<T, E = CertError> = std::result::Result<T, E>;

/// Paths of a CA written by [`init_ca`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// `false` when the CA already existed and was kept.
    pub created: bool,
}

/// Paths of a leaf certificate written by [`issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// What a leaf certificate says and may be used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueSpec {
    /// DNS names a server is reached by (checked by clients).
    pub dns_names: Vec<String>,
    /// IP addresses a server is reached by (checked by clients).
    pub ip_addresses: Vec<IpAddr>,
    /// Identities such as `ordo:agent:a1`, `ordo:controller:main`, `ordo:cockpit:main`.
    pub uri_sans: Vec<String>,
    /// May authenticate a TLS server (`serverAuth`).
    pub server: bool,
    /// May authenticate a TLS client (`clientAuth`).
    pub client: bool,
    /// Lifetime from now, 1..=[`LEAF_VALIDITY_DAYS_MAX`].
    pub validity_days: u32,
}

impl IssueSpec {
    /// A server and client certificate for one machine: `localhost`, `127.0.0.1`, `::1`, the
    /// given URI SANs, valid for 365 days.
    pub fn local<I, S>(uri_sans: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            dns_names: vec!["localhost".to_owned()],
            ip_addresses: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            uri_sans: uri_sans.into_iter().map(Into::into).collect(),
            server: true,
            client: true,
            validity_days: 365,
        }
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

impl PemPair {
    /// Parses the pair into TLS material.
    pub fn to_material(&self) -> Result<TlsMaterial, TlsError> {
        TlsMaterial::from_pem(&self.cert_pem, &self.key_pem)
    }
}

/// Creates `dir` (mode 0700) if needed and writes `ca.pem` and `ca.key` (mode 0600) for
/// `cluster_id`, unless a CA is already there; an existing CA is checked and kept.
pub fn init_ca(dir: &Path, cluster_id: &str) -> Result<CaFiles> {
    check_name("cluster id", cluster_id)?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let cert_exists = exists(&cert_path)?;
    let key_exists = exists(&key_path)?;
    match (cert_exists, key_exists) {
        (true, true) => {
            load_ca(dir)?;
            return Ok(CaFiles {
                cert_path,
                key_path,
                created: false,
            });
        }
        (true, false) => {
            return Err(CertError::IncompleteCa {
                dir: dir.to_owned(),
                present: CA_CERT_FILE,
                missing: CA_KEY_FILE,
            });
        }
        (false, true) => {
            return Err(CertError::IncompleteCa {
                dir: dir.to_owned(),
                present: CA_KEY_FILE,
                missing: CA_CERT_FILE,
            });
        }
        (false, false) => {}
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CertError::Io {
            action: "creating directory",
            path: dir.to_owned(),
            source,
        })?;
    let (pem, _) = new_ca(cluster_id)?;
    write_file_atomic(&key_path, pem.key_pem.as_bytes(), 0o600)?;
    write_file_atomic(&cert_path, pem.cert_pem.as_bytes(), 0o644)?;
    Ok(CaFiles {
        cert_path,
        key_path,
        created: true,
    })
}

/// Issues `<name>.pem` and `<name>.key` (mode 0600) in `dir`, signed by the CA in `dir`.
/// Existing files of that name are replaced.
pub fn issue(dir: &Path, name: &str, spec: &IssueSpec) -> Result<CertFiles> {
    check_name("certificate name", name)?;
    if name == "ca" {
        return Err(CertError::InvalidName {
            what: "certificate name",
            value: name.to_owned(),
            reason: "\"ca\" is the CA's own name",
        });
    }
    let ca = load_ca(dir)?;
    let pem = issue_pem(&ca, name, spec)?;
    let cert_path = dir.join(format!("{name}.pem"));
    let key_path = dir.join(format!("{name}.key"));
    write_file_atomic(&key_path, pem.key_pem.as_bytes(), 0o600)?;
    write_file_atomic(&cert_path, pem.cert_pem.as_bytes(), 0o644)?;
    Ok(CertFiles {
        cert_path,
        key_path,
    })
}

/// An in-memory cluster CA plus an unrelated foreign CA, for tests.
pub struct TestPki {
    cluster_id: String,
    ca: Ca,
    ca_pem: PemPair,
    foreign: Ca,
    foreign_pem: PemPair,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl TestPki {
    /// Makes the cluster CA for `cluster_id` and a foreign CA of the same shape.
    pub fn new(cluster_id: &str) -> Result<Self> {
        check_name("cluster id", cluster_id)?;
        let (ca_pem, ca) = new_ca(cluster_id)?;
        let (foreign_pem, foreign) = new_ca(cluster_id)?;
        Ok(Self {
            cluster_id: cluster_id.to_owned(),
            ca,
            ca_pem,
            foreign,
            foreign_pem,
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The cluster CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem.cert_pem
    }

    /// The cluster CA certificate and key (PEM), e.g. to write a CA directory for [`issue`].
    pub fn ca_pair(&self) -> &PemPair {
        &self.ca_pem
    }

    /// The foreign CA certificate (PEM).
    pub fn foreign_ca_pem(&self) -> &str {
        &self.foreign_pem.cert_pem
    }

    /// The cluster CA as a trust anchor.
    pub fn ca_bundle(&self) -> Result<CaBundle, TlsError> {
        CaBundle::from_pem(&self.ca_pem.cert_pem)
    }

    /// The foreign CA as a trust anchor.
    pub fn foreign_ca_bundle(&self) -> Result<CaBundle, TlsError> {
        CaBundle::from_pem(&self.foreign_pem.cert_pem)
    }

    /// A leaf certificate signed by the cluster CA.
    pub fn issue(&self, name: &str, spec: &IssueSpec) -> Result<PemPair> {
        check_name("certificate name", name)?;
        issue_pem(&self.ca, name, spec)
    }

    /// A leaf certificate signed by the foreign CA.
    pub fn issue_foreign(&self, name: &str, spec: &IssueSpec) -> Result<PemPair> {
        check_name("certificate name", name)?;
        issue_pem(&self.foreign, name, spec)
    }
}

/// A loaded CA: the signer and its encoded subject name (which every leaf's issuer must equal).
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    subject_der: Vec<u8>,
}

fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ]
}

fn new_ca(cluster_id: &str) -> Result<(PemPair, Ca)> {
    let generate = |source| CertError::Generate {
        what: format!("the CA for cluster {cluster_id:?}"),
        source,
    };
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("Ordo CA {cluster_id}"));
    name.push(DnType::OrganizationName, "Ordo");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = ca_key_usages();
    (params.not_before, params.not_after) = validity(CA_VALIDITY_DAYS)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    let fields = x509::parse_certificate(cert.der()).map_err(|e| CertError::Generate {
        what: format!("the CA for cluster {cluster_id:?} (reading it back: {e})"),
        source: rcgen::Error::CouldNotParseCertificate,
    })?;
    let subject_der = fields.subject_raw;
    let pem = PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    Ok((
        pem,
        Ca {
            issuer: Issuer::new(params, key),
            subject_der,
        },
    ))
}

/// Rebuilds the signer of the CA in `dir` from `ca.pem` and `ca.key`.
fn load_ca(dir: &Path) -> Result<Ca> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    let bad = |path: &Path, reason: String| CertError::BadCa {
        path: path.to_owned(),
        reason,
    };
    let cert_bytes = read_limited(&cert_path, CA_FILE_BYTES_MAX)?;
    let key_bytes = read_limited(&key_path, CA_FILE_BYTES_MAX)?;
    let cert = CertificateDer::from_pem_slice(&cert_bytes)
        .map_err(|e| bad(&cert_path, format!("no PEM certificate: {e}")))?;
    let key_text = std::str::from_utf8(&key_bytes)
        .map_err(|_| bad(&key_path, "the key file is not text".to_owned()))?;
    let key = KeyPair::from_pem(key_text)
        .map_err(|e| bad(&key_path, format!("no usable private key: {e}")))?;
    let fields =
        x509::parse_certificate(cert.as_ref()).map_err(|e| bad(&cert_path, e.to_string()))?;
    if fields.spki_raw != key.subject_public_key_info().as_slice() {
        return Err(bad(
            &key_path,
            format!("the key does not belong to {CA_CERT_FILE}"),
        ));
    }
    if !fields.subject_single_valued {
        return Err(bad(
            &cert_path,
            "multi-valued names are not supported".to_owned(),
        ));
    }
    let issuer = Issuer::from_ca_cert_der(&cert, key)
        .map_err(|e| bad(&cert_path, format!("not usable as a CA: {e}")))?;
    Ok(Ca {
        issuer,
        subject_der: fields.subject_raw,
    })
}

fn issue_pem(ca: &Ca, name: &str, spec: &IssueSpec) -> Result<PemPair> {
    let invalid = |reason: String| CertError::InvalidSpec {
        name: name.to_owned(),
        reason,
    };
    if !spec.server && !spec.client {
        return Err(invalid(
            "it must allow server use, client use or both".to_owned(),
        ));
    }
    if spec.server && spec.dns_names.is_empty() && spec.ip_addresses.is_empty() {
        return Err(invalid(
            "a server certificate needs at least one DNS name or IP address".to_owned(),
        ));
    }
    if spec.validity_days == 0 || spec.validity_days > LEAF_VALIDITY_DAYS_MAX {
        return Err(invalid(format!(
            "validity_days is {}, allowed are 1..={LEAF_VALIDITY_DAYS_MAX}",
            spec.validity_days
        )));
    }
    let mut sans = Vec::new();
    for dns in &spec.dns_names {
        if dns.is_empty() || dns.len() > 253 {
            return Err(invalid(format!("DNS name {dns:?} is empty or too long")));
        }
        let value = Ia5String::try_from(dns.as_str())
            .map_err(|e| invalid(format!("DNS name {dns:?}: {e}")))?;
        sans.push(SanType::DnsName(value));
    }
    sans.extend(spec.ip_addresses.iter().copied().map(SanType::IpAddress));
    for uri in &spec.uri_sans {
        if uri.is_empty() || uri.len() > 1024 {
            return Err(invalid(format!("URI {uri:?} is empty or too long")));
        }
        let value =
            Ia5String::try_from(uri.as_str()).map_err(|e| invalid(format!("URI {uri:?}: {e}")))?;
        sans.push(SanType::URI(value));
    }

    let generate = |source| CertError::Generate {
        what: format!("certificate {name:?}"),
        source,
    };
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, name);
    params.distinguished_name = subject;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if spec.server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.client {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = validity(spec.validity_days)?;
    let cert = params.signed_by(&key, &ca.issuer).map_err(generate)?;

    let fields = x509::parse_certificate(cert.der())
        .map_err(|e| invalid(format!("reading the new certificate back: {e}")))?;
    if fields.issuer_raw != ca.subject_der {
        return Err(invalid(
            "the CA's subject name could not be reproduced exactly".to_owned(),
        ));
    }
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn validity(days: u32) -> Result<(time::OffsetDateTime, time::OffsetDateTime)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0);
    let at = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| CertError::InvalidSpec {
            name: String::new(),
            reason: format!("validity end {secs} is out of range"),
        })
    };
    Ok((
        at(now - CLOCK_SKEW_SECS)?,
        at(now + i64::from(days) * 86_400)?,
    ))
}

fn check_name(what: &'static str, value: &str) -> Result<()> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > NAME_CHARS_MAX {
        Some("it is longer than 64 characters")
    } else if value.starts_with('.') || value.starts_with('-') {
        Some("it starts with '.' or '-'")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CertError::InvalidName {
            what,
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(|source| CertError::Io {
        action: "checking",
        path: path.to_owned(),
        source,
    })
}

fn read_limited(path: &Path, bytes_max: u64) -> Result<Vec<u8>> {
    crate::read_file_limited(path, bytes_max).map_err(|source| CertError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })
}

/// Writes `bytes` to `path` through a synced temporary file in the same directory.
fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let io_error = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| CertError::Io {
            action,
            path,
            source,
        }
    };
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CertError::Io {
            action: "writing",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
        })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{file_name}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("removing stale", &tmp)(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_error("creating", &tmp))?;
    file.write_all(bytes).map_err(io_error("writing", &tmp))?;
    file.sync_all().map_err(io_error("syncing", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error("renaming into place", path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing directory", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for bad in ["", ".hidden", "-x", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(check_name("name", bad).is_err(), "{bad:?}");
        }
        for good in ["a1", "agent-a1", "ctl_main.2"] {
            assert!(check_name("name", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn test_pki_leaf_carries_sans_and_chains_to_its_ca() {
        let pki = TestPki::new("main").unwrap();
        let pair = pki
            .issue("agent-a1", &IssueSpec::local(["ordo:agent:a1"]))
            .unwrap();
        let leaf = CertificateDer::from_pem_slice(pair.cert_pem.as_bytes()).unwrap();
        let fields = x509::parse_certificate(leaf.as_ref()).unwrap();
        assert_eq!(fields.common_name.as_deref(), Some("agent-a1"));
        let alt = |name: x509::AltName| fields.alt_names.contains(&name);
        assert!(alt(x509::AltName::Uri("ordo:agent:a1".into())));
        assert!(alt(x509::AltName::Dns("localhost".into())));
        assert!(alt(x509::AltName::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST))));
        let ca = CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap();
        let ca_fields = x509::parse_certificate(ca.as_ref()).unwrap();
        assert_eq!(fields.issuer_raw, ca_fields.subject_raw);
        assert_eq!(ca_fields.common_name.as_deref(), Some("Ordo CA main"));
    }

    #[test]
    fn bad_specs_are_refused() {
        let pki = TestPki::new("main").unwrap();
        let mut spec = IssueSpec::local(["ordo:agent:a1"]);
        spec.validity_days = 0;
        assert!(matches!(
            pki.issue("x", &spec),
            Err(CertError::InvalidSpec { .. })
        ));
        let mut spec = IssueSpec::local(["ordo:agent:a1"]);
        spec.server = false;
        spec.client = false;
        assert!(pki.issue("x", &spec).is_err());
        let mut spec = IssueSpec::local(["ordo:agent:ä"]);
        spec.client = true;
        assert!(pki.issue("x", &spec).is_err());
        let mut spec = IssueSpec::local(Vec::<String>::new());
        spec.dns_names.clear();
        spec.ip_addresses.clear();
        assert!(pki.issue("x", &spec).is_err());
    }
}

//! The parts of an X.509 certificate Ordo looks at, read with `x509-parser`.
//!
//! Ordo reads: the raw issuer and subject names (to check that a certificate was issued by the
//! cluster CA exactly), the raw subjectPublicKeyInfo (to check that a key file belongs to a
//! certificate), the subject's first commonName, and the DNS, URI and IP subject alternative
//! names. Parsing is done by `x509-parser` (DER, RFC 5280); malformed input of any kind is a
//! [`CertParseError`], never a panic, and a certificate followed by trailing bytes is refused.

use std::net::IpAddr;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed certificate: {0}")]
pub struct CertParseError(pub String);

/// A subject alternative name Ordo understands; other kinds are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AltName {
    Dns(String),
    Uri(String),
    Ip(IpAddr),
}

/// The fields of a certificate Ordo reads.
#[derive(Debug, Clone)]
pub struct CertFields {
    /// The whole issuer Name element (DER).
    pub issuer_raw: Vec<u8>,
    /// The whole subject Name element (DER).
    pub subject_raw: Vec<u8>,
    /// The whole subjectPublicKeyInfo element (DER).
    pub spki_raw: Vec<u8>,
    /// The subject's first commonName, when it is a string.
    pub common_name: Option<String>,
    /// Whether every relative distinguished name of the subject holds exactly one attribute.
    pub subject_single_valued: bool,
    pub alt_names: Vec<AltName>,
}

/// Reads the issuer, subject, public key and subject alternative names of a DER certificate.
pub fn parse_certificate(der: &[u8]) -> Result<CertFields, CertParseError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertParseError(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertParseError(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    let tbs = &cert.tbs_certificate;
    let common_name = tbs
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let subject_single_valued = tbs.subject.iter().all(|rdn| rdn.iter().count() == 1);
    let mut alt_names = Vec::new();
    let san = tbs
        .subject_alternative_name()
        .map_err(|e| CertParseError(format!("subjectAltName: {e}")))?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => alt_names.push(AltName::Dns((*dns).to_owned())),
                GeneralName::URI(uri) => alt_names.push(AltName::Uri((*uri).to_owned())),
                GeneralName::IPAddress(bytes) => alt_names.push(AltName::Ip(ip(bytes)?)),
                _ => {}
            }
        }
    }
    Ok(CertFields {
        issuer_raw: tbs.issuer.as_raw().to_vec(),
        subject_raw: tbs.subject.as_raw().to_vec(),
        spki_raw: tbs.subject_pki.raw.to_vec(),
        common_name,
        subject_single_valued,
        alt_names,
    })
}

fn ip(bytes: &[u8]) -> Result<IpAddr, CertParseError> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Ok(IpAddr::from(v4));
    }
    if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        return Ok(IpAddr::from(v6));
    }
    Err(CertParseError(format!(
        "an iPAddress name of {} bytes (4 or 16 expected)",
        bytes.len()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{IssueSpec, TestPki};
    use proptest::prelude::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use std::sync::OnceLock;

    fn sample() -> &'static [u8] {
        static DER: OnceLock<Vec<u8>> = OnceLock::new();
        DER.get_or_init(|| {
            let pki = TestPki::new("main").unwrap();
            let pair = pki
                .issue("agent-a1", &IssueSpec::local(["ordo:agent:a1"]))
                .unwrap();
            CertificateDer::from_pem_slice(pair.cert_pem.as_bytes())
                .unwrap()
                .to_vec()
        })
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(parse_certificate(b"").is_err());
        assert!(parse_certificate(b"not a certificate").is_err());
        assert!(parse_certificate(&[0x30, 0x00]).is_err());
        let mut trailing = sample().to_vec();
        trailing.push(0);
        assert!(parse_certificate(&trailing).is_err());
    }

    #[test]
    fn the_sample_parses_and_every_truncation_is_an_error() {
        let fields = parse_certificate(sample()).unwrap();
        assert!(
            fields
                .alt_names
                .contains(&AltName::Uri("ordo:agent:a1".into()))
        );
        assert_eq!(fields.common_name.as_deref(), Some("agent-a1"));
        assert!(fields.subject_single_valued);
        for end in 0..sample().len() {
            assert!(parse_certificate(&sample()[..end]).is_err(), "{end}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_certificate(&bytes);
        }

        #[test]
        fn mutated_certificates_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut der = sample().to_vec();
            for (at, byte) in edits {
                let i = at.index(der.len());
                der[i] = byte;
            }
            let _ = parse_certificate(&der);
            let end = cut.index(der.len());
            let _ = parse_certificate(&der[..end]);
        }
    }
}

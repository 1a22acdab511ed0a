//! A small, bounds-checked DER reader for the parts of an X.509 certificate Ordo looks at.
//!
//! Format (RFC 5280 §4.1, X.690 DER):
//!
//! ```text
//! Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
//! TBSCertificate ::= SEQUENCE {
//!     [0] EXPLICIT version OPTIONAL, serialNumber INTEGER, signature AlgorithmIdentifier,
//!     issuer Name, validity SEQUENCE, subject Name, subjectPublicKeyInfo SEQUENCE,
//!     [1] issuerUniqueID OPTIONAL, [2] subjectUniqueID OPTIONAL,
//!     [3] EXPLICIT extensions SEQUENCE OF Extension OPTIONAL }
//! Name         ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY (a string type) }
//! Extension    ::= SEQUENCE { extnID OID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
//! subjectAltName (2.5.29.17) ::= SEQUENCE OF GeneralName
//! GeneralName  ::= [1] rfc822Name | [2] dNSName | [6] URI | [7] iPAddress | ... (IMPLICIT)
//! ```
//!
//! Only single-byte tags and definite lengths of at most four length bytes are accepted; every
//! slice is taken with a checked range, so malformed input yields [`DerError`], never a panic.
//! The reader does not recurse: each structure is walked by a fixed sequence of steps.

use std::net::IpAddr;

/// Why a DER structure could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DER: {0}")]
pub struct DerError(pub &'static str);

type Result<T> = std::result::Result<T, DerError>;

/// Tag bytes used below.
const TAG_BOOLEAN: u8 = 0x01;
const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_UTF8_STRING: u8 = 0x0c;
const TAG_PRINTABLE_STRING: u8 = 0x13;
const TAG_IA5_STRING: u8 = 0x16;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_VERSION: u8 = 0xa0;
const TAG_ISSUER_UID: u8 = 0x81;
const TAG_SUBJECT_UID: u8 = 0x82;
const TAG_EXTENSIONS: u8 = 0xa3;
const TAG_SAN_DNS: u8 = 0x82;
const TAG_SAN_URI: u8 = 0x86;
const TAG_SAN_IP: u8 = 0x87;

/// DER content octets of OID 2.5.29.17 (subjectAltName).
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// DER content octets of OID 2.5.4.3 (commonName).
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// One tag-length-value element.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// The content octets.
    pub content: &'a [u8],
    /// The whole element: tag, length and content.
    pub raw: &'a [u8],
}

/// Reads consecutive elements from a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element, or `None` at the end of the input.
    pub fn next_tlv(&mut self) -> Result<Option<Tlv<'a>>> {
        let input = self.rest;
        let Some((&tag, after_tag)) = input.split_first() else {
            return Ok(None);
        };
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte tags are not supported"));
        }
        let (&first, after_first) = after_tag
            .split_first()
            .ok_or(DerError("element ends before its length"))?;
        let (length, after_length) = if first < 0x80 {
            (usize::from(first), after_first)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 {
                return Err(DerError("indefinite length is not DER"));
            }
            if count > 4 {
                return Err(DerError("length has more than four bytes"));
            }
            let bytes = after_first
                .get(..count)
                .ok_or(DerError("element ends inside its length"))?;
            let length = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (length, after_first.get(count..).unwrap_or_default())
        };
        let content = after_length
            .get(..length)
            .ok_or(DerError("element is longer than its input"))?;
        let header_len = input.len() - after_length.len();
        let total = header_len + length;
        let raw = input.get(..total).ok_or(DerError("element out of range"))?;
        self.rest = input.get(total..).unwrap_or_default();
        Ok(Some(Tlv { tag, content, raw }))
    }

    /// The next element, which must carry `tag`.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>> {
        match self.next_tlv()? {
            Some(tlv) if tlv.tag == tag => Ok(tlv),
            Some(_) | None => Err(DerError(what)),
        }
    }

    /// The next element if it carries `tag`; otherwise nothing is consumed.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>> {
        if self.rest.first() != Some(&tag) {
            return Ok(None);
        }
        self.next_tlv()
    }
}

/// One attribute of a distinguished name, such as `CN=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAttribute<'a> {
    /// Index of the relative distinguished name (SET) that holds this attribute.
    pub rdn: usize,
    /// DER content octets of the attribute type OID.
    pub oid: &'a [u8],
    /// The string type tag (UTF8String, PrintableString, ...).
    pub value_tag: u8,
    pub value: &'a [u8],
}

/// A subject alternative name Ordo understands; other kinds are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AltName<'a> {
    Dns(&'a str),
    Uri(&'a str),
    Ip(IpAddr),
}

/// The fields of a certificate Ordo reads.
#[derive(Debug, Clone)]
pub struct CertFields<'a> {
    /// The whole issuer Name element.
    pub issuer_raw: &'a [u8],
    /// The whole subject Name element.
    pub subject_raw: &'a [u8],
    /// The whole subjectPublicKeyInfo element.
    pub spki_raw: &'a [u8],
    /// Subject attributes, one per relative distinguished name, in order.
    pub subject: Vec<NameAttribute<'a>>,
    pub alt_names: Vec<AltName<'a>>,
}

impl<'a> CertFields<'a> {
    /// The first commonName of the subject, if it is a UTF-8 compatible string type.
    pub fn common_name(&self) -> Option<&'a str> {
        self.subject
            .iter()
            .find(|a| a.oid == OID_COMMON_NAME)
            .filter(|a| {
                matches!(
                    a.value_tag,
                    TAG_UTF8_STRING | TAG_PRINTABLE_STRING | TAG_IA5_STRING
                )
            })
            .and_then(|a| std::str::from_utf8(a.value).ok())
    }
}

/// Reads the issuer, subject, public key and subject alternative names of a DER certificate.
pub fn parse_certificate(der: &[u8]) -> Result<CertFields<'_>> {
    let mut outer = Reader::new(der);
    let cert = outer.expect(TAG_SEQUENCE, "certificate is not a SEQUENCE")?;
    if !outer.is_empty() {
        return Err(DerError("trailing bytes after the certificate"));
    }
    let mut cert_fields = Reader::new(cert.content);
    let tbs = cert_fields.expect(TAG_SEQUENCE, "tbsCertificate is not a SEQUENCE")?;

    let mut tbs_fields = Reader::new(tbs.content);
    tbs_fields.optional(TAG_VERSION)?;
    tbs_fields.expect(TAG_INTEGER, "serial number is not an INTEGER")?;
    tbs_fields.expect(TAG_SEQUENCE, "signature algorithm is not a SEQUENCE")?;
    let issuer = tbs_fields.expect(TAG_SEQUENCE, "issuer is not a SEQUENCE")?;
    tbs_fields.expect(TAG_SEQUENCE, "validity is not a SEQUENCE")?;
    let subject = tbs_fields.expect(TAG_SEQUENCE, "subject is not a SEQUENCE")?;
    let spki = tbs_fields.expect(TAG_SEQUENCE, "subjectPublicKeyInfo is not a SEQUENCE")?;
    tbs_fields.optional(TAG_ISSUER_UID)?;
    tbs_fields.optional(TAG_SUBJECT_UID)?;
    let extensions = tbs_fields.optional(TAG_EXTENSIONS)?;
    if !tbs_fields.is_empty() {
        return Err(DerError("unexpected element at the end of tbsCertificate"));
    }

    let mut alt_names = Vec::new();
    if let Some(extensions) = extensions {
        let mut wrapper = Reader::new(extensions.content);
        let list = wrapper.expect(TAG_SEQUENCE, "extensions are not a SEQUENCE")?;
        let mut items = Reader::new(list.content);
        while let Some(ext) = items.next_tlv()? {
            if ext.tag != TAG_SEQUENCE {
                return Err(DerError("extension is not a SEQUENCE"));
            }
            let mut ext_fields = Reader::new(ext.content);
            let oid = ext_fields.expect(TAG_OID, "extension id is not an OID")?;
            ext_fields.optional(TAG_BOOLEAN)?;
            let value =
                ext_fields.expect(TAG_OCTET_STRING, "extension value is not an OCTET STRING")?;
            if oid.content == OID_SUBJECT_ALT_NAME {
                read_alt_names(value.content, &mut alt_names)?;
            }
        }
    }

    Ok(CertFields {
        issuer_raw: issuer.raw,
        subject_raw: subject.raw,
        spki_raw: spki.raw,
        subject: read_name(subject.content)?,
        alt_names,
    })
}

fn read_name(content: &[u8]) -> Result<Vec<NameAttribute<'_>>> {
    let mut attributes = Vec::new();
    let mut rdns = Reader::new(content);
    let mut index = 0;
    while let Some(rdn) = rdns.next_tlv()? {
        if rdn.tag != TAG_SET {
            return Err(DerError("relative distinguished name is not a SET"));
        }
        let mut members = Reader::new(rdn.content);
        while let Some(member) = members.next_tlv()? {
            if member.tag != TAG_SEQUENCE {
                return Err(DerError("name attribute is not a SEQUENCE"));
            }
            let mut fields = Reader::new(member.content);
            let oid = fields.expect(TAG_OID, "name attribute type is not an OID")?;
            let value = fields
                .next_tlv()?
                .ok_or(DerError("name attribute has no value"))?;
            attributes.push(NameAttribute {
                rdn: index,
                oid: oid.content,
                value_tag: value.tag,
                value: value.content,
            });
        }
        index += 1;
    }
    Ok(attributes)
}

fn read_alt_names<'a>(content: &'a [u8], out: &mut Vec<AltName<'a>>) -> Result<()> {
    let mut wrapper = Reader::new(content);
    let list = wrapper.expect(TAG_SEQUENCE, "subjectAltName is not a SEQUENCE")?;
    let mut names = Reader::new(list.content);
    while let Some(name) = names.next_tlv()? {
        match name.tag {
            TAG_SAN_DNS => {
                let text = std::str::from_utf8(name.content)
                    .map_err(|_| DerError("dNSName is not ASCII"))?;
                out.push(AltName::Dns(text));
            }
            TAG_SAN_URI => {
                let text = std::str::from_utf8(name.content)
                    .map_err(|_| DerError("URI name is not ASCII"))?;
                out.push(AltName::Uri(text));
            }
            TAG_SAN_IP => {
                let ip = match name.content.len() {
                    4 => {
                        let mut octets = [0u8; 4];
                        octets.copy_from_slice(name.content);
                        IpAddr::from(octets)
                    }
                    16 => {
                        let mut octets = [0u8; 16];
                        octets.copy_from_slice(name.content);
                        IpAddr::from(octets)
                    }
                    _ => return Err(DerError("iPAddress has neither 4 nor 16 bytes")),
                };
                out.push(AltName::Ip(ip));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Decodes the content octets of an OBJECT IDENTIFIER into its arcs.
pub fn oid_arcs(content: &[u8]) -> Result<Vec<u64>> {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    let mut in_arc = false;
    for &byte in content {
        if !in_arc && byte == 0x80 {
            return Err(DerError("OID arc has a leading zero byte"));
        }
        value = value
            .checked_mul(128)
            .and_then(|v| v.checked_add(u64::from(byte & 0x7f)))
            .ok_or(DerError("OID arc does not fit in 64 bits"))?;
        in_arc = byte & 0x80 != 0;
        if !in_arc {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if in_arc || arcs.is_empty() {
        return Err(DerError("OID is empty or ends inside an arc"));
    }
    Ok(arcs)
}

/// Tag of a UTF8String.
pub const STRING_UTF8: u8 = TAG_UTF8_STRING;
/// Tag of a PrintableString.
pub const STRING_PRINTABLE: u8 = TAG_PRINTABLE_STRING;
/// Tag of an IA5String.
pub const STRING_IA5: u8 = TAG_IA5_STRING;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        let mut bytes = vec![0x04, 0x81, 0x80];
        bytes.extend(std::iter::repeat_n(7u8, 0x80));
        bytes.extend([0x05, 0x00]);
        let mut reader = Reader::new(&bytes);
        let first = reader.next_tlv().unwrap().unwrap();
        assert_eq!(first.tag, 0x04);
        assert_eq!(first.content.len(), 0x80);
        assert_eq!(first.raw.len(), 0x83);
        let second = reader.next_tlv().unwrap().unwrap();
        assert_eq!((second.tag, second.content.len()), (0x05, 0));
        assert!(reader.next_tlv().unwrap().is_none());
    }

    #[test]
    fn malformed_lengths_are_errors() {
        for bytes in [
            &[0x04][..],
            &[0x04, 0x80],
            &[0x04, 0x85, 1, 1, 1, 1, 1],
            &[0x04, 0x82, 0x01],
            &[0x04, 0x03, 0x00],
            &[0x1f, 0x01, 0x00],
        ] {
            assert!(Reader::new(bytes).next_tlv().is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn oid_decoding() {
        assert_eq!(oid_arcs(&[0x55, 0x04, 0x03]).unwrap(), vec![2, 5, 4, 3]);
        assert_eq!(
            oid_arcs(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]).unwrap(),
            vec![1, 2, 840, 113549]
        );
        assert!(oid_arcs(&[]).is_err());
        assert!(oid_arcs(&[0x55, 0x86]).is_err());
        assert!(oid_arcs(&[0x80, 0x01]).is_err());
        assert!(oid_arcs(&[0xff; 12]).is_err());
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(parse_certificate(b"").is_err());
        assert!(parse_certificate(b"not a certificate").is_err());
        assert!(parse_certificate(&[0x30, 0x00]).is_err());
    }

    mod fuzz {
        use super::super::*;
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

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = parse_certificate(&bytes);
                let _ = oid_arcs(&bytes);
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

        #[test]
        fn the_sample_parses() {
            let fields = parse_certificate(sample()).unwrap();
            assert!(fields.alt_names.contains(&AltName::Uri("ordo:agent:a1")));
            // Any truncation is an error, never a success with less data.
            for end in 0..sample().len() {
                assert!(parse_certificate(&sample()[..end]).is_err(), "{end}");
            }
        }
    }
}

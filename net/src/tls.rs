//! rustls configurations for Ordo's servers and clients, built from PEM material.
//!
//! One crypto provider, ring, is used for every configuration (see
//! [`install_crypto_provider`]). Servers advertise ALPN `http/1.1`, because the same port serves
//! HTTP requests and WebSocket upgrades. Client certificates, when asked for, are verified
//! against the cluster CA; that proves membership, not a role: read the [`PeerIdentity`] to
//! authorise.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use crate::identity::PeerIdentity;

/// Largest PEM file read for certificates or keys.
pub const PEM_FILE_BYTES_MAX: u64 = 1024 * 1024;
/// ALPN protocol of every Ordo TLS endpoint.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why TLS material or a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("building the TLS configuration failed: {0}")]
    Config(#[from] rustls::Error),
    #[error("building the client certificate verifier failed: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The ring provider every configuration is built with.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Installs ring as the process-wide default provider, for libraries that build rustls
/// configurations themselves. Idempotent; a provider installed earlier is left in place.
pub fn install_crypto_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // An error means some provider is installed already, which is all that is needed.
        let _ = CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    });
}

/// A certificate chain (leaf first) and its private key.
#[derive(Debug)]
pub struct TlsMaterial {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        Self {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TlsMaterial {
    /// Reads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let cert = read_pem_file(cert_path)?;
        let key = read_pem_file(key_path)?;
        Self::parse(
            &cert,
            &key,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )
    }

    /// Parses a PEM certificate chain and a PEM private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        Self::parse(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            "certificate PEM",
            "key PEM",
        )
    }

    fn parse(cert: &[u8], key: &[u8], cert_what: &str, key_what: &str) -> Result<Self, TlsError> {
        let cert_chain = certificates(cert, cert_what)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
            what: key_what.to_owned(),
            reason: format!("no usable private key: {e}"),
        })?;
        Ok(Self { cert_chain, key })
    }
}

/// The CA certificates a peer's chain must lead to.
#[derive(Debug, Clone)]
pub struct CaBundle {
    pub certs: Vec<CertificateDer<'static>>,
}

impl CaBundle {
    /// Reads every certificate of a PEM file.
    pub fn from_pem_file(path: &Path) -> Result<Self, TlsError> {
        let pem = read_pem_file(path)?;
        Ok(Self {
            certs: certificates(&pem, &path.display().to_string())?,
        })
    }

    /// Parses every certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<Self, TlsError> {
        Ok(Self {
            certs: certificates(pem.as_bytes(), "CA PEM")?,
        })
    }

    fn root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in &self.certs {
            roots.add(cert.clone())?;
        }
        Ok(roots)
    }
}

/// Whether and how a server asks for client certificates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// A client may present a certificate; if it does, it must lead to the CA.
    Optional(CaBundle),
    /// A client must present a certificate that leads to the CA.
    Required(CaBundle),
}

/// A server configuration (ALPN `http/1.1`) with the given client authentication.
pub fn server_config(
    material: &TlsMaterial,
    client_auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.root_store()?), provider)
                .allow_unauthenticated()
                .build()?,
        ),
        ClientAuth::Required(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca.root_store()?), provider)
                .build()?,
        ),
    };
    let mut config =
        builder.with_single_cert(material.cert_chain.clone(), material.key.clone_key())?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that trusts only `ca`, optionally presenting a client certificate.
pub fn client_config(
    ca: &CaBundle,
    client_cert: Option<&TlsMaterial>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(ca.root_store()?);
    let mut config = match client_cert {
        Some(material) => {
            builder.with_client_auth_cert(material.cert_chain.clone(), material.key.clone_key())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Arc::new(config))
}

fn read_pem_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    crate::read_file_limited(path, PEM_FILE_BYTES_MAX).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            reason: format!("unreadable certificate: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: what.to_owned(),
            reason: "no certificate found".to_owned(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::{IssueSpec, TestPki};

    #[test]
    fn configs_build_from_test_pki() {
        let pki = TestPki::new("main").unwrap();
        let material = pki
            .issue("ctl", &IssueSpec::local(["ordo:controller:main"]))
            .unwrap()
            .to_material()
            .unwrap();
        let ca = pki.ca_bundle().unwrap();
        for auth in [
            ClientAuth::None,
            ClientAuth::Optional(ca.clone()),
            ClientAuth::Required(ca.clone()),
        ] {
            let config = server_config(&material, auth).unwrap();
            assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        }
        client_config(&ca, Some(&material)).unwrap();
        client_config(&ca, None).unwrap();
        install_crypto_provider();
        install_crypto_provider();
        assert!(CryptoProvider::get_default().is_some());
    }

    #[test]
    fn bad_pem_is_a_clear_error() {
        let err = TlsMaterial::from_pem("garbage", "garbage").unwrap_err();
        assert!(err.to_string().contains("no certificate found"), "{err}");
        let pki = TestPki::new("main").unwrap();
        let err = TlsMaterial::from_pem(pki.ca_pem(), "nope").unwrap_err();
        assert!(err.to_string().contains("no usable private key"), "{err}");
        assert!(CaBundle::from_pem("").is_err());
    }
}

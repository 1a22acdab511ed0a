//! Who is on the other end of a TLS connection, read from its certificate.
//!
//! Identity scheme (design §7 "Security"): server identity is carried by DNS and IP subject
//! alternative names and checked by the TLS handshake; authorisation uses URI subject
//! alternative names of the form `ordo:<role>:<id>`:
//!
//! | URI SAN | meaning |
//! |---|---|
//! | `ordo:agent:<agent-id>` | the agent with that id |
//! | `ordo:controller:<cluster-id>` | a controller (or watch) of that cluster |
//! | `ordo:cockpit:<id>` | a cockpit instance |
//!
//! A certificate may carry several URI SANs. The TLS verifier only proves that the chain leads
//! to the cluster CA; callers decide what a role and id may do with the helpers below.

use rustls::pki_types::CertificateDer;

use crate::x509::{self, AltName, CertParseError};

/// Prefix shared by every Ordo URI SAN.
pub const URI_PREFIX: &str = "ordo:";
/// Role name of agents in `ordo:agent:<id>`.
pub const ROLE_AGENT: &str = "agent";
/// Role name of controllers in `ordo:controller:<cluster-id>`.
pub const ROLE_CONTROLLER: &str = "controller";
/// Role name of cockpit instances in `ordo:cockpit:<id>`.
pub const ROLE_COCKPIT: &str = "cockpit";

/// The URI SAN naming a role and id, e.g. `ordo_uri("agent", "a1") == "ordo:agent:a1"`.
pub fn ordo_uri(role: &str, id: &str) -> String {
    format!("{URI_PREFIX}{role}:{id}")
}

/// `ordo:agent:<agent_id>`.
pub fn agent_uri(agent_id: &str) -> String {
    ordo_uri(ROLE_AGENT, agent_id)
}

/// `ordo:controller:<cluster_id>`.
pub fn controller_uri(cluster_id: &str) -> String {
    ordo_uri(ROLE_CONTROLLER, cluster_id)
}

/// `ordo:cockpit:<id>`.
pub fn cockpit_uri(id: &str) -> String {
    ordo_uri(ROLE_COCKPIT, id)
}

/// The identity a peer certificate claims (already verified against the CA by rustls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Every URI subject alternative name, in certificate order.
    pub uri_sans: Vec<String>,
    /// The subject's first commonName, when it is a UTF-8 compatible string.
    pub common_name: Option<String>,
}

impl PeerIdentity {
    /// Reads the identity from a DER certificate.
    pub fn from_der(cert: &CertificateDer<'_>) -> Result<Self, CertParseError> {
        let fields = x509::parse_certificate(cert.as_ref())?;
        let uri_sans = fields
            .alt_names
            .into_iter()
            .filter_map(|name| match name {
                AltName::Uri(uri) => Some(uri),
                AltName::Dns(_) | AltName::Ip(_) => None,
            })
            .collect();
        Ok(Self {
            uri_sans,
            common_name: fields.common_name,
        })
    }

    /// The identity of the end-entity certificate in `chain` (its first element), if any.
    pub fn from_chain(
        chain: Option<&[CertificateDer<'_>]>,
    ) -> Result<Option<Self>, CertParseError> {
        match chain.and_then(<[_]>::first) {
            Some(cert) => Self::from_der(cert).map(Some),
            None => Ok(None),
        }
    }

    /// The client identity of an accepted server-side TLS stream.
    pub fn from_server_stream<IO>(
        stream: &tokio_rustls::server::TlsStream<IO>,
    ) -> Result<Option<Self>, CertParseError> {
        Self::from_chain(stream.get_ref().1.peer_certificates())
    }

    /// The server identity of a connected client-side TLS stream.
    pub fn from_client_stream<IO>(
        stream: &tokio_rustls::client::TlsStream<IO>,
    ) -> Result<Option<Self>, CertParseError> {
        Self::from_chain(stream.get_ref().1.peer_certificates())
    }

    /// Every id this certificate holds for `role` (`ordo:<role>:<id>`), in certificate order.
    pub fn ids<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.uri_sans.iter().filter_map(move |uri| {
            uri.strip_prefix(URI_PREFIX)?
                .strip_prefix(role)?
                .strip_prefix(':')
                .filter(|id| !id.is_empty())
        })
    }

    /// The single id this certificate holds for `role`; `None` when it holds none or several.
    pub fn single_id<'a>(&'a self, role: &'a str) -> Option<&'a str> {
        let mut ids = self.ids(role);
        let first = ids.next()?;
        ids.next().is_none().then_some(first)
    }

    /// Whether the certificate holds `ordo:<role>:<id>`.
    pub fn has(&self, role: &str, id: &str) -> bool {
        self.ids(role).any(|held| held == id)
    }

    /// Whether the certificate holds any id for `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.ids(role).next().is_some()
    }

    /// The agent id, if the certificate names exactly one agent.
    pub fn agent_id(&self) -> Option<&str> {
        self.single_id(ROLE_AGENT)
    }

    /// Whether the certificate names agent `agent_id`.
    pub fn is_agent(&self, agent_id: &str) -> bool {
        self.has(ROLE_AGENT, agent_id)
    }

    /// The cluster id, if the certificate names exactly one controller cluster.
    pub fn controller_cluster_id(&self) -> Option<&str> {
        self.single_id(ROLE_CONTROLLER)
    }

    /// Whether the certificate is a controller's of cluster `cluster_id`.
    pub fn is_controller(&self, cluster_id: &str) -> bool {
        self.has(ROLE_CONTROLLER, cluster_id)
    }

    /// The cockpit id, if the certificate names exactly one cockpit.
    pub fn cockpit_id(&self) -> Option<&str> {
        self.single_id(ROLE_COCKPIT)
    }

    /// Whether the certificate is cockpit `id`'s.
    pub fn is_cockpit(&self, id: &str) -> bool {
        self.has(ROLE_COCKPIT, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(uris: &[&str]) -> PeerIdentity {
        PeerIdentity {
            uri_sans: uris.iter().map(|u| (*u).to_owned()).collect(),
            common_name: None,
        }
    }

    #[test]
    fn role_helpers_follow_the_uri_scheme() {
        let id = identity(&[
            "ordo:agent:a1",
            "ordo:controller:main",
            "https://example.invalid/x",
        ]);
        assert_eq!(id.agent_id(), Some("a1"));
        assert!(id.is_agent("a1"));
        assert!(!id.is_agent("a"));
        assert_eq!(id.controller_cluster_id(), Some("main"));
        assert!(id.is_controller("main"));
        assert!(!id.is_controller("other"));
        assert_eq!(id.cockpit_id(), None);
        assert!(!id.has_role(ROLE_COCKPIT));
    }

    #[test]
    fn prefixes_must_match_whole_segments() {
        let id = identity(&[
            "ordo:agentx:a1",
            "ordo:agent:",
            "xordo:agent:a2",
            "ordo:agent",
        ]);
        assert_eq!(id.ids(ROLE_AGENT).count(), 0);
    }

    #[test]
    fn several_ids_of_one_role_are_ambiguous() {
        let id = identity(&["ordo:agent:a1", "ordo:agent:a2"]);
        assert_eq!(id.agent_id(), None);
        assert!(id.is_agent("a1") && id.is_agent("a2"));
        assert_eq!(id.ids(ROLE_AGENT).collect::<Vec<_>>(), ["a1", "a2"]);
    }

    #[test]
    fn uri_builders() {
        assert_eq!(agent_uri("a1"), "ordo:agent:a1");
        assert_eq!(controller_uri("main"), "ordo:controller:main");
        assert_eq!(cockpit_uri("c"), "ordo:cockpit:c");
    }
}

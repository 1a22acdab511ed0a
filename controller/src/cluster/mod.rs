//! The replicated pair: the data of an entry ([`batch`]) and how a node starts ([`start`]).
//! The raft thread and the transport between the nodes are `ordo-replica`'s (`driver`,
//! `transport`), shared with an agent's director pair; `raft` and `transport` name them here.

pub mod batch;
pub mod start;

pub use ordo_replica::driver as raft;
pub use ordo_replica::transport;

use crate::config::TlsConfig;
use ordo_net::tls::TlsError;
use ordo_replica::transport::TransportTls;

/// Reads the transport's TLS material from the controller's `[tls]` files: the API's server
/// certificate, the client certificate it presents to agents, the cluster CA.
pub fn tls_from_config(tls: &TlsConfig) -> Result<TransportTls, TlsError> {
    Ok(TransportTls {
        ca: ordo_net::tls::CaBundle::from_pem_file(&tls.ca)?,
        server: ordo_net::tls::TlsMaterial::from_pem_files(&tls.certificate, &tls.key)?,
        client: ordo_net::tls::TlsMaterial::from_pem_files(
            &tls.client_certificate,
            &tls.client_key,
        )?,
    })
}

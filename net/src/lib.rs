//! Networking shared by Ordo's servers: TLS material, certificate identities and framing.

//! A local installation in one directory: certificates, tokens and server configurations for
//! a controller (or a replicated pair: two controllers and the watch) and its agents on
//! 127.0.0.1. `ordo up` and the multi-process tests use it.
//!
//! Layout under the directory:
//!
//! ```text
//! certs/ca.pem, ca.key                         the local CA (cluster id as given)
//! certs/controller.pem/.key                    controller API server certificate
//! certs/controller-client.pem/.key             client certificate towards agents
//! certs/node-<n>.pem/.key                      a pair's node n: server and client certificate
//!                                              (API, raft, agents), URI SAN
//!                                              ordo:controller:<cluster id>, its address
//! certs/agent-<id>.pem/.key                    each agent's server certificate
//! admin.token, cockpit.token, viewer.token    API tokens (0600); configs hold their SHA-256
//! controller.toml, agent-<id>.toml, cockpit.toml  server configurations
//! controller/, agent-<id>/                     their data directories
//! controller-a.toml, controller-b.toml, watch.toml and controller-a/, controller-b/, watch/
//!                                              a pair's voters (nodes 1, 2, 3) instead of
//!                                              controller.toml and controller/
//! ```
//!
//! Everything that exists is kept (certificates, tokens, ports are rewritten only into the
//! configs), so running it again resumes the same installation. The configurations are the
//! servers' own configuration file types, serialised; [`edit_controller_config`],
//! [`edit_agent_config`] and [`edit_cockpit_config`] change one before its server starts.

pub use ordo_agent::config::ConfigFile as AgentFile;
use ordo_api::auth::{Role, token_hash};
pub use ordo_cockpit_api::config::ConfigFile as CockpitFile;
pub use ordo_controller::config::ConfigFile as ControllerFile;
use ordo_controller::config::{ClusterConfig, ClusterNode, Voter};
use ordo_net::certs::{self, IssueSpec};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What to set up.
pub struct Options {
    pub cluster_id: String,
    pub controller_listen: SocketAddr,
    /// Agent ids and their listen addresses.
    pub agents: Vec<(String, SocketAddr)>,
    /// Written into both server configurations (tests turn it off for speed where allowed).
    pub journal_fsync: bool,
    /// Where the cockpit (API and web UI, plain HTTP on 127.0.0.1) listens, if it runs.
    pub cockpit_listen: Option<SocketAddr>,
}

/// What was set up.
#[derive(Debug, Clone)]
pub struct Local {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub controller_config: PathBuf,
    pub controller_url: String,
    pub agent_configs: Vec<(String, PathBuf, String)>,
    /// The cockpit's configuration and URL, when `cockpit_listen` was given.
    pub cockpit: Option<(PathBuf, String)>,
    pub admin_token: String,
    pub cockpit_token: String,
    pub viewer_token: String,
}

/// Why a local installation cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificates: {0}")]
    Certs(#[from] certs::CertError),
    #[error(transparent)]
    Token(#[from] crate::token::TokenError),
    #[error("configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), LocalError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(text.as_bytes()).map_err(io(path))
}

/// Reads a token file, or makes a new token and writes it.
fn token_file(path: &Path) -> Result<String, LocalError> {
    match std::fs::read_to_string(path) {
        Ok(t) if t.trim().len() >= 32 => Ok(t.trim().to_owned()),
        _ => {
            let t = crate::token::new_token()?;
            write_private(path, &format!("{t}\n"))?;
            Ok(t)
        }
    }
}

fn issue_if_missing(dir: &Path, name: &str, spec: &IssueSpec) -> Result<(), LocalError> {
    if !dir.join(format!("{name}.pem")).exists() || !dir.join(format!("{name}.key")).exists() {
        certs::issue(dir, name, spec)?;
    }
    Ok(())
}

/// What every installation has: its directory, CA and tokens.
struct Common {
    dir: PathBuf,
    certs_dir: PathBuf,
    ca: PathBuf,
    admin_token: String,
    cockpit_token: String,
    viewer_token: String,
}

fn common(dir: &Path, cluster_id: &str) -> Result<Common, LocalError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dir = dir.canonicalize().map_err(io(dir))?;
    let certs_dir = dir.join("certs");
    let ca = certs::init_ca(&certs_dir, cluster_id)?;
    Ok(Common {
        admin_token: token_file(&dir.join("admin.token"))?,
        cockpit_token: token_file(&dir.join("cockpit.token"))?,
        viewer_token: token_file(&dir.join("viewer.token"))?,
        ca: ca.cert_path,
        certs_dir,
        dir,
    })
}

impl Common {
    fn cert(&self, file: &str) -> PathBuf {
        self.certs_dir.join(file)
    }

    /// The controllers' tokens: admin, the cockpit's service token, viewer.
    fn controller_tokens(&self) -> Vec<ordo_controller::config::TokenConfig> {
        let token = |name: &str, token: &str, role: Role| ordo_controller::config::TokenConfig {
            name: name.to_owned(),
            sha256: token_hash(token),
            role,
        };
        vec![
            token("admin", &self.admin_token, Role::Admin),
            token("cockpit", &self.cockpit_token, Role::Admin),
            token("viewer", &self.viewer_token, Role::Viewer),
        ]
    }

    /// Writes each agent's certificate (kept when it exists) and configuration; gives `(id,
    /// config, URL)` of each.
    fn agents(
        &self,
        agents: &[(String, SocketAddr)],
        fsync: bool,
    ) -> Result<Vec<(String, PathBuf, String)>, LocalError> {
        let mut agent_configs = Vec::new();
        for (id, listen) in agents {
            let name = format!("agent-{id}");
            issue_if_missing(
                &self.certs_dir,
                &name,
                &IssueSpec::local([ordo_net::identity::agent_uri(id)]),
            )?;
            let path = self.dir.join(format!("{name}.toml"));
            let agent = AgentFile {
                agent_id: id.clone(),
                listen: *listen,
                data_dir: self.dir.join(&name),
                tls: ordo_agent::config::TlsConfig {
                    certificate: self.cert(&format!("{name}.pem")),
                    key: self.cert(&format!("{name}.key")),
                    controller_ca: self.ca.clone(),
                },
                limits: ordo_agent::config::Limits {
                    journal_fsync: fsync,
                    ..Default::default()
                },
                subagent: None,
                pair: None,
                register: None,
            };
            write_config(
                &path,
                "agent",
                agent.to_toml().map_err(config_error(&path))?,
            )?;
            agent_configs.push((
                id.clone(),
                path,
                format!("wss://127.0.0.1:{}", listen.port()),
            ));
        }
        Ok(agent_configs)
    }

    /// Writes the cockpit's configuration for `controllers` (plain HTTP on `listen`, which is
    /// on 127.0.0.1); gives its path and URL.
    fn cockpit(
        &self,
        listen: SocketAddr,
        controllers: Vec<String>,
    ) -> Result<(PathBuf, String), LocalError> {
        let path = self.dir.join("cockpit.toml");
        let user = |name: &str, token: &str, role: Role| ordo_cockpit_api::config::UserConfig {
            name: name.to_owned(),
            sha256: token_hash(token),
            role,
        };
        // Plain HTTP (no `tls`), on 127.0.0.1 only.
        let cockpit = CockpitFile {
            controllers,
            controller_ca: self.ca.clone(),
            controller_token: None,
            controller_token_file: Some(self.dir.join("cockpit.token")),
            listen,
            tls: None,
            users: vec![
                user("admin", &self.admin_token, Role::Admin),
                user("viewer", &self.viewer_token, Role::Viewer),
            ],
            follow: Default::default(),
            limits: Default::default(),
        };
        write_config(
            &path,
            "cockpit",
            cockpit.to_toml().map_err(config_error(&path))?,
        )?;
        Ok((path, format!("http://127.0.0.1:{}", listen.port())))
    }
}

/// Sets up (or refreshes) a local installation in `dir`.
pub fn setup(dir: &Path, o: &Options) -> Result<Local, LocalError> {
    let c = common(dir, &o.cluster_id)?;
    issue_if_missing(
        &c.certs_dir,
        "controller",
        &IssueSpec::local(Vec::<String>::new()),
    )?;
    issue_if_missing(
        &c.certs_dir,
        "controller-client",
        &IssueSpec::local([ordo_net::identity::controller_uri(&o.cluster_id)]),
    )?;
    let fsync = o.journal_fsync;
    let controller_config = c.dir.join("controller.toml");
    let controller = ControllerFile {
        controller_id: "primary".to_owned(),
        cluster_id: o.cluster_id.clone(),
        data_dir: c.dir.join("controller"),
        listen: o.controller_listen,
        tls: ordo_controller::config::TlsConfig {
            certificate: c.cert("controller.pem"),
            key: c.cert("controller.key"),
            client_certificate: c.cert("controller-client.pem"),
            client_key: c.cert("controller-client.key"),
            ca: c.ca.clone(),
        },
        tokens: c.controller_tokens(),
        limits: ordo_controller::config::Limits {
            journal_fsync: fsync,
            ..Default::default()
        },
        retention: Default::default(),
        agents: Default::default(),
        cluster: None,
        plan: Default::default(),
    };
    write_config(
        &controller_config,
        "controller",
        controller
            .to_toml()
            .map_err(config_error(&controller_config))?,
    )?;
    let agent_configs = c.agents(&o.agents, fsync)?;
    let controller_url = format!("https://127.0.0.1:{}", o.controller_listen.port());
    let cockpit = match o.cockpit_listen {
        None => None,
        Some(listen) => Some(c.cockpit(listen, vec![controller_url.clone()])?),
    };
    Ok(Local {
        cockpit,
        ca: c.ca,
        controller_url,
        dir: c.dir,
        controller_config,
        agent_configs,
        admin_token: c.admin_token,
        cockpit_token: c.cockpit_token,
        viewer_token: c.viewer_token,
    })
}

/// Where one voter of a local pair listens.
#[derive(Debug, Clone, Copy)]
pub struct PairListen {
    /// Its API (for the watch: only `/health`).
    pub api: SocketAddr,
    /// Its raft transport.
    pub raft: SocketAddr,
}

/// What to set up for a replicated pair.
pub struct PairOptions {
    pub cluster_id: String,
    /// Controller A (node 1), controller B (node 2) and the watch (node 3).
    pub nodes: [PairListen; 3],
    /// Agent ids and their listen addresses.
    pub agents: Vec<(String, SocketAddr)>,
    pub journal_fsync: bool,
    /// Where the cockpit (API and web UI, plain HTTP on 127.0.0.1) listens, if it runs.
    pub cockpit_listen: Option<SocketAddr>,
}

/// One voter of a local pair, as set up.
#[derive(Debug, Clone)]
pub struct PairNode {
    /// Its raft node id: 1, 2 or 3.
    pub id: u64,
    /// `controller-a`, `controller-b` or `watch`: its configuration is `<name>.toml`, its
    /// data `<name>/`.
    pub name: String,
    pub voter: Voter,
    pub config: PathBuf,
    pub api_url: String,
    pub raft_address: String,
}

/// What was set up for a pair.
#[derive(Debug, Clone)]
pub struct LocalPair {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub nodes: Vec<PairNode>,
    pub agent_configs: Vec<(String, PathBuf, String)>,
    /// The cockpit's configuration and URL, when `cockpit_listen` was given; it knows the two
    /// controllers' API URLs.
    pub cockpit: Option<(PathBuf, String)>,
    pub admin_token: String,
    pub cockpit_token: String,
    pub viewer_token: String,
}

/// The names of a pair's voters, by node id 1, 2, 3.
pub const PAIR_NAMES: [&str; 3] = ["controller-a", "controller-b", "watch"];

/// A `[cluster]` section for node `node_id`, with the controller's defaults for what is not
/// given (ticks, message size).
fn cluster_config(
    node_id: u64,
    raft_listen: SocketAddr,
    nodes: &[ClusterNode],
) -> Result<ClusterConfig, String> {
    #[derive(serde::Serialize)]
    struct Given<'a> {
        node_id: u64,
        raft_listen: SocketAddr,
        nodes: &'a [ClusterNode],
    }
    let given = serde_json::to_value(Given {
        node_id,
        raft_listen,
        nodes,
    })
    .map_err(|e| e.to_string())?;
    serde_json::from_value(given).map_err(|e| e.to_string())
}

/// Sets up (or refreshes) a local pair in `dir`: two controllers and the watch, each with its
/// own certificate for its address, the same `[cluster]` nodes, and the same tokens.
pub fn setup_pair(dir: &Path, o: &PairOptions) -> Result<LocalPair, LocalError> {
    let c = common(dir, &o.cluster_id)?;
    let fsync = o.journal_fsync;
    let voters = [Voter::Controller, Voter::Controller, Voter::Watch];
    let members: Vec<ClusterNode> = o
        .nodes
        .iter()
        .zip(voters)
        .enumerate()
        .map(|(k, (listen, voter))| ClusterNode {
            id: k as u64 + 1,
            voter,
            raft_address: listen.raft.to_string(),
            api_url: format!("https://{}", listen.api),
        })
        .collect();
    let mut nodes = Vec::new();
    for (k, listen) in o.nodes.iter().enumerate() {
        let id = k as u64 + 1;
        let name = PAIR_NAMES[k];
        let cert = format!("node-{id}");
        let mut spec = IssueSpec::local([ordo_net::identity::controller_uri(&o.cluster_id)]);
        for ip in [listen.api.ip(), listen.raft.ip()] {
            if !spec.ip_addresses.contains(&ip) {
                spec.ip_addresses.push(ip);
            }
        }
        issue_if_missing(&c.certs_dir, &cert, &spec)?;
        let path = c.dir.join(format!("{name}.toml"));
        let cluster = cluster_config(id, listen.raft, &members).map_err(config_error(&path))?;
        let file = ControllerFile {
            controller_id: name.to_owned(),
            cluster_id: o.cluster_id.clone(),
            data_dir: c.dir.join(name),
            listen: listen.api,
            tls: ordo_controller::config::TlsConfig {
                certificate: c.cert(&format!("{cert}.pem")),
                key: c.cert(&format!("{cert}.key")),
                client_certificate: c.cert(&format!("{cert}.pem")),
                client_key: c.cert(&format!("{cert}.key")),
                ca: c.ca.clone(),
            },
            tokens: c.controller_tokens(),
            limits: ordo_controller::config::Limits {
                journal_fsync: fsync,
                ..Default::default()
            },
            retention: Default::default(),
            agents: Default::default(),
            cluster: Some(cluster),
            plan: Default::default(),
        };
        write_config(
            &path,
            "controller",
            file.to_toml().map_err(config_error(&path))?,
        )?;
        nodes.push(PairNode {
            id,
            name: name.to_owned(),
            voter: voters[k],
            config: path,
            api_url: members[k].api_url.clone(),
            raft_address: members[k].raft_address.clone(),
        });
    }
    let agent_configs = c.agents(&o.agents, fsync)?;
    let controllers: Vec<String> = nodes
        .iter()
        .filter(|n| n.voter == Voter::Controller)
        .map(|n| n.api_url.clone())
        .collect();
    let cockpit = match o.cockpit_listen {
        None => None,
        Some(listen) => Some(c.cockpit(listen, controllers)?),
    };
    Ok(LocalPair {
        dir: c.dir,
        ca: c.ca,
        nodes,
        agent_configs,
        cockpit,
        admin_token: c.admin_token,
        cockpit_token: c.cockpit_token,
        viewer_token: c.viewer_token,
    })
}

fn config_error(path: &Path) -> impl FnOnce(String) -> LocalError + '_ {
    move |message| LocalError::Config {
        path: path.to_owned(),
        message,
    }
}

/// Writes a server configuration (`server`: controller, agent or cockpit), with a pointer to
/// the documented example of every key.
fn write_config(path: &Path, server: &str, toml: String) -> Result<(), LocalError> {
    let text = format!(
        "# Written by `ordo up` (ordo_cli::local); see deploy/config/{server}.toml for every key.\n\n{toml}"
    );
    write_private(path, &text)
}

/// Reads the configuration file at `path` as `T`, lets `edit` change it, and writes it back.
fn edit_config<T>(
    path: &Path,
    server: &str,
    parse: fn(&str) -> Result<T, String>,
    to_toml: fn(&T) -> Result<String, String>,
    edit: impl FnOnce(&mut T),
) -> Result<(), LocalError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut file = parse(&text).map_err(config_error(path))?;
    edit(&mut file);
    write_config(path, server, to_toml(&file).map_err(config_error(path))?)
}

/// Changes the controller configuration at `path` (before the controller starts).
pub fn edit_controller_config(
    path: &Path,
    edit: impl FnOnce(&mut ControllerFile),
) -> Result<(), LocalError> {
    edit_config(
        path,
        "controller",
        ControllerFile::parse,
        ControllerFile::to_toml,
        edit,
    )
}

/// Changes an agent configuration at `path` (before the agent starts).
pub fn edit_agent_config(path: &Path, edit: impl FnOnce(&mut AgentFile)) -> Result<(), LocalError> {
    edit_config(path, "agent", AgentFile::parse, AgentFile::to_toml, edit)
}

/// Changes the cockpit configuration at `path` (before the cockpit starts).
pub fn edit_cockpit_config(
    path: &Path,
    edit: impl FnOnce(&mut CockpitFile),
) -> Result<(), LocalError> {
    edit_config(
        path,
        "cockpit",
        CockpitFile::parse,
        CockpitFile::to_toml,
        edit,
    )
}

/// A free TCP port on 127.0.0.1 (free when asked; bind soon after).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_up_and_keeps_what_exists() {
        let dir = tempfile::tempdir().unwrap();
        let o = Options {
            cluster_id: "local".into(),
            controller_listen: "127.0.0.1:4443".parse().unwrap(),
            agents: vec![("local".into(), "127.0.0.1:4444".parse().unwrap())],
            journal_fsync: true,
            cockpit_listen: Some("127.0.0.1:8080".parse().unwrap()),
        };
        let a = setup(dir.path(), &o).unwrap();
        let b = setup(dir.path(), &o).unwrap();
        assert_eq!(a.admin_token, b.admin_token);
        assert_eq!(a.agent_configs[0].2, "wss://127.0.0.1:4444");
        let text = std::fs::read_to_string(&a.controller_config).unwrap();
        assert!(text.contains(&token_hash(&a.admin_token)));
        assert!(!text.contains(&a.admin_token));
        // Every written configuration is what its server reads.
        let controller = ordo_controller::config::Config::load(&a.controller_config).unwrap();
        assert!(controller.limits.journal_fsync);
        ordo_agent::config::Config::load(&a.agent_configs[0].1).unwrap();
        let (cockpit, _) = a.cockpit.as_ref().unwrap();
        let cockpit = ordo_cockpit_api::config::Config::load(cockpit).unwrap();
        assert_eq!(cockpit.controller_token, a.cockpit_token);
        // An edit changes only what it changes.
        edit_controller_config(&a.controller_config, |c| c.limits.state_reads_max = 7).unwrap();
        let edited = ordo_controller::config::Config::load(&a.controller_config).unwrap();
        assert_eq!(edited.limits.state_reads_max, 7);
        assert_eq!(edited.tokens.len(), controller.tokens.len());
        edit_agent_config(&a.agent_configs[0].1, |c| c.limits.processes_max = 3).unwrap();
        let agent = ordo_agent::config::Config::load(&a.agent_configs[0].1).unwrap();
        assert_eq!(agent.limits.processes_max, 3);
    }

    /// Whether a client that trusts `ca` accepts `cert` for a server reached at `host`: a
    /// TLS handshake in memory.
    fn accepted_for(ca: &Path, cert: &Path, key: &Path, host: std::net::IpAddr) -> bool {
        use ordo_net::tls::{CaBundle, ClientAuth, TlsMaterial};
        let server = ordo_net::tls::server_config(
            &TlsMaterial::from_pem_files(cert, key).unwrap(),
            ClientAuth::None,
        )
        .unwrap();
        let client =
            ordo_net::tls::client_config(&CaBundle::from_pem_file(ca).unwrap(), None).unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(host.into());
        let mut c = rustls::ClientConnection::new(client, name).unwrap();
        let mut s = rustls::ServerConnection::new(server).unwrap();
        for _ in 0..20 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if s.read_tls(&mut buf.as_slice()).is_ok() && s.process_new_packets().is_err() {
                return false;
            }
            let mut back = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut back).unwrap();
            }
            if c.read_tls(&mut back.as_slice()).is_ok() && c.process_new_packets().is_err() {
                return false;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                return true;
            }
        }
        false
    }

    #[test]
    fn a_pair_has_three_voters_with_certificates_for_their_addresses() {
        ordo_net::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let listen = |host: &str, api: u16, raft: u16| PairListen {
            api: format!("{host}:{api}").parse().unwrap(),
            raft: format!("{host}:{raft}").parse().unwrap(),
        };
        let o = PairOptions {
            cluster_id: "local".into(),
            nodes: [
                listen("127.0.0.1", 5001, 5011),
                listen("127.0.0.2", 5002, 5012),
                listen("127.0.0.3", 5003, 5013),
            ],
            agents: vec![("local".into(), "127.0.0.1:5020".parse().unwrap())],
            journal_fsync: false,
            cockpit_listen: Some("127.0.0.1:5030".parse().unwrap()),
        };
        let a = setup_pair(dir.path(), &o).unwrap();
        let b = setup_pair(dir.path(), &o).unwrap();
        assert_eq!(a.admin_token, b.admin_token);
        let names: Vec<&str> = a.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, PAIR_NAMES);
        let mut all_nodes = None;
        for (k, node) in a.nodes.iter().enumerate() {
            let c = ordo_controller::config::Config::load(&node.config).unwrap();
            let cluster = c.cluster.expect("a [cluster] section");
            assert_eq!(cluster.node_id, k as u64 + 1);
            assert_eq!(cluster.raft_listen, o.nodes[k].raft);
            assert_eq!(cluster.me().api_url, node.api_url);
            // The controller's defaults where nothing was given.
            assert!(cluster.tick_ms > 0 && cluster.election_ticks > cluster.heartbeat_ticks);
            // Every node lists the same voters.
            match &all_nodes {
                None => all_nodes = Some(cluster.nodes.clone()),
                Some(n) => assert_eq!(n, &cluster.nodes),
            }
            assert_eq!(c.data_dir, a.dir.join(PAIR_NAMES[k]));
            assert_eq!(c.tokens.len(), 3);
            assert_eq!(c.listen, o.nodes[k].api);
            // Its certificate names the cluster and covers where it is reached.
            let material =
                ordo_net::tls::TlsMaterial::from_pem_files(&c.tls.certificate, &c.tls.key).unwrap();
            let id = ordo_net::identity::PeerIdentity::from_der(&material.cert_chain[0]).unwrap();
            assert!(id.is_controller("local"), "{id:?}");
            assert_eq!(c.tls.client_certificate, c.tls.certificate);
            let host = o.nodes[k].api.ip();
            assert!(accepted_for(&a.ca, &c.tls.certificate, &c.tls.key, host));
            let other: std::net::IpAddr = "127.0.0.9".parse().unwrap();
            assert!(!accepted_for(&a.ca, &c.tls.certificate, &c.tls.key, other));
        }
        let voters: Vec<Voter> = all_nodes.unwrap().iter().map(|n| n.voter).collect();
        assert_eq!(voters, [Voter::Controller, Voter::Controller, Voter::Watch]);
        // The cockpit knows the two controllers, not the watch.
        let (cockpit, _) = a.cockpit.as_ref().unwrap();
        let cockpit = ordo_cockpit_api::config::Config::load(cockpit).unwrap();
        assert_eq!(
            cockpit.controllers,
            ["https://127.0.0.1:5001", "https://127.0.0.2:5002"]
        );
    }
}

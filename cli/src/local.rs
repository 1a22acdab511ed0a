//! A local installation in one directory: certificates, tokens and server configurations for
//! a controller and its agents on 127.0.0.1. `ordo up` and the multi-process tests use it.
//!
//! Layout under the directory:
//!
//! ```text
//! certs/ca.pem, ca.key                         the local CA (cluster id as given)
//! certs/controller.pem/.key                    controller API server certificate
//! certs/controller-client.pem/.key             client certificate towards agents
//! certs/agent-<id>.pem/.key                    each agent's server certificate
//! admin.token, cockpit.token, viewer.token    API tokens (0600); configs hold their SHA-256
//! controller.toml, agent-<id>.toml, cockpit.toml  server configurations
//! controller/, agent-<id>/                     their data directories
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

/// Sets up (or refreshes) a local installation in `dir`.
pub fn setup(dir: &Path, o: &Options) -> Result<Local, LocalError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dir = dir.canonicalize().map_err(io(dir))?;
    let certs_dir = dir.join("certs");
    let ca = certs::init_ca(&certs_dir, &o.cluster_id)?;
    issue_if_missing(
        &certs_dir,
        "controller",
        &IssueSpec::local(Vec::<String>::new()),
    )?;
    issue_if_missing(
        &certs_dir,
        "controller-client",
        &IssueSpec::local([ordo_net::identity::controller_uri(&o.cluster_id)]),
    )?;
    let admin_token = token_file(&dir.join("admin.token"))?;
    let cockpit_token = token_file(&dir.join("cockpit.token"))?;
    let viewer_token = token_file(&dir.join("viewer.token"))?;
    let fsync = o.journal_fsync;
    let controller_config = dir.join("controller.toml");
    let cert = |p: &str| certs_dir.join(p);
    let token = |name: &str, token: &str, role: Role| ordo_controller::config::TokenConfig {
        name: name.to_owned(),
        sha256: token_hash(token),
        role,
    };
    let controller = ControllerFile {
        controller_id: "primary".to_owned(),
        cluster_id: o.cluster_id.clone(),
        data_dir: dir.join("controller"),
        listen: o.controller_listen,
        tls: ordo_controller::config::TlsConfig {
            certificate: cert("controller.pem"),
            key: cert("controller.key"),
            client_certificate: cert("controller-client.pem"),
            client_key: cert("controller-client.key"),
            ca: ca.cert_path.clone(),
        },
        tokens: vec![
            token("admin", &admin_token, Role::Admin),
            token("cockpit", &cockpit_token, Role::Admin),
            token("viewer", &viewer_token, Role::Viewer),
        ],
        limits: ordo_controller::config::Limits {
            journal_fsync: fsync,
            ..Default::default()
        },
        retention: Default::default(),
        agents: Default::default(),
        cluster: None,
    };
    write_config(
        &controller_config,
        "controller",
        controller
            .to_toml()
            .map_err(config_error(&controller_config))?,
    )?;
    let mut agent_configs = Vec::new();
    for (id, listen) in &o.agents {
        let name = format!("agent-{id}");
        issue_if_missing(
            &certs_dir,
            &name,
            &IssueSpec::local([ordo_net::identity::agent_uri(id)]),
        )?;
        let path = dir.join(format!("{name}.toml"));
        let agent = AgentFile {
            agent_id: id.clone(),
            listen: *listen,
            data_dir: dir.join(&name),
            tls: ordo_agent::config::TlsConfig {
                certificate: cert(&format!("{name}.pem")),
                key: cert(&format!("{name}.key")),
                controller_ca: ca.cert_path.clone(),
            },
            limits: ordo_agent::config::Limits {
                journal_fsync: fsync,
                ..Default::default()
            },
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
    let cockpit = match o.cockpit_listen {
        None => None,
        Some(listen) => {
            let path = dir.join("cockpit.toml");
            let user = |name: &str, token: &str, role: Role| ordo_cockpit_api::config::UserConfig {
                name: name.to_owned(),
                sha256: token_hash(token),
                role,
            };
            // Plain HTTP (no `tls`), on 127.0.0.1 only.
            let cockpit = CockpitFile {
                controllers: vec![format!("https://127.0.0.1:{}", o.controller_listen.port())],
                controller_ca: ca.cert_path.clone(),
                controller_token: None,
                controller_token_file: Some(dir.join("cockpit.token")),
                listen,
                tls: None,
                users: vec![
                    user("admin", &admin_token, Role::Admin),
                    user("viewer", &viewer_token, Role::Viewer),
                ],
                follow: Default::default(),
                limits: Default::default(),
            };
            write_config(
                &path,
                "cockpit",
                cockpit.to_toml().map_err(config_error(&path))?,
            )?;
            Some((path, format!("http://127.0.0.1:{}", listen.port())))
        }
    };
    Ok(Local {
        cockpit,
        ca: ca.cert_path,
        controller_url: format!("https://127.0.0.1:{}", o.controller_listen.port()),
        dir,
        controller_config,
        agent_configs,
        admin_token,
        cockpit_token,
        viewer_token,
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
}

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
//! configs), so running it again resumes the same installation.

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
    #[error("cannot read random bytes for a token: {0}")]
    Random(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A new random API token: 32 bytes from the OS, hex.
pub fn new_token() -> Result<String, LocalError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| LocalError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The SHA-256 of a token, hex, as server configurations store it.
pub fn token_sha256(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
            let t = new_token()?;
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
    let c = |p: &str| certs_dir.join(p).display().to_string();
    let text = format!(
        r#"# Written by `ordo up`; see deploy/config/controller.toml for every key.
controller_id = "primary"
cluster_id = "{cluster}"
data_dir = "{data}"
listen = "{listen}"

[tls]
certificate = "{cert}"
key = "{key}"
client_certificate = "{ccert}"
client_key = "{ckey}"
ca = "{ca}"

[[tokens]]
name = "admin"
sha256 = "{admin}"
role = "admin"

[[tokens]]
name = "cockpit"
sha256 = "{cockpit}"
role = "admin"

[[tokens]]
name = "viewer"
sha256 = "{viewer}"
role = "viewer"

[limits]
journal_fsync = {fsync}
"#,
        cluster = o.cluster_id,
        data = dir.join("controller").display(),
        listen = o.controller_listen,
        cert = c("controller.pem"),
        key = c("controller.key"),
        ccert = c("controller-client.pem"),
        ckey = c("controller-client.key"),
        ca = ca.cert_path.display(),
        admin = token_sha256(&admin_token),
        cockpit = token_sha256(&cockpit_token),
        viewer = token_sha256(&viewer_token),
    );
    write_private(&controller_config, &text)?;
    let mut agent_configs = Vec::new();
    for (id, listen) in &o.agents {
        let name = format!("agent-{id}");
        issue_if_missing(
            &certs_dir,
            &name,
            &IssueSpec::local([ordo_net::identity::agent_uri(id)]),
        )?;
        let path = dir.join(format!("{name}.toml"));
        let text = format!(
            r#"# Written by `ordo up`; see deploy/config/agent.toml for every key.
agent_id = "{id}"
listen = "{listen}"
data_dir = "{data}"

[tls]
certificate = "{cert}"
key = "{key}"
controller_ca = "{ca}"

[limits]
journal_fsync = {fsync}
"#,
            data = dir.join(&name).display(),
            cert = c(&format!("{name}.pem")),
            key = c(&format!("{name}.key")),
            ca = ca.cert_path.display(),
        );
        write_private(&path, &text)?;
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
            let text = format!(
                r#"# Written by `ordo up`; see deploy/config/cockpit.toml for every key.
# Plain HTTP on 127.0.0.1 only.
controllers = ["https://127.0.0.1:{controller_port}"]
controller_ca = "{ca}"
controller_token_file = "{token_file}"
listen = "{listen}"

[[users]]
name = "admin"
sha256 = "{admin}"
role = "admin"

[[users]]
name = "viewer"
sha256 = "{viewer}"
role = "viewer"
"#,
                controller_port = o.controller_listen.port(),
                ca = ca.cert_path.display(),
                token_file = dir.join("cockpit.token").display(),
                admin = token_sha256(&admin_token),
                viewer = token_sha256(&viewer_token),
            );
            write_private(&path, &text)?;
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
        assert!(text.contains(&token_sha256(&a.admin_token)));
        assert!(!text.contains(&a.admin_token));
    }
}

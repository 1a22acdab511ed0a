//! `ordo certs`: a cluster CA, certificates it signs, and API tokens.
//!
//! - `certs init [--dir D] [--cluster-id ID]` writes `D/ca.pem` and `D/ca.key` (kept if there);
//! - `certs issue NAME --dir D [--dns ..] [--ip ..] [--uri ..] [--server] [--client]` writes
//!   `D/NAME.pem` and `D/NAME.key` signed by the CA in `D` (neither `--server` nor `--client`
//!   means a client certificate, and a server one too when DNS names or IPs are given);
//! - `certs token [--role R] [--name N]` prints a new token (32 random bytes from the OS, hex)
//!   and the `[[tokens]]` entry for a server configuration, which holds only its SHA-256.

use crate::exit::Failure;
use ordo_net::certs::{self, IssueSpec};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create the cluster's certificate authority (kept when it exists).
    Init(InitArgs),
    /// Issue a certificate signed by the CA.
    Issue(IssueArgs),
    /// Make a new API token and print its configuration entry.
    Token(TokenArgs),
}

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Folder of the CA files.
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// Cluster id named in the CA.
    #[arg(long, default_value = "main")]
    pub cluster_id: String,
}

#[derive(clap::Args, Debug)]
pub struct IssueArgs {
    /// Certificate name: files NAME.pem and NAME.key, common name NAME.
    pub name: String,
    /// Folder of the CA; the certificate is written there.
    #[arg(long)]
    pub dir: PathBuf,
    /// DNS name a server is reached by (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// IP address a server is reached by (repeatable).
    #[arg(long)]
    pub ip: Vec<IpAddr>,
    /// Identity, e.g. ordo:agent:a1 or ordo:controller:main (repeatable).
    #[arg(long)]
    pub uri: Vec<String>,
    /// Usable by a TLS server (needs --dns or --ip). Without --server and --client: a client
    /// certificate, and a server one too when --dns or --ip is given.
    #[arg(long)]
    pub server: bool,
    /// Usable by a TLS client.
    #[arg(long)]
    pub client: bool,
    /// Lifetime in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct TokenArgs {
    /// What the token may do.
    #[arg(long, value_enum, default_value_t = Role::Admin)]
    pub role: Role,
    /// Name of the entry in the configuration (default: the role).
    #[arg(long)]
    pub name: Option<String>,
    /// Print `{token, name, sha256, role}` as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Init(a) => {
            let ca = certs::init_ca(&a.dir, &a.cluster_id).map_err(certs_failure)?;
            if ca.created {
                println!(
                    "created the CA of cluster {}: {}",
                    a.cluster_id,
                    ca.cert_path.display()
                );
            } else {
                println!("kept the existing CA: {}", ca.cert_path.display());
            }
        }
        Command::Issue(a) => {
            let default = !a.server && !a.client;
            let named = !a.dns.is_empty() || !a.ip.is_empty();
            let spec = IssueSpec {
                dns_names: a.dns.clone(),
                ip_addresses: a.ip.clone(),
                uri_sans: a.uri.clone(),
                server: a.server || (default && named),
                client: a.client || default,
                validity_days: a.days,
            };
            let files = certs::issue(&a.dir, &a.name, &spec).map_err(certs_failure)?;
            println!(
                "issued {}: {} and {}",
                a.name,
                files.cert_path.display(),
                files.key_path.display()
            );
        }
        Command::Token(a) => {
            let token = ordo_cli::token::new_token()
                .map_err(|e| Failure::failed(format!("making a token: {e}")))?;
            let sha = ordo_api::auth::token_hash(&token);
            let name = a.name.clone().unwrap_or_else(|| a.role.name().to_owned());
            if a.json {
                crate::output::print_json(&serde_json::json!({
                    "token": token, "name": name, "sha256": sha, "role": a.role.name(),
                }));
            } else {
                println!("token: {token}");
                println!();
                println!(
                    "# Add to the server configuration; it keeps only the SHA-256, keep the token secret."
                );
                println!("[[tokens]]");
                println!("name = {}", toml_string(&name));
                println!("sha256 = \"{sha}\"");
                println!("role = \"{}\"", a.role.name());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn certs_failure(e: certs::CertError) -> Failure {
    match e {
        certs::CertError::InvalidName { .. } | certs::CertError::InvalidSpec { .. } => {
            Failure::usage(e.to_string())
        }
        other => Failure::failed(other.to_string()),
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

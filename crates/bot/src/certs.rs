//! `bot certs init` and `bot certs issue`: a small CA for a fleet's TLS
//! (the CA code is `bot_broker::certs`).

use std::path::PathBuf;
use std::process::ExitCode;

use bot_broker::certs::{Kind, init_ca, issue};
use clap::{Args, Subcommand};

/// TLS certificates for a fleet.
#[derive(Debug, Clone, Args)]
pub(crate) struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Clone, Subcommand)]
enum CertsCommand {
    /// Make a CA: DIR/ca.crt (give it to every client as its trusted CA)
    /// and DIR/ca.key (keep it offline, mode 0600).
    Init {
        /// Where the CA goes.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Issue a certificate signed by the CA of DIR: DIR/NAME.crt and
    /// DIR/NAME.key.
    Issue {
        /// `server` (a broker: server authentication for its --san names) or
        /// `agent` / `operator` (a client: NAME as the certificate's CN).
        #[arg(value_parser = ["server", "agent", "operator"])]
        kind: String,
        /// The certificate's name (a broker's host name, an agent's id or name).
        name: String,
        /// Host names and IP addresses of a broker (repeatable).
        #[arg(long)]
        san: Vec<String>,
        /// Where the CA is, and where the certificate goes.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

pub(crate) fn run(args: CertsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CertsCommand::Init { dir } => {
            let ca = init_ca(&dir)?;
            println!("CA: {} (and ca.key, keep it safe)", ca.display());
        }
        CertsCommand::Issue {
            kind,
            name,
            san,
            dir,
        } => {
            let k = if kind == "server" {
                Kind::Server
            } else {
                Kind::Client
            };
            let (crt, _) = issue(&dir, k, &name, &san).map_err(|e| match e {
                bot_broker::certs::CertError::Io { path, source } if path.ends_with("ca.key") => {
                    anyhow::anyhow!(
                        "cannot read {} (run bot certs init): {source}",
                        path.display()
                    )
                }
                e => e.into(),
            })?;
            println!("{kind} certificate: {}", crt.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `bot certs init` and `bot certs issue`: a small CA for a fleet's TLS
//! (rcgen, ECDSA P-256): the CA, then a certificate per broker (server
//! authentication, with its host names and addresses) or per agent/operator
//! (client authentication, the name as CN, for brokers that take the
//! certificate's CN as the user name, e.g. mosquitto's
//! `use_identity_as_username`). Keys are written mode 0600.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The CA's distinguished name; `issue` rebuilds the issuer from it and the
/// CA key, so it never changes.
const CA_NAME: &str = "bot fleet CA";

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

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, CA_NAME);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

fn write(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .with_context(|| format!("cannot create {} (never overwritten)", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

pub(crate) fn run(args: CertsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        CertsCommand::Init { dir } => {
            std::fs::create_dir_all(&dir)?;
            let key = KeyPair::generate()?;
            let cert = ca_params()?.self_signed(&key)?;
            write(&dir.join("ca.key"), &key.serialize_pem(), true)?;
            write(&dir.join("ca.crt"), &cert.pem(), false)?;
            println!(
                "CA: {} (and ca.key, keep it safe)",
                dir.join("ca.crt").display()
            );
        }
        CertsCommand::Issue {
            kind,
            name,
            san,
            dir,
        } => {
            let ca_key_path = dir.join("ca.key");
            let ca_key =
                KeyPair::from_pem(&std::fs::read_to_string(&ca_key_path).with_context(|| {
                    format!("cannot read {} (run bot certs init)", ca_key_path.display())
                })?)?;
            let issuer = Issuer::new(ca_params()?, ca_key);
            let sans = if kind == "server" && san.is_empty() {
                vec![name.clone()]
            } else {
                san
            };
            let mut p = CertificateParams::new(sans)?;
            p.distinguished_name.push(DnType::CommonName, name.as_str());
            p.extended_key_usages = vec![if kind == "server" {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            let key = KeyPair::generate()?;
            let cert = p.signed_by(&key, &issuer)?;
            let file = name.replace(['/', ' '], "_");
            write(&dir.join(format!("{file}.key")), &key.serialize_pem(), true)?;
            write(&dir.join(format!("{file}.crt")), &cert.pem(), false)?;
            println!(
                "{kind} certificate: {}",
                dir.join(format!("{file}.crt")).display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! A small CA for a fleet's TLS (rcgen, ECDSA P-256): the CA, then a
//! certificate per broker (server authentication, with its host names and
//! addresses) or per agent/operator (client authentication, the name as CN,
//! for brokers that take the certificate's CN as the user name, e.g.
//! mosquitto's `use_identity_as_username`). Keys are written mode 0600 and
//! no file is ever overwritten. `bot certs` and `bot up --tls-listen` use it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::TlsFiles;

/// The CA's distinguished name; [`issue`] rebuilds the issuer from it and
/// the CA key, so it never changes.
const CA_NAME: &str = "bot fleet CA";

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A broker or API endpoint: server authentication for its names.
    Server,
    /// An agent or operator: client authentication, the name as CN.
    Client,
}

/// Why a certificate could not be made; names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// rcgen refused (a bad name, a bad key file).
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
}

fn ca_params() -> Result<CertificateParams, CertError> {
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

fn write(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CertError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

/// Makes a CA in `dir`: `ca.crt` (every client's trusted CA) and `ca.key`
/// (mode 0600). Returns the certificate's path.
pub fn init_ca(dir: &Path) -> Result<PathBuf, CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let key = KeyPair::generate()?;
    let cert = ca_params()?.self_signed(&key)?;
    write(&dir.join("ca.key"), &key.serialize_pem(), true)?;
    let path = dir.join("ca.crt");
    write(&path, &cert.pem(), false)?;
    Ok(path)
}

/// Issues `DIR/NAME.crt` and `DIR/NAME.key`, signed by the CA of `dir`. A
/// server certificate is valid for `sans` (host names and IP addresses;
/// `name` when empty). Returns (certificate, key) paths.
pub fn issue(
    dir: &Path,
    kind: Kind,
    name: &str,
    sans: &[String],
) -> Result<(PathBuf, PathBuf), CertError> {
    let ca_key_path = dir.join("ca.key");
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(&ca_key_path).map_err(|source| {
        CertError::Io {
            path: ca_key_path.clone(),
            source,
        }
    })?)?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let sans = match (kind, sans.is_empty()) {
        (Kind::Server, true) => vec![name.to_owned()],
        _ => sans.to_vec(),
    };
    let mut p = CertificateParams::new(sans)?;
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![match kind {
        Kind::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Kind::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    let file = name.replace(['/', ' '], "_");
    let (crt, key_path) = (
        dir.join(format!("{file}.crt")),
        dir.join(format!("{file}.key")),
    );
    write(&key_path, &key.serialize_pem(), true)?;
    write(&crt, &cert.pem(), false)?;
    Ok((crt, key_path))
}

/// The TLS files of `bot up` in `dir`, made on first use: a CA (`ca.crt`,
/// what clients trust) and a broker certificate (`broker.crt`) for
/// `localhost`, 127.0.0.1, ::1, this host's name and `extra` names.
pub fn local(dir: &Path, extra: &[String]) -> Result<TlsFiles, CertError> {
    if !dir.join("ca.key").exists() {
        init_ca(dir)?;
    }
    let (cert, key) = (dir.join("broker.crt"), dir.join("broker.key"));
    if !cert.exists() {
        let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let h = h.trim();
            if !h.is_empty() {
                sans.push(h.to_owned());
            }
        }
        for e in extra {
            if !sans.contains(e) {
                sans.push(e.clone());
            }
        }
        issue(dir, Kind::Server, "broker", &sans)?;
    }
    Ok(TlsFiles {
        cert,
        key,
        client_ca: None,
    })
}

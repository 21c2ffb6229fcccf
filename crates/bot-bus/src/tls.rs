//! TLS for `mqtts://` and `wss://` brokers: a rustls client configuration
//! with the ring provider, trusting a CA file (or the system's roots),
//! optionally with a client certificate (mutual TLS). Also the matching
//! server configuration, for the TLS listeners of `bot up` (the embedded
//! broker's and the HTTP API's), so both ends read PEM files one way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Where the TLS material is: all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file of the CA certificate(s) to trust; default: the system's.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain), for brokers that require one.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// Why a TLS configuration cannot be built; names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no usable certificate or key.
    #[error("{path}: {reason}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Only one of the certificate and the key was given.
    #[error("a client certificate needs both a certificate file and a key file")]
    HalfClientAuth,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// No CA file and no usable system roots.
    #[error("no CA file given and no system root certificates found")]
    NoRoots,
    /// The client CA cannot verify client certificates.
    #[error("{path}: cannot verify client certificates with it: {reason}")]
    ClientCa {
        /// The CA file.
        path: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The certificates in the PEM file `path` (at least one).
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Bad {
            path: path.to_owned(),
            reason: format!("not PEM certificates: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Bad {
            path: path.to_owned(),
            reason: "no certificate in it (expected -----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

/// The system's root certificates (empty if none could be read).
pub fn system_roots() -> Vec<CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().certs
}

/// The private key in the PEM file `path` (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| TlsError::Bad {
            path: path.to_owned(),
            reason: format!("not a PEM private key: {e}"),
        })?
        .ok_or_else(|| TlsError::Bad {
            path: path.to_owned(),
            reason: "no private key in it".into(),
        })
}

/// A CA file's certificates as a root store.
fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca)? {
        roots.add(c).map_err(|e| TlsError::Bad {
            path: ca.to_owned(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// A TLS server configuration (ring provider, TLS 1.2 and 1.3) presenting
/// `cert` (PEM chain) with `key`. With `client_ca`, every client must
/// present a certificate signed by that CA (mutual TLS); without it, none
/// is asked for.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider,
            )
            .build()
            .map_err(|e| TlsError::ClientCa {
                path: ca.to_owned(),
                reason: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(Arc::new(
        builder.with_single_cert(certs(cert)?, private_key(key)?)?,
    ))
}

/// The client configuration for `files`.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = match &files.ca_file {
        Some(ca) => roots(ca)?,
        None => {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(system_roots());
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
            roots
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&files.cert_file, &files.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            builder.with_client_auth_cert(certs(cert)?, private_key(key)?)?
        }
        _ => return Err(TlsError::HalfClientAuth),
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_material_is_named() {
        let dir = std::env::temp_dir().join(format!("bot-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        let e = client_config(&TlsFiles {
            ca_file: Some(junk.clone()),
            ..TlsFiles::default()
        })
        .expect_err("junk CA");
        assert!(
            e.to_string().contains("junk.pem") && e.to_string().contains("no certificate"),
            "{e}"
        );
        let e = client_config(&TlsFiles {
            ca_file: Some(dir.join("missing.pem")),
            ..TlsFiles::default()
        })
        .expect_err("missing CA");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = client_config(&TlsFiles {
            cert_file: Some(junk),
            ..TlsFiles::default()
        })
        .expect_err("half");
        assert!(
            matches!(e, TlsError::HalfClientAuth | TlsError::NoRoots),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

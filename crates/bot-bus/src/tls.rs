//! TLS for `mqtts://` brokers: a rustls client configuration with the ring
//! provider, trusting a CA file (or the system's roots), optionally with a
//! client certificate (mutual TLS).

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
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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

/// The client configuration for `files`.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match &files.ca_file {
        Some(ca) => {
            for c in certs(ca)? {
                roots.add(c).map_err(|e| TlsError::Bad {
                    path: ca.clone(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (&files.cert_file, &files.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certs(cert)?;
            let bytes = read(key)?;
            let key_der: PrivateKeyDer<'static> =
                rustls_pemfile::private_key(&mut bytes.as_slice())
                    .map_err(|e| TlsError::Bad {
                        path: key.clone(),
                        reason: format!("not a PEM private key: {e}"),
                    })?
                    .ok_or_else(|| TlsError::Bad {
                        path: key.clone(),
                        reason: "no private key in it".into(),
                    })?;
            builder.with_client_auth_cert(chain, key_der)?
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

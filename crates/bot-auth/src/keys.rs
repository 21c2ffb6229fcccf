//! Ed25519 keys: [`SecretKey`] (a PKCS#8 PEM file, mode 0600, the same
//! format `openssl genpkey -algorithm ed25519` writes) and [`PublicKey`]
//! (text `ed25519:<base64 of the 32 bytes>`, as written in an agent's
//! `[[trust]]` table).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Largest key file read (a PEM Ed25519 key is ~120 bytes).
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

/// Why a key could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS#8 PEM private key.
    #[error("{path}: not an Ed25519 private key (PKCS#8 PEM): {reason}")]
    Format {
        /// The key file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The private key file can be read by other users.
    #[error("{path}: mode {mode:o} lets other users read the private key; run `chmod 600 {path}`")]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// No randomness from the operating system.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
    /// A public key in text form is malformed.
    #[error("bad public key \"{text}\": {reason} (expected ed25519:<base64 of 32 bytes>)")]
    Public {
        /// The text, cut.
        text: String,
        /// What is wrong.
        reason: String,
    },
}

/// A private Ed25519 key.
pub struct SecretKey {
    key: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("SecretKey")
            .field("public", &self.public().to_string())
            .finish()
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(SecretKey {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Reads a PKCS#8 PEM private key. Refuses a file that group or others
    /// may read (as ssh does), so a key left world-readable is noticed.
    pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        if meta.len() > MAX_KEY_FILE_BYTES {
            return Err(KeyError::Format {
                path: path.to_owned(),
                reason: format!("{} bytes is too large for a key", meta.len()),
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let key = SigningKey::from_pkcs8_pem(&text).map_err(|e| KeyError::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(SecretKey { key })
    }

    /// Writes the key as a new file, mode 0600 (its directory is created,
    /// mode 0700). Never overwrites an existing file.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| KeyError::Format {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(pem.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// The key at `path`, made (and saved) first if the file does not exist.
    /// Returns the key and whether it was made now.
    pub fn load_or_create(path: &Path) -> Result<(SecretKey, bool), KeyError> {
        if path.exists() {
            return Ok((SecretKey::load(path)?, false));
        }
        let key = SecretKey::generate()?;
        match key.save(path) {
            Ok(()) => Ok((key, true)),
            // Another process made it meanwhile: use theirs.
            Err(KeyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                Ok((SecretKey::load(path)?, false))
            }
            Err(e) => Err(e),
        }
    }
}

/// A public Ed25519 key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The 32 bytes.
    pub fn bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The key from its 32 bytes (a weak key is refused).
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<PublicKey> {
        let k = VerifyingKey::from_bytes(bytes).ok()?;
        (!k.is_weak()).then_some(PublicKey(k))
    }

    /// The key's id in signatures: base64url of the 32 bytes, no padding
    /// (43 characters).
    pub fn id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    /// The key from its [`PublicKey::id`].
    pub fn from_id(id: &str) -> Option<PublicKey> {
        let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
        PublicKey::from_bytes(&bytes.try_into().ok()?)
    }

    /// A short fingerprint for humans and logs: the id's first 12 characters.
    pub fn short(&self) -> String {
        self.id()[..12].to_owned()
    }

    /// Strict verification (no malleable or small-order signatures).
    pub fn verify(&self, message: &[u8], sig: &[u8; 64]) -> bool {
        let sig = Signature::from_bytes(sig);
        self.0.verify_strict(message, &sig).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", STANDARD.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<PublicKey, KeyError> {
        let bad = |reason: &str| KeyError::Public {
            text: text.chars().take(80).collect(),
            reason: reason.to_owned(),
        };
        let b64 = text
            .trim()
            .strip_prefix("ed25519:")
            .ok_or_else(|| bad("missing the ed25519: prefix"))?;
        let bytes = STANDARD
            .decode(b64)
            .or_else(|_| URL_SAFE_NO_PAD.decode(b64))
            .map_err(|_| bad("not base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| bad(&format!("{} bytes, not 32", v.len())))?;
        PublicKey::from_bytes(&bytes).ok_or_else(|| bad("not a valid Ed25519 public key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bot-auth-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    }

    #[test]
    fn save_load_round_trip_with_mode_0600() {
        let dir = temp("keys");
        let path = dir.join("sub/op.key");
        let k = SecretKey::generate().expect("key");
        k.save(&path).expect("save");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = SecretKey::load(&path).expect("load");
        assert_eq!(back.public(), k.public());
        assert!(k.save(&path).is_err(), "never overwrites");
        let (again, made) = SecretKey::load_or_create(&path).expect("existing");
        assert!(!made);
        assert_eq!(again.public(), k.public());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_readable_key_file_is_refused() {
        let dir = temp("perm");
        let path = dir.join("op.key");
        SecretKey::generate()
            .expect("key")
            .save(&path)
            .expect("save");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = SecretKey::load(&path).expect_err("refused");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = temp("garbage");
        let path = dir.join("op.key");
        std::fs::write(&path, "hello").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let e = SecretKey::load(&path).expect_err("garbage");
        assert!(e.to_string().contains("not an Ed25519 private key"), "{e}");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn public_key_text_round_trips_and_bad_text_is_named() {
        let k = SecretKey::generate().expect("key").public();
        let text = k.to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(text.parse::<PublicKey>().expect("parse"), k);
        assert_eq!(PublicKey::from_id(&k.id()), Some(k));
        for bad in ["", "ed25519:", "rsa:AAAA", "ed25519:!!!", "ed25519:AAAA"] {
            let e = bad.parse::<PublicKey>().expect_err(bad);
            assert!(e.to_string().contains("bad public key"), "{e}");
        }
    }

    #[test]
    fn signatures_verify_only_for_the_same_message_and_key() {
        let k = SecretKey::generate().expect("key");
        let other = SecretKey::generate().expect("key");
        let sig = k.sign(b"hello");
        assert!(k.public().verify(b"hello", &sig));
        assert!(!k.public().verify(b"hellO", &sig));
        assert!(!other.public().verify(b"hello", &sig));
    }
}

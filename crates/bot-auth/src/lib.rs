//! `bot-auth`: who may make an agent do what.
//!
//! - [`keys`]: Ed25519 keys — operator keys (`bot keys new`), the server's
//!   key — as PKCS#8 PEM files (mode 0600) and `ed25519:<base64>` public keys.
//! - [`sign`]: [`Signer`], the one constructor of requests (one clock, one
//!   id and nonce source, one key), and the `sig` field's format.
//! - [`policy`]: [`Trust`], the keys an agent trusts and what each may do,
//!   and [`Trust::admit`], the checks every request passes on the agent
//!   before anything runs.
//!
//! Pure computation apart from key files and the OS's randomness: no
//! network, no async. The agent links it (it is small: ed25519-dalek,
//! base64, sha2).

pub mod keys;
pub mod paths;
pub mod policy;
pub mod sign;

pub use keys::{KeyError, PublicKey, SecretKey};
pub use policy::{Admitted, Rejection, Trust, TrustEntry, Trusted};
pub use sign::{Signer, now_ms};

/// The SHA-256 of `bytes`, as 64 hex digits (audit lines record a digest of
/// a request's arguments, not the arguments).
pub fn digest_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

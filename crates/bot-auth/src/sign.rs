//! Signing requests: the one place a [`Request`] is made ([`Signer`]: one
//! clock, one id and nonce source, one key), and the `sig` field's format.
//!
//! `sig` = `<key id>.<signature>`: the signer's public key (base64url, no
//! padding, 43 characters) and the Ed25519 signature over
//! [`Request::signing_bytes`] (base64url, 86 characters). The key id only
//! says which key to check with; a receiver that does not trust that key
//! refuses the request before verifying anything.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bot_proto::{Draft, Request};

use crate::keys::{PublicKey, SecretKey};

/// Unix time in milliseconds: the clock of every request made here.
pub use bot_proto::now_ms;

/// A fresh nonce: 128 random bits as 32 hex digits.
pub fn nonce() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: still unique per process and time (the id is a
        // UUIDv7, so a request stays unique; replay protection keeps its
        // id check).
        b = uuid::Uuid::now_v7().into_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Makes and signs requests with one key.
#[derive(Debug)]
pub struct Signer {
    key: SecretKey,
    sender: String,
}

impl Signer {
    /// A signer that puts `sender` (who asks: `alice@ops1`, `server (token
    /// ops)`) in every request.
    pub fn new(key: SecretKey, sender: impl Into<String>) -> Signer {
        Signer {
            key,
            sender: sender.into(),
        }
    }

    /// The public key requests are signed with.
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// A detached signature of `bytes` (`<key id>.<signature>`), for
    /// messages that are not requests (the server's measuring configs).
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        detached(&self.key, bytes)
    }

    /// The sender named in requests.
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// A new signed request: a UUIDv7 id, now, a fresh nonce.
    pub fn request(&self, draft: Draft) -> Request {
        self.request_as(
            draft,
            &self.sender,
            uuid::Uuid::now_v7().simple().to_string(),
            now_ms(),
        )
    }

    /// A signed request with a given id and creation time (the task engine
    /// resending a RUNNING target's request after a restart: same id, so an
    /// agent that already ran it refuses the copy).
    pub fn request_at(&self, draft: Draft, id: String, created_ms: u64) -> Request {
        self.request_as(draft, &self.sender, id, created_ms)
    }

    /// A new signed request naming another sender (the server names the API
    /// token that asked).
    pub fn request_for(&self, draft: Draft, sender: &str) -> Request {
        self.request_as(
            draft,
            sender,
            uuid::Uuid::now_v7().simple().to_string(),
            now_ms(),
        )
    }

    /// A signed request with every varying part given (the task engine:
    /// the sender names the API token behind the task).
    pub fn request_as(&self, draft: Draft, sender: &str, id: String, created_ms: u64) -> Request {
        let mut r = Request::from_draft(draft, sender.to_owned(), id, created_ms, nonce());
        self.sign(&mut r);
        r
    }

    /// (Re)signs `request` in place.
    pub fn sign(&self, request: &mut Request) {
        request.sig = Some(detached(&self.key, &request.signing_bytes()));
    }
}

/// A `sig` field for `bytes`: `<key id>.<signature>`.
pub fn detached(key: &SecretKey, bytes: &[u8]) -> String {
    format!(
        "{}.{}",
        key.public().id(),
        URL_SAFE_NO_PAD.encode(key.sign(bytes))
    )
}

/// Checks that `sig` is a signature of `bytes` by `key`; the error says why
/// not (unsigned, malformed, another key, or not matching the bytes).
pub fn check(sig: Option<&str>, bytes: &[u8], key: &PublicKey) -> Result<(), String> {
    let sig = sig.ok_or("unsigned")?;
    // Compare the key id as text: no point decompression for the claimed key.
    let (id, sig) = split_sig(sig)?;
    if id != key.id() {
        return Err(format!(
            "signed by key {}, expected {}",
            id.get(..12).unwrap_or(id),
            key.short()
        ));
    }
    if key.verify(bytes, &sig) {
        Ok(())
    } else {
        Err("the signature does not match (changed after signing, or forged)".into())
    }
}

/// A `sig` field taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigParts {
    /// The key it claims.
    pub key: PublicKey,
    /// The signature bytes.
    pub sig: [u8; 64],
}

/// Takes `sig` apart; the error says what is wrong with it.
pub fn parse_sig(sig: &str) -> Result<SigParts, String> {
    let (key, _) = sig
        .split_once('.')
        .ok_or("signature is not <key id>.<signature>")?;
    let key = PublicKey::from_id(key).ok_or("signature's key id is not an Ed25519 key")?;
    let (_, sig) = split_sig(sig)?;
    Ok(SigParts { key, sig })
}

/// `sig` as its key id (text, not checked) and the 64 signature bytes.
pub fn split_sig(sig: &str) -> Result<(&str, [u8; 64]), String> {
    let (key, sig) = sig
        .split_once('.')
        .ok_or("signature is not <key id>.<signature>")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| "signature is not base64url")?;
    let sig: [u8; 64] = bytes.try_into().map_err(|_| "signature is not 64 bytes")?;
    Ok((key, sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bot_proto::Action;
    use bot_proto::action::PingArgs;

    fn draft() -> Draft {
        Draft {
            action: Action::Ping(PingArgs {}),
            filter: Some("web*".into()),
            reply_to: "bot/v1/reply/s1".into(),
            ttl_ms: 10_000,
        }
    }

    #[test]
    fn signed_requests_verify_and_tampering_breaks_them() {
        let signer = Signer::new(SecretKey::generate().expect("key"), "alice@ops");
        let r = signer.request(draft());
        r.validate().expect("valid request");
        assert_eq!(r.sender, "alice@ops");
        let parts = parse_sig(r.sig.as_deref().expect("signed")).expect("parts");
        assert_eq!(parts.key, signer.public());
        assert!(parts.key.verify(&r.signing_bytes(), &parts.sig));
        // The wire form decodes to the same signing bytes.
        let back = Request::decode(&r.encode()).expect("decode");
        assert!(parts.key.verify(&back.signing_bytes(), &parts.sig));
        let mut t = back.clone();
        t.filter = Some("*".into());
        assert!(!parts.key.verify(&t.signing_bytes(), &parts.sig));
    }

    #[test]
    fn every_request_gets_its_own_id_and_nonce() {
        let signer = Signer::new(SecretKey::generate().expect("key"), "a");
        let a = signer.request(draft());
        let b = signer.request(draft());
        assert_ne!(a.id, b.id);
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(a.nonce.len(), 32);
        let again = signer.request_at(draft(), a.id.clone(), a.created_ms);
        assert_eq!((again.id, again.created_ms), (a.id, a.created_ms));
    }

    #[test]
    fn malformed_signatures_are_named() {
        for (sig, want) in [("abc", "not <key id>"), ("abc.def", "key id")] {
            assert!(parse_sig(sig).expect_err(sig).contains(want), "{sig}");
        }
        let k = SecretKey::generate().expect("key").public().id();
        assert!(
            parse_sig(&format!("{k}.!!"))
                .expect_err("b64")
                .contains("base64")
        );
        assert!(
            parse_sig(&format!("{k}.AAAA"))
                .expect_err("len")
                .contains("64 bytes")
        );
    }
}

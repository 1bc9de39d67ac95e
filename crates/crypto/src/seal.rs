//! Sealing outside MLS: a device's own state at rest, and the account secrets an approving
//! device hands to a newly linked one.
//!
//! Both use the same audited primitives OpenMLS already brings (ChaCha20-Poly1305 and HPKE with
//! X25519), so no further crypto dependency is needed.
//!
//! - **At rest** ([`seal_at_rest`], [`open_at_rest`]): a 256-bit key the caller keeps in a file
//!   of its own (or derives from a passphrase); a fresh random 96-bit nonce per sealing, stored in
//!   front of the ciphertext. `aad` binds a sealed blob to its purpose so that one blob cannot be
//!   swapped for another.
//! - **Device links** ([`LinkKey`], [`seal_to_link`]): the new device makes an ephemeral X25519
//!   key and shows its public half to the user inside the link code; the approving device seals
//!   to that key with HPKE (RFC 9180, base mode). The server relays the sealed bytes but, since
//!   the code travels out of band (the user copies it), it cannot substitute its own key.

use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::random::OpenMlsRand;
use openmls_traits::types::{AeadType, HpkeAeadType, HpkeCiphertext, HpkeConfig, HpkeKdfType, HpkeKemType};

use crate::error::{CryptoError, Result};

/// Length of an at-rest key.
pub const AT_REST_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const LINK_INFO: &[u8] = b"sirr device link v1";
const HPKE: HpkeConfig = HpkeConfig(
    HpkeKemType::DhKem25519,
    HpkeKdfType::HkdfSha256,
    HpkeAeadType::ChaCha20Poly1305,
);

/// Derive a 256-bit key from a passphrase with Argon2id (RFC 9106; 19 MiB, 2 passes, 1 lane:
/// the OWASP baseline), so that a stolen state directory does not yield to a cheap guess.
pub fn key_from_passphrase(passphrase: &str, salt: &[u8; 16]) -> Result<[u8; AT_REST_KEY_LEN]> {
    let mut out = [0u8; AT_REST_KEY_LEN];
    argon2::Argon2::default()
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .map_err(CryptoError::internal)?;
    Ok(out)
}

/// A fresh random salt or other 16 random bytes.
pub fn random_16() -> Result<[u8; 16]> {
    RustCrypto::default()
        .random_array()
        .map_err(CryptoError::internal)
}

/// A fresh random at-rest key.
pub fn new_at_rest_key() -> Result<[u8; AT_REST_KEY_LEN]> {
    RustCrypto::default()
        .random_array()
        .map_err(CryptoError::internal)
}

/// Encrypts `plaintext` under `key`; the output is `nonce || ciphertext || tag`.
pub fn seal_at_rest(key: &[u8; AT_REST_KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let crypto = RustCrypto::default();
    let nonce: [u8; NONCE_LEN] = crypto.random_array().map_err(CryptoError::internal)?;
    let ct = crypto
        .aead_encrypt(AeadType::ChaCha20Poly1305, key, plaintext, &nonce, aad)
        .map_err(CryptoError::internal)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts the output of [`seal_at_rest`]. A wrong key, a wrong `aad` or any altered byte
/// gives [`CryptoError::DecryptionFailed`].
pub fn open_at_rest(key: &[u8; AT_REST_KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Malformed("sealed state"));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    RustCrypto::default()
        .aead_decrypt(AeadType::ChaCha20Poly1305, key, ct, nonce, aad)
        .map_err(|_| CryptoError::DecryptionFailed)
}

/// The new device's ephemeral key for one link. Lives only as long as the link.
pub struct LinkKey {
    private: Vec<u8>,
    public: [u8; 32],
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl LinkKey {
    pub fn generate() -> Result<Self> {
        let crypto = RustCrypto::default();
        let ikm: [u8; 32] = crypto.random_array().map_err(CryptoError::internal)?;
        let pair = crypto
            .derive_hpke_keypair(HPKE, &ikm)
            .map_err(CryptoError::internal)?;
        let public: [u8; 32] = pair
            .public
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Internal("X25519 public key is not 32 bytes".into()))?;
        Ok(Self {
            private: pair.private.as_ref().to_vec(),
            public,
        })
    }

    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// Opens what [`seal_to_link`] sealed to this key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        let (kem_output, ciphertext): (Vec<u8>, Vec<u8>) =
            postcard::from_bytes(sealed).map_err(|_| CryptoError::Malformed("sealed link payload"))?;
        let input = HpkeCiphertext {
            kem_output: kem_output.into(),
            ciphertext: ciphertext.into(),
        };
        RustCrypto::default()
            .hpke_open(HPKE, &input, &self.private, LINK_INFO, &self.public)
            .map_err(|_| CryptoError::DecryptionFailed)
    }
}

/// Seals `plaintext` to a link's public key (HPKE base mode; the public key is the AAD, so the
/// sealed bytes are bound to that very link).
pub fn seal_to_link(public: &[u8; 32], plaintext: &[u8]) -> Result<Vec<u8>> {
    let ct = RustCrypto::default()
        .hpke_seal(HPKE, public, LINK_INFO, public, plaintext)
        .map_err(CryptoError::internal)?;
    postcard::to_allocvec(&(ct.kem_output.as_slice(), ct.ciphertext.as_slice()))
        .map_err(CryptoError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_rest_round_trips_and_detects_tampering() {
        let key = new_at_rest_key().unwrap();
        let sealed = seal_at_rest(&key, b"state", b"secret keys").unwrap();
        assert_eq!(open_at_rest(&key, b"state", &sealed).unwrap(), b"secret keys");
        assert!(!sealed.windows(11).any(|w| w == b"secret keys"));
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            open_at_rest(&key, b"state", &bad),
            Err(CryptoError::DecryptionFailed)
        );
        assert_eq!(
            open_at_rest(&key, b"other", &sealed),
            Err(CryptoError::DecryptionFailed)
        );
        let other = new_at_rest_key().unwrap();
        assert_eq!(
            open_at_rest(&other, b"state", &sealed),
            Err(CryptoError::DecryptionFailed)
        );
        assert!(open_at_rest(&key, b"state", &sealed[..10]).is_err());
    }

    #[test]
    fn passphrase_keys_depend_on_passphrase_and_salt() {
        let salt = [1; 16];
        let k = key_from_passphrase("correct horse", &salt).unwrap();
        assert_eq!(k, key_from_passphrase("correct horse", &salt).unwrap());
        assert_ne!(k, key_from_passphrase("correct horsf", &salt).unwrap());
        assert_ne!(k, key_from_passphrase("correct horse", &[2; 16]).unwrap());
    }

    #[test]
    fn link_seal_opens_only_with_its_key() {
        let link = LinkKey::generate().unwrap();
        let sealed = seal_to_link(&link.public(), b"account key").unwrap();
        assert_eq!(link.open(&sealed).unwrap(), b"account key");
        let other = LinkKey::generate().unwrap();
        assert_eq!(other.open(&sealed), Err(CryptoError::DecryptionFailed));
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(link.open(&bad).is_err());
        assert!(link.open(b"\xff\xff").is_err());
    }
}

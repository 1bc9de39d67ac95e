//! Profile keys and the sealed-sender delivery tokens derived from them.
//!
//! An account's profile key is a random secret its devices share, inside end-to-end encrypted
//! messages, with the people it talks to. Whoever holds it can derive the account's *delivery
//! token*; the server holds only a hash of that token and delivers a sealed-sender message (one
//! whose sender it is not told) only to an account whose token the sender presents. So only
//! people the account wrote to can reach it anonymously; a stranger's first message stays
//! identified, and the abuse checks see it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A profile key: 256 random bits.
#[derive(Clone, PartialEq, Eq)]
pub struct ProfileKey(pub [u8; 32]);

impl std::fmt::Debug for ProfileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProfileKey(..)")
    }
}

impl ProfileKey {
    pub fn generate(rng: &mut impl rand::CryptoRng) -> ProfileKey {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        ProfileKey(k)
    }

    /// The delivery token for sealed sender: a PRF of the profile key under a fixed label, so
    /// the token reveals nothing about the key.
    pub fn access_key(&self) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"sirr sealed sender access key v1");
        let out = mac.finalize().into_bytes();
        let mut token = [0u8; 16];
        token.copy_from_slice(&out[..16]);
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_per_key_and_differ_between_keys() {
        let a = ProfileKey([1; 32]);
        let b = ProfileKey([2; 32]);
        assert_eq!(a.access_key(), ProfileKey([1; 32]).access_key());
        assert_ne!(a.access_key(), b.access_key());
        assert_ne!(&a.access_key()[..], &a.0[..16], "the token is not the key");
        assert_eq!(format!("{a:?}"), "ProfileKey(..)", "Debug never shows the key");
    }
}

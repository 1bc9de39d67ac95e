//! Message franking: how a recipient can prove to the server what a sender sent, although the
//! server could not read it when it relayed it.
//!
//! - The sender picks a fresh random *franking key* per message, puts it inside the ciphertext,
//!   and sends the *commitment* `HMAC(franking key, sender account ‖ plaintext)` outside it.
//! - The server binds the commitment to what it saw when it accepted the message (message id,
//!   time) with a tag under its own key, and hands both to the recipient with the envelope.
//! - The recipient's client checks, on receipt, that the commitment opens to the plaintext and
//!   the MLS-authenticated sender; a message that does not is refused, so nobody can send
//!   content that could not be reported.
//! - To report, the recipient reveals the plaintext and the franking key; the server checks its
//!   own tag and the commitment. Without the key (which only the recipients have), the
//!   commitment reveals nothing about the content.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sirr_proto::AccountId;

/// A fresh franking key.
pub fn franking_key(rng: &mut impl rand::CryptoRng) -> [u8; 32] {
    let mut k = [0u8; 32];
    rng.fill_bytes(&mut k);
    k
}

/// The commitment to `plaintext` from `sender` under `key`.
pub fn commit(key: &[u8; 32], sender: AccountId, plaintext: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"sirr franking v1");
    mac.update(&sender.0);
    mac.update(plaintext);
    mac.finalize().into_bytes().into()
}

/// Whether `commitment` opens to this sender and plaintext, in constant time.
pub fn opens(commitment: &[u8; 32], key: &[u8; 32], sender: AccountId, plaintext: &[u8]) -> bool {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"sirr franking v1");
    mac.update(&sender.0);
    mac.update(plaintext);
    mac.verify_slice(commitment).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commitment_opens_only_to_its_sender_and_text() {
        let key = franking_key(&mut rand::rng());
        let alice = AccountId([1; 16]);
        let c = commit(&key, alice, b"buy now");
        assert!(opens(&c, &key, alice, b"buy now"));
        assert!(!opens(&c, &key, alice, b"buy later"), "another text");
        assert!(!opens(&c, &key, AccountId([2; 16]), b"buy now"), "another sender");
        assert!(!opens(&c, &[0; 32], alice, b"buy now"), "another key");
        assert_ne!(
            c,
            commit(&franking_key(&mut rand::rng()), alice, b"buy now"),
            "fresh keys hide repeats"
        );
    }
}

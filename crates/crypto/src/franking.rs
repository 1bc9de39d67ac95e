//! Message franking: how a recipient can prove to the server what a sender sent, although the
//! server could not read it when it relayed it.
//!
//! - The sender picks a fresh random *franking key* per message, puts it inside the ciphertext,
//!   and sends the *commitment* `HMAC(franking key, sender account ‖ plaintext)` outside it.
//! - Inside the ciphertext (outside the committed bytes) the sender's **device** also signs the
//!   commitment with its identity key, bound to the conversation ([`sign`]): the key its
//!   account's signed device list names for that device, so anyone holding that list can tell
//!   which device sent the commitment. The commitment's sender field alone proves nothing: whoever
//!   builds a commitment chooses it.
//! - The server binds the commitment to what it saw when it delivered the message (message id,
//!   time, the receiving device, and for an identified send the sending device it
//!   authenticated) with a tag under its own key, and hands both to the recipient with the
//!   envelope.
//! - The recipient's client checks, on receipt, that the commitment opens to the plaintext and
//!   the MLS-authenticated sender and that the signature is that sender device's; a message that
//!   does not is refused, so nobody can send content that could not be reported.
//! - To report, the recipient reveals the plaintext, the franking key and the signature; the
//!   server checks its own tag (which names the reporter, so only a recipient can report), the
//!   commitment, and, for a sealed send (whose sender the server never knew), the signature
//!   against the reported account's device list. Without the key (which only the recipients
//!   have), the commitment reveals nothing about the content.
//!
//! Deniability: the signature makes a message's authorship transferable: a recipient can show
//! anyone who has the sender's device list that the sender's device committed to this content.
//! MLS already signs every message with the same key, so this adds a compact proof, not a new
//! kind of one; it stays inside the ciphertext, so the server sees it only when a recipient
//! reports.

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sirr_proto::{AccountId, ConversationId};

use crate::DeviceIdentity;

/// Length of a franking signature (Ed25519).
pub const SIGNATURE_LEN: usize = 64;

/// A fresh franking key.
pub fn franking_key(rng: &mut impl rand::CryptoRng) -> [u8; 32] {
    let mut k = [0u8; 32];
    rng.fill_bytes(&mut k);
    k
}

fn mac(key: &[u8; 32], sender: AccountId, plaintext: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"sirr franking v1");
    mac.update(&sender.0);
    mac.update(plaintext);
    mac
}

/// The commitment to `plaintext` from `sender` under `key`.
pub fn commit(key: &[u8; 32], sender: AccountId, plaintext: &[u8]) -> [u8; 32] {
    mac(key, sender, plaintext).finalize().into_bytes().into()
}

/// Whether `commitment` opens to this sender and plaintext, in constant time.
pub fn opens(commitment: &[u8; 32], key: &[u8; 32], sender: AccountId, plaintext: &[u8]) -> bool {
    mac(key, sender, plaintext).verify_slice(commitment).is_ok()
}

/// What a device signs: a domain tag, the conversation and the commitment. The tag keeps it
/// apart from anything else the same key signs (MLS prefixes its own labels with a length).
fn statement(commitment: &[u8; 32], conversation: ConversationId) -> [u8; 26 + 16 + 32] {
    let mut s = [0u8; 26 + 16 + 32];
    s[..26].copy_from_slice(b"sirr franking signature v1");
    s[26..42].copy_from_slice(&conversation.0);
    s[42..].copy_from_slice(commitment);
    s
}

/// The sending device's signature over `commitment` in `conversation`.
pub fn sign(
    identity: &DeviceIdentity,
    commitment: &[u8; 32],
    conversation: ConversationId,
) -> [u8; SIGNATURE_LEN] {
    identity
        .signing_key()
        .sign(&statement(commitment, conversation))
        .to_bytes()
}

/// Whether `signature` is the signature of the device with public key `device_key` over
/// `commitment` in `conversation` (strict Ed25519 verification: no malleable encodings).
pub fn signed_by(
    device_key: &[u8; 32],
    commitment: &[u8; 32],
    conversation: ConversationId,
    signature: &[u8; SIGNATURE_LEN],
) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(device_key) else {
        return false;
    };
    key.verify_strict(
        &statement(commitment, conversation),
        &Signature::from_bytes(signature),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sirr_proto::DeviceId;

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

    #[test]
    fn a_signature_holds_only_for_its_device_commitment_and_conversation() {
        let alice = DeviceIdentity::generate(AccountId([1; 16]), DeviceId(1), &mut rand::rng());
        let mallory = DeviceIdentity::generate(AccountId([2; 16]), DeviceId(1), &mut rand::rng());
        let (c, conv) = ([7u8; 32], ConversationId([3; 16]));
        let sig = sign(&alice, &c, conv);
        let key = alice.public().signature_key;
        assert!(signed_by(&key, &c, conv, &sig));
        assert!(
            !signed_by(&mallory.public().signature_key, &c, conv, &sig),
            "another device"
        );
        assert!(!signed_by(&key, &[8; 32], conv, &sig), "another commitment");
        assert!(
            !signed_by(&key, &c, ConversationId([4; 16]), &sig),
            "another conversation"
        );
        assert!(!signed_by(&key, &c, conv, &[0; 64]), "no signature");
        assert!(!signed_by(&[0xff; 32], &c, conv, &sig), "not a key");
    }
}

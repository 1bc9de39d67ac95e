//! The Sirr wire protocol.
//!
//! Everything a client and `sirrd` say to each other travels as a binary WebSocket message holding
//! exactly one frame: a [`ClientFrame`] upstream or a [`ServerFrame`] downstream, encoded with
//! [`postcard`]. This crate owns those types and their codec and nothing else: it does no IO, so
//! the server, the native clients, the fuzzers and (later) the WASM web client share one
//! definition of the bytes.
//!
//! Two layers of payload are distinguished on purpose:
//! - the *envelope* ([`Envelope`]) is what the server sees: routing metadata plus opaque bytes;
//! - the *content* ([`content::Content`]) is what the sending client put inside those bytes. The
//!   server never decodes it. Today it is padded plaintext; with MLS it becomes the plaintext of an
//!   MLS application message, and the server sees only ciphertext.
//!
//! **Invariant:** every decoder here accepts arbitrary bytes from the network and returns a typed
//! [`DecodeError`]; none may panic. The fuzz targets in `fuzz/` hold it to that.

pub mod challenge;
pub mod codec;
pub mod content;
mod frame;
mod ids;
pub mod padding;
mod phone;

pub use codec::{DecodeError, decode_client_frame, decode_server_frame, encode, encode_push};
pub use frame::*;
pub use ids::{AccountId, ConversationId, DeviceAddress, DeviceId, MessageId, Pin, Secret};
pub use phone::{Phone, PhoneError};

/// Version of the frame format spoken by this crate. A client sends it in
/// [`Request::Hello`]; the server refuses versions it does not speak.
///
/// 2: conversations are joined by membership tokens, not member lists ([`MembershipToken`]).
/// 3: franking binds sender and recipient: the server's tag names both devices, messages carry
/// their sender device's signature, and a [`ReportedMessage`] reveals it. A sealed send
/// pays with anonymous tokens ([`SealedToken`], [`Request::IssueSealedTokens`]).
pub const PROTOCOL_VERSION: u16 = 3;

/// The most devices one account may have (its first device included).
pub const MAX_DEVICES_PER_ACCOUNT: usize = 5;

/// The hash of a disclosure-ledger entry: SHA-256 over a domain tag, the previous entry's hash
/// (all zeros for the first), and the entry's fields, length-prefixed so no two field splits
/// collide. The server computes it when it appends; clients recompute it to verify.
pub fn disclosure_hash(prev: &[u8; 32], seq: u64, at_ms: u64, recipient: &str, what: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"sirr disclosure v1");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at_ms.to_be_bytes());
    for field in [recipient, what] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

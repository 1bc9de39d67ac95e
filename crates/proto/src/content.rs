//! What a sending client puts inside an envelope's payload: a [`Sealed`] wrapper around MLS
//! bytes, and inside the MLS ciphertext a padded [`Content`]. The server never decodes either.

use serde::{Deserialize, Serialize};

use crate::Phone;

pub use crate::ConversationId;

/// What a client puts in an envelope's payload. The server relays it without decoding it;
/// everything but the conversation id is MLS ciphertext or an MLS Welcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sealed {
    /// An MLS Welcome adding the receiving device to `conversation`.
    Welcome {
        conversation: ConversationId,
        #[serde(with = "serde_bytes")]
        welcome: Vec<u8>,
    },
    /// An MLS message of `conversation`: an application message, a proposal or a commit.
    Mls {
        conversation: ConversationId,
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
    },
}

impl Sealed {
    pub fn encode(&self) -> Vec<u8> {
        crate::encode(self)
    }

    /// Strict decode: exactly one `Sealed`, no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Sealed, crate::DecodeError> {
        if bytes.is_empty() {
            return Err(crate::DecodeError::Empty);
        }
        let (s, rest) =
            postcard::take_from_bytes(bytes).map_err(|_| crate::DecodeError::Malformed("sealed payload"))?;
        if !rest.is_empty() {
            return Err(crate::DecodeError::TrailingBytes(rest.len()));
        }
        Ok(s)
    }
}

/// One message as the sender wrote it: the plaintext of an MLS application message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// The sender's phone number as the sender states it. MLS authenticates the sending
    /// *account*; receivers check this number against the directory entry of that account
    /// before showing it as verified.
    pub from: Phone,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub sent_at: u64,
    pub body: Body,
    /// A disappearing message: every device deletes it this many seconds after storing it
    /// (and the server drops undelivered copies after as long).
    pub disappears_after_secs: Option<u32>,
    /// In one-to-one chats: the sender's profile key, so the recipient can send back with
    /// sealed sender (the server then does not learn who writes).
    pub profile_key: Option<[u8; 32]>,
    /// The franking key this message's commitment was made with, so a recipient can reveal
    /// it in a report (`sirr_crypto::franking`).
    pub franking_key: Option<[u8; 32]>,
    /// The sending device's signature over the commitment (`sirr_crypto::franking::sign`).
    /// Not covered by the commitment itself: the commitment covers [`Content::committed`].
    #[serde(with = "serde_bytes")]
    pub franking_sig: Option<[u8; 64]>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Text(String),
    /// What the conversation is called and who is in it, sent by whoever changes either, so
    /// that devices joining by Welcome learn the name and the members' numbers. `name` is
    /// `None` for a one-to-one chat.
    Info {
        name: Option<String>,
        members: Vec<Member>,
    },
    /// The sender's devices have shown these messages (sent only with the sender's consent to
    /// read receipts, and only in one-to-one chats).
    Read(Vec<crate::MessageId>),
    /// From now on, messages in this conversation disappear this many seconds after they are
    /// stored; `None` turns disappearing messages off.
    Timer(Option<u32>),
}

/// A member account of a conversation, with the number its inviter knows it by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub phone: Phone,
    pub account: crate::AccountId,
}

/// What an approving device hands a newly linked device of the same account, sealed to the
/// link's key (the server relays it without being able to read it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkBundle {
    pub phone: Phone,
    /// The account key's private seed, so the new device can approve devices in turn.
    pub account_key: Option<[u8; 32]>,
    /// The account's profile key, so the new device shares the same one with contacts.
    pub profile_key: Option<[u8; 32]>,
    /// Known contacts, so the new device can name the people in its conversations.
    pub contacts: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Padding(#[from] crate::padding::PaddingError),
    #[error("message content is malformed: {0}")]
    Decode(#[from] crate::DecodeError),
}

impl Content {
    /// Serialise and pad, ready to be encrypted.
    pub fn seal(&self) -> Vec<u8> {
        crate::padding::pad(&crate::encode(self))
    }

    /// The bytes a franking commitment covers: this content without its franking signature,
    /// sealed. The sender commits to them before it signs; a recipient recomputes them from
    /// what it decrypted (postcard encodes a value one way only, so a sender that encoded
    /// otherwise gets its message refused, never misattributed).
    pub fn committed(&self) -> Vec<u8> {
        Content {
            franking_sig: None,
            ..self.clone()
        }
        .seal()
    }

    pub fn open(payload: &[u8]) -> Result<Content, ContentError> {
        let raw = crate::padding::unpad(payload)?;
        if raw.is_empty() {
            return Err(crate::DecodeError::Empty.into());
        }
        let (c, rest) =
            postcard::take_from_bytes(raw).map_err(|_| crate::DecodeError::Malformed("content"))?;
        if !rest.is_empty() {
            return Err(crate::DecodeError::TrailingBytes(rest.len()).into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_seals_to_a_bucket_and_opens() {
        let c = Content {
            from: Phone::parse("+15550000001").unwrap(),
            sent_at: 1,
            body: Body::Text("hello".into()),
            disappears_after_secs: Some(60),
            profile_key: Some([7; 32]),
            franking_key: Some([8; 32]),
            franking_sig: Some([9; 64]),
        };
        let sealed = c.seal();
        assert_eq!(sealed.len(), 256);
        assert_eq!(Content::open(&sealed).unwrap(), c);
        let committed = Content::open(&c.committed()).unwrap();
        assert_eq!(committed.franking_sig, None, "the signature is not committed to");
        assert_eq!(committed.committed(), c.committed());
        assert!(Content::open(&sealed[..3]).is_err());
    }

    #[test]
    fn sealed_decodes_strictly() {
        let s = Sealed::Mls {
            conversation: ConversationId([1; 16]),
            message: vec![1, 2, 3],
        };
        let mut b = s.encode();
        assert_eq!(Sealed::decode(&b).unwrap(), s);
        b.push(0);
        assert!(Sealed::decode(&b).is_err());
        assert!(Sealed::decode(&[]).is_err());
        assert!(Sealed::decode(&[9]).is_err());
    }
}

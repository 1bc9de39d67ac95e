//! What a sending client puts inside an envelope's payload, before padding (and, with MLS,
//! before encryption). The server never decodes this.

use serde::{Deserialize, Serialize};

use crate::Phone;

pub use crate::ConversationId;

/// One message as the sender wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub conversation: ConversationId,
    /// The sender's phone number as the sender states it. Receivers check it against the
    /// directory entry of the server-authenticated sending account before showing it.
    pub from: Phone,
    /// The other party of a one-to-one chat (lets the sender's own other devices file the copy).
    pub to: Phone,
    /// Sender's clock, milliseconds since the Unix epoch.
    pub sent_at: u64,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error(transparent)]
    Padding(#[from] crate::padding::PaddingError),
    #[error("message content is malformed: {0}")]
    Decode(#[from] crate::DecodeError),
}

impl Content {
    /// Serialise and pad, ready to be sent (or, with MLS, encrypted).
    pub fn seal(&self) -> Vec<u8> {
        crate::padding::pad(&crate::encode(self))
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
            conversation: ConversationId([5; 16]),
            from: Phone::parse("+15550000001").unwrap(),
            to: Phone::parse("+15550000002").unwrap(),
            sent_at: 1,
            body: Body::Text("hello".into()),
        };
        let sealed = c.seal();
        assert_eq!(sealed.len(), 256);
        assert_eq!(Content::open(&sealed).unwrap(), c);
        assert!(Content::open(&sealed[..3]).is_err());
    }
}

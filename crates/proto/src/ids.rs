//! Identifiers. Newtypes rather than aliases so an account id can never be passed where a message
//! id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A random 128-bit account identifier. It is not derived from the phone number, so it can be
/// shown and stored without revealing one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub [u8; 16]);

/// A conversation's identifier, shared by all its participants' devices; it is also the MLS
/// group id. For a one-to-one chat it is derived from the two account ids, so both sides compute
/// the same one independently; a group's is random.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConversationId(pub [u8; 16]);

/// A device's number within its account (1 for the first device).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct DeviceId(pub u32);

/// Where a message goes: one device of one account.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct DeviceAddress {
    pub account: AccountId,
    pub device: DeviceId,
}

/// A client-chosen 128-bit message identifier. Delivery is at-least-once; receivers drop a
/// message whose id they have already seen, so a user sees each message once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub [u8; 16]);

/// A device credential: 256 random bits chosen by the server at registration. The server keeps
/// only its hash. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub [u8; 32]);

macro_rules! hex_id {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for b in &self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($t))
            }
        }
        impl std::str::FromStr for $t {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 16];
                parse_hex(s, &mut out)?;
                Ok(Self(out))
            }
        }
    };
}
hex_id!(AccountId);
hex_id!(MessageId);
hex_id!(ConversationId);

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for DeviceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.account, self.device)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A registration-lock PIN, as the user typed it. It travels only inside the encrypted
/// connection; the server keeps only a slow hash. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin(pub String);

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

impl Secret {
    /// Hex form, for the client's credential file.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Result<Self, ParseIdError> {
        let mut out = [0u8; 32];
        parse_hex(s, &mut out)?;
        Ok(Self(out))
    }
}

/// A string was not the hex form of an identifier of the expected length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a {expected}-character hex identifier")]
pub struct ParseIdError {
    expected: usize,
}

fn parse_hex(s: &str, out: &mut [u8]) -> Result<(), ParseIdError> {
    let err = ParseIdError {
        expected: out.len() * 2,
    };
    let s = s.trim();
    if s.len() != out.len() * 2 || !s.is_ascii() {
        return Err(err);
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| err.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_hex() {
        let id = AccountId([0xab; 16]);
        assert_eq!(id.to_string().parse::<AccountId>().unwrap(), id);
        assert!("xyz".parse::<AccountId>().is_err());
        assert!("ab".repeat(15).parse::<AccountId>().is_err());
        let s = Secret([7; 32]);
        assert_eq!(Secret::from_hex(&s.to_hex()).unwrap(), s);
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret([1; 32])), "Secret(<redacted>)");
    }
}

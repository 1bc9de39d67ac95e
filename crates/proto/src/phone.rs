//! Phone numbers in E.164 form.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A phone number in E.164 syntax: `+` followed by 8 to 15 digits, the first not zero.
///
/// Parsing is the only way to build one, so any `Phone` held anywhere is well-formed
/// ("parse, don't validate"). It is deserialised through the same check.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("a phone number must start with '+' and the country code (E.164), e.g. +15550000001")]
    MissingPlus,
    #[error("a phone number has 8 to 15 digits after the '+', got {0}")]
    Length(usize),
    #[error("a phone number may contain only digits after the '+'")]
    NotDigits,
    #[error("a country code cannot start with 0")]
    LeadingZero,
}

impl Phone {
    pub fn parse(s: &str) -> Result<Self, PhoneError> {
        let digits = s.strip_prefix('+').ok_or(PhoneError::MissingPlus)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::NotDigits);
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(PhoneError::Length(digits.len()));
        }
        if digits.starts_with('0') {
            return Err(PhoneError::LeadingZero);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first `digits` digits after the `+`: the unit of per-prefix rate limits (a block of
    /// numbers bought together shares a prefix).
    pub fn prefix(&self, digits: usize) -> &str {
        let end = (1 + digits).min(self.0.len());
        &self.0[..end]
    }
}

impl TryFrom<String> for Phone {
    type Error = PhoneError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Phone::parse(&s)
    }
}

impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}

impl std::str::FromStr for Phone {
    type Err = PhoneError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phone::parse(s)
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_and_fictional_numbers() {
        for ok in ["+15550000001", "+4915112345678", "+12345678", "+123456789012345"] {
            assert!(Phone::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_numbers_with_reason() {
        assert_eq!(Phone::parse("15550000001"), Err(PhoneError::MissingPlus));
        assert_eq!(Phone::parse("+1234567"), Err(PhoneError::Length(7)));
        assert_eq!(Phone::parse("+1234567890123456"), Err(PhoneError::Length(16)));
        assert_eq!(Phone::parse("+1555 000 0001"), Err(PhoneError::NotDigits));
        assert_eq!(Phone::parse("+0555000001"), Err(PhoneError::LeadingZero));
        assert_eq!(Phone::parse("+"), Err(PhoneError::Length(0)));
    }

    #[test]
    fn prefix_is_clamped() {
        let p = Phone::parse("+15550000001").unwrap();
        assert_eq!(p.prefix(4), "+1555");
        assert_eq!(p.prefix(40), "+15550000001");
    }

    #[test]
    fn deserialising_checks_syntax() {
        let bytes = postcard::to_allocvec(&"+12".to_string()).unwrap();
        assert!(postcard::from_bytes::<Phone>(&bytes).is_err());
    }
}

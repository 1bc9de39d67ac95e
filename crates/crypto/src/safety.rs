//! Safety numbers: a short string two users compare out of band to rule out a
//! machine-in-the-middle (a server that injected its own device keys).
//!
//! # Construction
//!
//! Safety numbers cover *account keys*, not device keys: the account key signs the account's
//! device list, so linking or removing a device leaves the number unchanged, while a new account
//! identity (a re-registration that retired the old one) changes it. For each account, with
//! `key` its 32-byte Ed25519 account public key,
//!
//! ```text
//! h_0     = SHA-256("sirr-safety-number-v1" || account id (16) || 1 (u32 BE) || key)
//! h_{i+1} = SHA-256(h_i || key)              for i in 0 .. 5200
//! digits  = for each of the first six 5-byte chunks c of h_5200:
//!           format("{:05}", u40_be(c) mod 100000)            -> 30 digits
//! ```
//!
//! (The `1` is the number of keys hashed: the format was first written for a set of keys and
//! keeps that field so numbers stay stable.) The safety number is the two accounts' 30-digit
//! strings concatenated in the order of their account ids (so both sides compute the same
//! string whichever is "local"), shown as 12 groups of 5 digits separated by spaces. The
//! iterations (as in Signal's numeric fingerprints) make a brute-force search for a colliding
//! key about 5200 times more costly. The known-answer tests below were computed from this text
//! by an independent implementation (Python's `hashlib`), not by this code.

use sha2::{Digest, Sha256};
use sirr_proto::AccountId;

const DOMAIN: &[u8] = b"sirr-safety-number-v1";
/// Number of hash iterations.
pub const ITERATIONS: usize = 5200;

/// The key a safety number covers for one account: its account key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePublicSet {
    account: AccountId,
    keys: Vec<[u8; 32]>,
}

impl DevicePublicSet {
    /// The set of one account key (Sirr's safety numbers cover account keys, so linking a
    /// device does not change them; the account key signs the device list).
    pub fn from_account_key(account: AccountId, key: [u8; 32]) -> Self {
        Self {
            account,
            keys: vec![key],
        }
    }

    /// The account.
    pub fn account(&self) -> AccountId {
        self.account
    }

    fn digits(&self) -> String {
        let blob: Vec<u8> = self.keys.concat();
        let mut h = Sha256::new();
        h.update(DOMAIN);
        h.update(self.account.0);
        h.update((self.keys.len() as u32).to_be_bytes());
        h.update(&blob);
        let mut hash: [u8; 32] = h.finalize().into();
        for _ in 0..ITERATIONS {
            let mut h = Sha256::new();
            h.update(hash);
            h.update(&blob);
            hash = h.finalize().into();
        }
        let mut out = String::with_capacity(30);
        for chunk in hash[..30].chunks_exact(5) {
            let v = chunk.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            out.push_str(&format!("{:05}", v % 100_000));
        }
        out
    }
}

/// The 60-digit safety number of accounts `a` and `b`, as 12 space-separated groups of 5
/// digits. Symmetric: `safety_number(a, b) == safety_number(b, a)`.
pub fn safety_number(a: &DevicePublicSet, b: &DevicePublicSet) -> String {
    let (first, second) = if (a.account, &a.keys) <= (b.account, &b.keys) {
        (a, b)
    } else {
        (b, a)
    };
    let all = first.digits() + &second.digits();
    let groups: Vec<&str> = (0..12).map(|i| &all[i * 5..i * 5 + 5]).collect();
    groups.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: u8, key: u8) -> DevicePublicSet {
        DevicePublicSet::from_account_key(AccountId([account; 16]), [key; 32])
    }

    /// Computed with Python's hashlib from the construction in the module documentation.
    #[test]
    fn known_answers() {
        assert_eq!(
            safety_number(&key(1, 0xa1), &key(2, 0xb2)),
            "57560 87598 26534 80387 98434 20285 18003 15451 87567 56445 74574 64741"
        );
        let counting = |from: u8| -> [u8; 32] { std::array::from_fn(|i| from + i as u8) };
        let a = DevicePublicSet::from_account_key(AccountId(std::array::from_fn(|i| i as u8)), counting(0));
        let b =
            DevicePublicSet::from_account_key(AccountId(std::array::from_fn(|i| 16 + i as u8)), counting(32));
        assert_eq!(
            safety_number(&a, &b),
            "29934 65892 07459 16464 77837 23947 08003 11831 82310 47896 06947 57523"
        );
    }

    #[test]
    fn format_and_symmetry() {
        let n = safety_number(&key(1, 10), &key(2, 20));
        assert_eq!(n, safety_number(&key(2, 20), &key(1, 10)));
        assert_eq!(n.len(), 60 + 11);
        let groups: Vec<&str> = n.split(' ').collect();
        assert_eq!(groups.len(), 12);
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit()))
        );
    }

    #[test]
    fn every_key_and_account_matters() {
        let base = safety_number(&key(1, 10), &key(2, 20));
        for v in [
            safety_number(&key(1, 11), &key(2, 20)),
            safety_number(&key(1, 10), &key(2, 21)),
            safety_number(&key(3, 10), &key(2, 20)),
            safety_number(&key(1, 10), &key(4, 20)),
        ] {
            assert_ne!(v, base);
        }
        // A single flipped bit in one key changes the number.
        let mut k = [20u8; 32];
        k[31] ^= 1;
        let flipped = safety_number(
            &key(1, 10),
            &DevicePublicSet::from_account_key(AccountId([2; 16]), k),
        );
        assert_ne!(flipped, base);
    }
}

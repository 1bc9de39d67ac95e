//! Safety numbers: a short string two users compare out of band to rule out a
//! machine-in-the-middle (a server that injected its own device keys).
//!
//! # Construction
//!
//! For each account, its *identity keys* are the Ed25519 signature public keys of all its
//! devices, sorted bytewise and deduplicated; `keys` is their concatenation. Then
//!
//! ```text
//! h_0     = SHA-256("sirr-safety-number-v1" || account id (16) || device count (u32 BE) || keys)
//! h_{i+1} = SHA-256(h_i || keys)            for i in 0 .. 5200
//! digits  = for each of the first six 5-byte chunks c of h_5200:
//!           format("{:05}", u40_be(c) mod 100000)            -> 30 digits
//! ```
//!
//! The safety number is the two accounts' 30-digit strings concatenated in the order of their
//! account ids (so both sides compute the same string whichever is "local"), shown as 12
//! groups of 5 digits separated by spaces. The iterations (as in Signal's numeric
//! fingerprints) make a brute-force search for colliding key sets about 5200 times more costly.
//!
//! Any change of any device key of either account changes the number; adding or removing a
//! device changes it too, which is intended: users should re-verify when a device appears.

use sha2::{Digest, Sha256};
use sirr_proto::AccountId;

use crate::error::{CryptoError, Result};
use crate::identity::DevicePublic;

const DOMAIN: &[u8] = b"sirr-safety-number-v1";
/// Number of hash iterations.
pub const ITERATIONS: usize = 5200;

/// All device identity keys of one account, as published in the server's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePublicSet {
    account: AccountId,
    keys: Vec<[u8; 32]>,
}

impl DevicePublicSet {
    /// Builds the set from the account's devices. Fails unless there is at least one device
    /// and every device belongs to `account`. Order does not matter; duplicates collapse.
    pub fn new(account: AccountId, devices: &[DevicePublic]) -> Result<Self> {
        if devices.is_empty() {
            return Err(CryptoError::Rejected("account has no device".into()));
        }
        if devices.iter().any(|d| d.account != account) {
            return Err(CryptoError::InvalidCredential(
                "device of another account in the set",
            ));
        }
        let mut keys: Vec<[u8; 32]> = devices.iter().map(|d| d.signature_key).collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(Self { account, keys })
    }

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
    use sirr_proto::DeviceId;

    fn dev(account: u8, device: u32, key: u8) -> DevicePublic {
        DevicePublic {
            account: AccountId([account; 16]),
            device: DeviceId(device),
            signature_key: [key; 32],
        }
    }

    fn set(account: u8, devs: &[DevicePublic]) -> DevicePublicSet {
        DevicePublicSet::new(AccountId([account; 16]), devs).unwrap()
    }

    #[test]
    fn format_symmetry_and_order_independence() {
        let a = set(1, &[dev(1, 1, 10), dev(1, 2, 11)]);
        let a_rev = set(1, &[dev(1, 2, 11), dev(1, 1, 10)]);
        let b = set(2, &[dev(2, 1, 20)]);
        let n = safety_number(&a, &b);
        assert_eq!(n, safety_number(&b, &a));
        assert_eq!(n, safety_number(&a_rev, &b));
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
    fn every_key_matters() {
        let base = safety_number(
            &set(1, &[dev(1, 1, 10), dev(1, 2, 11)]),
            &set(2, &[dev(2, 1, 20)]),
        );
        let variants = [
            safety_number(
                &set(1, &[dev(1, 1, 12), dev(1, 2, 11)]),
                &set(2, &[dev(2, 1, 20)]),
            ),
            safety_number(
                &set(1, &[dev(1, 1, 10), dev(1, 2, 13)]),
                &set(2, &[dev(2, 1, 20)]),
            ),
            safety_number(
                &set(1, &[dev(1, 1, 10), dev(1, 2, 11)]),
                &set(2, &[dev(2, 1, 21)]),
            ),
            safety_number(&set(1, &[dev(1, 1, 10)]), &set(2, &[dev(2, 1, 20)])),
            safety_number(
                &set(3, &[dev(3, 1, 10), dev(3, 2, 11)]),
                &set(2, &[dev(2, 1, 20)]),
            ),
        ];
        for v in &variants {
            assert_ne!(v, &base);
        }
        // A single flipped bit in one key changes the number.
        let mut k = dev(2, 1, 20);
        k.signature_key[31] ^= 1;
        let flipped = safety_number(&set(1, &[dev(1, 1, 10), dev(1, 2, 11)]), &set(2, &[k]));
        assert_ne!(flipped, base);
    }

    #[test]
    fn set_rejects_foreign_devices_and_empty() {
        assert!(DevicePublicSet::new(AccountId([1; 16]), &[dev(2, 1, 1)]).is_err());
        assert!(DevicePublicSet::new(AccountId([1; 16]), &[]).is_err());
    }
}

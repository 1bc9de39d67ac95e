//! Account keys and signed device lists: how a client tells a device the account really added
//! from one the server injected.
//!
//! The account's first device makes an Ed25519 **account key**. It signs the account's
//! **device list** — `(device id, device signature key)` for every approved device, with a
//! version that only grows — and the server stores that list opaquely and hands it out with
//! KeyPackages. The account key leaves the first device only sealed to a device the user links
//! and approves (see [`crate::seal`]), so the server can neither forge a list nor read the key.
//!
//! Other clients pin an account's key the first time they see it (trust on first use; the
//! safety number lets users check it) and then accept a KeyPackage only if its signature key is
//! the one the list gives for that device. A device registered with the phone number alone, or
//! made up by the server, is refused with [`CryptoError::UnapprovedDevice`].

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sirr_proto::{AccountId, DeviceAddress, DeviceId};

use crate::error::{CryptoError, Result};

const DOMAIN: &str = "sirr device list v1";
/// Most devices a list may name (the server allows fewer per account).
pub const MAX_LISTED_DEVICES: usize = 64;

/// The account key (private). Not `Debug`-printing the secret.
pub struct AccountKey {
    signing: SigningKey,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey")
            .field("public", &hex::encode(self.public()))
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Body {
    domain: String,
    account: AccountId,
    version: u64,
    account_key: [u8; 32],
    devices: Vec<(DeviceId, [u8; 32])>,
}

#[derive(Serialize, Deserialize)]
struct Signed {
    #[serde(with = "serde_bytes")]
    body: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signature: Vec<u8>,
}

/// A verified device list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList {
    pub account: AccountId,
    pub version: u64,
    /// The public account key that signed it.
    pub account_key: [u8; 32],
    /// Approved devices and their signature keys.
    pub devices: Vec<(DeviceId, [u8; 32])>,
}

impl DeviceList {
    /// The signature key the account approved for `device`, if it did.
    pub fn key_of(&self, device: DeviceId) -> Option<[u8; 32]> {
        self.devices.iter().find(|(d, _)| *d == device).map(|(_, k)| *k)
    }
}

impl AccountKey {
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let key = Self::from_bytes(&seed);
        seed.fill(0);
        key
    }

    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The private seed, to be stored encrypted or sealed to a linked device.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub fn public(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// Sign the list of approved devices of `account`.
    pub fn sign_device_list(
        &self,
        account: AccountId,
        version: u64,
        devices: &[(DeviceId, [u8; 32])],
    ) -> Result<Vec<u8>> {
        if devices.len() > MAX_LISTED_DEVICES {
            return Err(CryptoError::Rejected("too many devices in a device list".into()));
        }
        let mut devices = devices.to_vec();
        devices.sort();
        devices.dedup_by_key(|(d, _)| *d);
        let body = postcard::to_allocvec(&Body {
            domain: DOMAIN.into(),
            account,
            version,
            account_key: self.public(),
            devices,
        })
        .map_err(CryptoError::internal)?;
        let signature = self.signing.sign(&body).to_bytes().to_vec();
        postcard::to_allocvec(&Signed { body, signature }).map_err(CryptoError::internal)
    }
}

/// Longest device name, in characters.
pub const MAX_DEVICE_NAME: usize = 64;
/// What a name is padded to before sealing: a length and the longest name's bytes
/// ([`MAX_DEVICE_NAME`] four-byte characters).
const PADDED_NAME: usize = 2 + 4 * MAX_DEVICE_NAME;
/// Longest sealed device name the server stores, in bytes (a padded name, plus nonce and tag,
/// with room to spare).
pub const MAX_SEALED_DEVICE_NAME: usize = PADDED_NAME + 64;

impl AccountKey {
    /// The symmetric key device names are sealed under: a PRF of the account key, so every
    /// device of the account (each holds the account key once approved) can read them and
    /// nobody else, the server included.
    fn names_key(&self) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.signing.to_bytes())
            .expect("HMAC takes any key length");
        mac.update(b"sirr device names v1");
        mac.finalize().into_bytes().into()
    }

    /// Seal `device`'s name for the server to store. Bound to the device, so the server cannot
    /// show one device's name as another's.
    /// The name is padded to [`PADDED_NAME`] bytes first, so every sealed name has the same
    /// size and its length tells the server nothing.
    pub fn seal_device_name(&self, device: DeviceAddress, name: &str) -> Result<Vec<u8>> {
        check_device_name(name)?;
        let mut padded = vec![0u8; PADDED_NAME];
        let len = name.len();
        padded[..2].copy_from_slice(&(len as u16).to_be_bytes());
        padded[2..2 + len].copy_from_slice(name.as_bytes());
        crate::seal::seal_at_rest(&self.names_key(), &name_aad(device), &padded)
    }

    /// Open a name sealed by [`Self::seal_device_name`] for `device`.
    pub fn open_device_name(&self, device: DeviceAddress, sealed: &[u8]) -> Result<String> {
        let padded = crate::seal::open_at_rest(&self.names_key(), &name_aad(device), sealed)?;
        let malformed = || CryptoError::Malformed("device name");
        let len = u16::from_be_bytes(
            padded
                .get(..2)
                .ok_or_else(malformed)?
                .try_into()
                .map_err(|_| malformed())?,
        );
        let name = padded.get(2..2 + usize::from(len)).ok_or_else(malformed)?;
        String::from_utf8(name.to_vec()).map_err(|_| malformed())
    }
}

/// A device name is 1 to [`MAX_DEVICE_NAME`] printable characters.
pub fn check_device_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > MAX_DEVICE_NAME || name.chars().any(char::is_control) {
        return Err(CryptoError::Rejected(format!(
            "a device name is 1-{MAX_DEVICE_NAME} printable characters"
        )));
    }
    Ok(())
}

fn name_aad(device: DeviceAddress) -> Vec<u8> {
    let mut aad = b"sirr device name v1".to_vec();
    aad.extend_from_slice(&device.account.0);
    aad.extend_from_slice(&device.device.0.to_be_bytes());
    aad
}

/// Verify a signed device list of `account`. With `pinned`, the list must be signed by that
/// account key ([`CryptoError::AccountKeyChanged`] otherwise); without, the key is taken from
/// the list (first use) and returned in it for the caller to pin.
pub fn verify_device_list(bytes: &[u8], account: AccountId, pinned: Option<[u8; 32]>) -> Result<DeviceList> {
    let (signed, rest): (Signed, _) =
        postcard::take_from_bytes(bytes).map_err(|_| CryptoError::Malformed("device list"))?;
    if !rest.is_empty() {
        return Err(CryptoError::Malformed("device list"));
    }
    let (body, rest): (Body, _) =
        postcard::take_from_bytes(&signed.body).map_err(|_| CryptoError::Malformed("device list"))?;
    if !rest.is_empty() || body.domain != DOMAIN || body.devices.len() > MAX_LISTED_DEVICES {
        return Err(CryptoError::Malformed("device list"));
    }
    if body.account != account {
        return Err(CryptoError::Rejected("device list of another account".into()));
    }
    if let Some(pinned) = pinned
        && pinned != body.account_key
    {
        return Err(CryptoError::AccountKeyChanged);
    }
    let key = VerifyingKey::from_bytes(&body.account_key).map_err(|_| CryptoError::InvalidSignature)?;
    let signature: [u8; 64] = signed
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| CryptoError::InvalidSignature)?;
    key.verify(&signed.body, &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| CryptoError::InvalidSignature)?;
    Ok(DeviceList {
        account: body.account,
        version: body.version,
        account_key: body.account_key,
        devices: body.devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_open_only_with_the_account_key_and_for_their_device() {
        let key = AccountKey::generate(&mut rand::rng());
        let laptop = DeviceAddress {
            account: AccountId([7; 16]),
            device: DeviceId(2),
        };
        let sealed = key.seal_device_name(laptop, "laptop").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"laptop"));
        assert_eq!(key.open_device_name(laptop, &sealed).unwrap(), "laptop");
        let phone = DeviceAddress {
            device: DeviceId(1),
            ..laptop
        };
        assert!(
            key.open_device_name(phone, &sealed).is_err(),
            "moved to another device"
        );
        let other = AccountKey::generate(&mut rand::rng());
        assert!(
            other.open_device_name(laptop, &sealed).is_err(),
            "another account's key"
        );
        let mut bad = sealed.clone();
        bad[sealed.len() / 2] ^= 1;
        assert!(key.open_device_name(laptop, &bad).is_err(), "tampered");
        assert!(key.seal_device_name(laptop, "").is_err());
        assert!(key.seal_device_name(laptop, &"x".repeat(65)).is_err());
        let longest = key.seal_device_name(laptop, &"\u{1F600}".repeat(64)).unwrap();
        assert!(longest.len() <= MAX_SEALED_DEVICE_NAME);
        assert_eq!(longest.len(), sealed.len(), "every sealed name has the same size");
        assert_eq!(
            key.open_device_name(laptop, &longest).unwrap(),
            "\u{1F600}".repeat(64)
        );
    }

    #[test]
    fn lists_verify_and_forgeries_do_not() {
        let key = AccountKey::generate(&mut rand::rng());
        let account = AccountId([7; 16]);
        let list = key
            .sign_device_list(account, 2, &[(DeviceId(2), [2; 32]), (DeviceId(1), [1; 32])])
            .unwrap();
        let v = verify_device_list(&list, account, None).unwrap();
        assert_eq!(v.version, 2);
        assert_eq!(v.key_of(DeviceId(1)), Some([1; 32]));
        assert_eq!(v.key_of(DeviceId(3)), None);
        assert!(verify_device_list(&list, account, Some(key.public())).is_ok());

        // Another key (a server forging a list) is refused once the real key is pinned.
        let forger = AccountKey::generate(&mut rand::rng());
        let forged = forger
            .sign_device_list(account, 3, &[(DeviceId(9), [9; 32])])
            .unwrap();
        assert_eq!(
            verify_device_list(&forged, account, Some(key.public())),
            Err(CryptoError::AccountKeyChanged)
        );
        // A flipped bit anywhere fails.
        for i in 0..list.len() {
            let mut bad = list.clone();
            bad[i] ^= 0x01;
            assert!(
                verify_device_list(&bad, account, Some(key.public())).is_err(),
                "byte {i}"
            );
        }
        assert!(verify_device_list(&list, AccountId([8; 16]), None).is_err());
        assert!(verify_device_list(b"", account, None).is_err());
    }

    #[test]
    fn account_key_round_trips() {
        let key = AccountKey::generate(&mut rand::rng());
        assert_eq!(AccountKey::from_bytes(&key.to_bytes()).public(), key.public());
    }
}

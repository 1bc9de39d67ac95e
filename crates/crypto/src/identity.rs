//! Device identities: the signature key pair and MLS credential of one device.
//!
//! Each Sirr device has its own Ed25519 signature key; it signs the device's KeyPackages, leaf
//! nodes, commits and messages. Its MLS credential is a *BasicCredential* whose identity is
//! exactly 20 bytes, `account id (16 bytes) || device id (u32 big-endian)`, so that every member
//! of a group can tell which account and which device a leaf belongs to, and the server's
//! device directory can be checked against it.
//!
//! A BasicCredential proves nothing by itself: the binding between the identity bytes and the
//! signature key is what users check with safety numbers ([`crate::safety`]) and what the
//! client checks against the server's directory when it validates KeyPackages
//! ([`crate::KeyPackages::validate`]).

use openmls::prelude::{BasicCredential, Credential, CredentialType, CredentialWithKey};
use openmls_basic_credential::SignatureKeyPair;
use openmls_traits::OpenMlsProvider;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::SignatureScheme;
use sirr_proto::{AccountId, DeviceAddress, DeviceId};

use crate::error::{CryptoError, Result};
use crate::storage::MlsStore;

/// Length of the identity bytes inside a Sirr credential.
pub const CREDENTIAL_IDENTITY_LEN: usize = 20;
/// Length of an Ed25519 public or secret (seed) key.
const KEY_LEN: usize = 32;
/// Format tag of [`DeviceIdentity::to_bytes`].
const IDENTITY_VERSION: u8 = 1;
/// Length of [`DeviceIdentity::to_bytes`].
const IDENTITY_BYTES_LEN: usize = 1 + 16 + 4 + KEY_LEN + KEY_LEN;

/// Identity bytes of the credential of `account`'s device `device`.
pub fn credential_identity(account: AccountId, device: DeviceId) -> [u8; CREDENTIAL_IDENTITY_LEN] {
    let mut out = [0u8; CREDENTIAL_IDENTITY_LEN];
    out[..16].copy_from_slice(&account.0);
    out[16..].copy_from_slice(&device.0.to_be_bytes());
    out
}

/// Reads the account and device out of a credential. Fails with
/// [`CryptoError::InvalidCredential`] unless it is a basic credential of exactly 20 identity
/// bytes.
pub fn parse_credential(credential: &Credential) -> Result<DeviceAddress> {
    if credential.credential_type() != CredentialType::Basic {
        return Err(CryptoError::InvalidCredential("not a basic credential"));
    }
    let basic = BasicCredential::try_from(credential.clone())
        .map_err(|_| CryptoError::InvalidCredential("not a basic credential"))?;
    parse_identity(basic.identity())
}

fn parse_identity(identity: &[u8]) -> Result<DeviceAddress> {
    let bytes: &[u8; CREDENTIAL_IDENTITY_LEN] = identity
        .try_into()
        .map_err(|_| CryptoError::InvalidCredential("identity is not 20 bytes"))?;
    let mut account = [0u8; 16];
    account.copy_from_slice(&bytes[..16]);
    let mut device = [0u8; 4];
    device.copy_from_slice(&bytes[16..]);
    Ok(DeviceAddress {
        account: AccountId(account),
        device: DeviceId(u32::from_be_bytes(device)),
    })
}

/// The public half of a device identity: what other devices and users learn and verify.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct DevicePublic {
    /// The account the device belongs to.
    pub account: AccountId,
    /// The device number within the account.
    pub device: DeviceId,
    /// The device's Ed25519 signature public key.
    pub signature_key: [u8; KEY_LEN],
}

impl DevicePublic {
    /// The device's address (account + device).
    pub fn address(&self) -> DeviceAddress {
        DeviceAddress {
            account: self.account,
            device: self.device,
        }
    }
}

/// A device's private identity: its Ed25519 signature key pair and the account/device its
/// credential names.
///
/// Not `Clone` and not `Debug`-printing the secret, to keep copies of the private key few.
pub struct DeviceIdentity {
    account: AccountId,
    device: DeviceId,
    keys: SignatureKeyPair,
    /// Kept for serialisation (OpenMLS' key pair does not expose its private half); zeroised
    /// on drop by ed25519-dalek.
    signing: ed25519_dalek::SigningKey,
    public: [u8; KEY_LEN],
}

impl std::fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIdentity")
            .field("account", &self.account)
            .field("device", &self.device)
            .field("public", &hex::encode(self.public))
            .finish_non_exhaustive()
    }
}

impl DeviceIdentity {
    /// Generates a new identity from an injected cryptographically secure RNG (tests can pass
    /// a seeded one for determinism; production passes the OS RNG).
    pub fn generate<R: rand::CryptoRng + ?Sized>(account: AccountId, device: DeviceId, rng: &mut R) -> Self {
        let mut seed = [0u8; KEY_LEN];
        rng.fill_bytes(&mut seed);
        let identity = Self::from_seed(account, device, &seed);
        seed.fill(0);
        identity
    }

    /// Generates a new identity with the randomness of the OpenMLS crypto provider.
    pub fn generate_with_provider(account: AccountId, device: DeviceId, store: &MlsStore) -> Result<Self> {
        let (private, public) = store
            .crypto()
            .signature_key_gen(SignatureScheme::ED25519)
            .map_err(CryptoError::internal)?;
        let seed: [u8; KEY_LEN] = private
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Internal("unexpected Ed25519 key length".into()))?;
        let identity = Self::from_seed(account, device, &seed);
        if identity.public.as_slice() != public.as_slice() {
            return Err(CryptoError::Internal("Ed25519 public key mismatch".into()));
        }
        Ok(identity)
    }

    /// The same key pair bound to another address. A device being linked makes its key before
    /// it knows its device id (the approving device signs that key into the device list).
    pub fn rebind(&self, account: AccountId, device: DeviceId) -> Self {
        Self::from_seed(account, device, self.signing.as_bytes())
    }

    fn from_seed(account: AccountId, device: DeviceId, seed: &[u8; KEY_LEN]) -> Self {
        let signing = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = signing.verifying_key().to_bytes();
        let keys = SignatureKeyPair::from_raw(SignatureScheme::ED25519, seed.to_vec(), public.to_vec());
        Self {
            account,
            device,
            keys,
            signing,
            public,
        }
    }

    /// Serialises the identity, private key included:
    /// `version (1) || account (16) || device (4, BE) || ed25519 seed (32) || public key (32)`.
    /// The caller must store these bytes encrypted.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(IDENTITY_BYTES_LEN);
        out.push(IDENTITY_VERSION);
        out.extend_from_slice(&self.account.0);
        out.extend_from_slice(&self.device.0.to_be_bytes());
        out.extend_from_slice(self.signing.as_bytes());
        out.extend_from_slice(&self.public);
        out
    }

    /// Parses [`DeviceIdentity::to_bytes`] output. Rejects wrong lengths, unknown versions and
    /// a public key that does not match the private key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != IDENTITY_BYTES_LEN {
            return Err(CryptoError::Malformed("device identity length"));
        }
        if bytes[0] != IDENTITY_VERSION {
            return Err(CryptoError::Malformed("device identity version"));
        }
        let mut account = [0u8; 16];
        account.copy_from_slice(&bytes[1..17]);
        let mut device = [0u8; 4];
        device.copy_from_slice(&bytes[17..21]);
        let mut seed = [0u8; KEY_LEN];
        seed.copy_from_slice(&bytes[21..53]);
        let identity = Self::from_seed(AccountId(account), DeviceId(u32::from_be_bytes(device)), &seed);
        seed.fill(0);
        if identity.public.as_slice() != &bytes[53..] {
            return Err(CryptoError::Malformed("device identity public key mismatch"));
        }
        Ok(identity)
    }

    /// The account this device belongs to.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// This device's number.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// Account + device.
    pub fn address(&self) -> DeviceAddress {
        DeviceAddress {
            account: self.account,
            device: self.device,
        }
    }

    /// The public part, to publish and to compute safety numbers from.
    pub fn public(&self) -> DevicePublic {
        DevicePublic {
            account: self.account,
            device: self.device,
            signature_key: self.public,
        }
    }

    /// The MLS credential and signature key that go into this device's leaf nodes.
    pub fn credential_with_key(&self) -> CredentialWithKey {
        let credential: Credential =
            BasicCredential::new(credential_identity(self.account, self.device).to_vec()).into();
        CredentialWithKey {
            credential,
            signature_key: self.public.to_vec().into(),
        }
    }

    /// The Ed25519 key itself, for signatures Sirr makes outside MLS (`franking::sign`).
    pub(crate) fn signing_key(&self) -> &ed25519_dalek::SigningKey {
        &self.signing
    }

    /// The signer OpenMLS uses.
    pub(crate) fn signer(&self) -> &SignatureKeyPair {
        &self.keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ids() -> (AccountId, DeviceId) {
        (AccountId([7; 16]), DeviceId(3))
    }

    #[test]
    fn bytes_round_trip_and_credential_binds_account_and_device() {
        let (a, d) = ids();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let id = DeviceIdentity::generate(a, d, &mut rng);
        let back = DeviceIdentity::from_bytes(&id.to_bytes()).unwrap();
        assert_eq!(back.public(), id.public());
        let cwk = id.credential_with_key();
        let addr = parse_credential(&cwk.credential).unwrap();
        assert_eq!(addr, id.address());
        assert_eq!(cwk.signature_key.as_slice(), &id.public().signature_key);
    }

    #[test]
    fn provider_generation_works() {
        let (a, d) = ids();
        let store = MlsStore::new();
        let x = DeviceIdentity::generate_with_provider(a, d, &store).unwrap();
        let y = DeviceIdentity::generate_with_provider(a, d, &store).unwrap();
        assert_ne!(x.public().signature_key, y.public().signature_key);
    }

    #[test]
    fn from_bytes_rejects_bad_input() {
        let (a, d) = ids();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let bytes = DeviceIdentity::generate(a, d, &mut rng).to_bytes();
        assert!(DeviceIdentity::from_bytes(&bytes[..10]).is_err());
        let mut wrong_version = bytes.clone();
        wrong_version[0] = 9;
        assert!(DeviceIdentity::from_bytes(&wrong_version).is_err());
        let mut wrong_pub = bytes.clone();
        wrong_pub[60] ^= 1;
        assert_eq!(
            DeviceIdentity::from_bytes(&wrong_pub).unwrap_err(),
            CryptoError::Malformed("device identity public key mismatch")
        );
    }

    #[test]
    fn parse_rejects_wrong_identity_length() {
        let c: Credential = BasicCredential::new(vec![1; 19]).into();
        assert!(matches!(
            parse_credential(&c),
            Err(CryptoError::InvalidCredential(_))
        ));
    }
}

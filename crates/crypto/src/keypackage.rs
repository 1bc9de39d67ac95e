//! KeyPackages: how a device can be added to a conversation while it is offline.
//!
//! A KeyPackage carries a device's credential, signature key and a fresh HPKE init key, signed
//! by the device. Whoever adds the device encrypts the Welcome to that init key. Each device
//! uploads a batch of **one-time** KeyPackages (the server hands each out once, and the
//! device's store deletes the private key when a Welcome consumes it) and one **last-resort**
//! KeyPackage, used only when the one-time ones ran out (it may be handed out several times,
//! which weakens forward secrecy for those joins, so the device should replace it soon).
//!
//! Incoming KeyPackages come from the server, which is not trusted: [`KeyPackages::validate`]
//! checks everything before one may be used in [`crate::Conversation::add_members`] (which only
//! accepts [`ValidatedKeyPackage`]).

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    Capabilities, ExtensionType, KeyPackage, KeyPackageIn, KeyPackageVerifyError, Lifetime, ProtocolVersion,
};
use openmls::treesync::errors::LifetimeError;
use openmls_traits::OpenMlsProvider;
use sirr_proto::DeviceAddress;

use crate::CIPHERSUITE;
use crate::error::{CryptoError, Result};
use crate::identity::{DeviceIdentity, parse_credential};
use crate::storage::MlsStore;

/// Default KeyPackage lifetime: 90 days, a trade-off between re-upload traffic and how long a
/// leaked init key stays usable.
pub const DEFAULT_LIFETIME_SECS: u64 = 90 * 24 * 3600;
/// KeyPackages are valid from one hour before their creation, to tolerate clock skew between
/// devices.
pub const CLOCK_SKEW_MARGIN_SECS: u64 = 3600;
/// Upper bound for one batch, so that a buggy caller cannot make the store grow unbounded.
pub const MAX_BATCH: usize = 1000;

/// A batch of freshly generated KeyPackages, serialised (TLS encoding) and ready to upload.
/// Their private keys are already in the [`MlsStore`] that generated them.
#[derive(Debug, Clone)]
pub struct KeyPackages {
    /// One-time KeyPackages: the server must hand out each at most once.
    pub one_time: Vec<Vec<u8>>,
    /// The last-resort KeyPackage, handed out only when no one-time package is left.
    pub last_resort: Vec<u8>,
}

/// A KeyPackage that passed [`KeyPackages::validate`]. The only way to add a member.
#[derive(Debug, Clone)]
pub struct ValidatedKeyPackage {
    pub(crate) key_package: KeyPackage,
    address: DeviceAddress,
}

impl ValidatedKeyPackage {
    /// The device the KeyPackage belongs to (as checked against the caller's expectation).
    pub fn address(&self) -> DeviceAddress {
        self.address
    }

    /// Whether it is a last-resort KeyPackage.
    pub fn is_last_resort(&self) -> bool {
        self.key_package.last_resort()
    }

    /// End of the KeyPackage's lifetime, seconds since the Unix epoch.
    pub fn not_after(&self) -> u64 {
        self.key_package.life_time().not_after()
    }

    /// The Ed25519 signature key of the device.
    pub fn signature_key(&self) -> &[u8] {
        self.key_package.leaf_node().signature_key().as_slice()
    }
}

impl KeyPackages {
    /// Generates `count` one-time KeyPackages and one last-resort KeyPackage for `identity`,
    /// valid from `now_unix - CLOCK_SKEW_MARGIN_SECS` to `now_unix + lifetime_secs`. The
    /// private init and encryption keys are written to `store`: persist it (see
    /// [`MlsStore::export`]) before uploading, or the Welcomes made for them cannot be opened.
    pub fn generate(
        store: &MlsStore,
        identity: &DeviceIdentity,
        count: usize,
        now_unix: u64,
        lifetime_secs: u64,
    ) -> Result<Self> {
        if count > MAX_BATCH {
            return Err(CryptoError::InvalidKeyPackage(format!(
                "batch of {count} exceeds {MAX_BATCH}"
            )));
        }
        let one_time = (0..count)
            .map(|_| build(store, identity, now_unix, lifetime_secs, false))
            .collect::<Result<Vec<_>>>()?;
        let last_resort = build(store, identity, now_unix, lifetime_secs, true)?;
        Ok(Self {
            one_time,
            last_resort,
        })
    }

    /// Validates a KeyPackage received from the server for device `expected`:
    /// TLS decoding (exact, no trailing bytes), leaf-node and KeyPackage signatures, protocol
    /// version, init key distinct from the encryption key, Sirr's ciphersuite, lifetime
    /// covering `now_unix` (the caller's clock), and a credential naming exactly `expected`.
    ///
    /// Note: OpenMLS also checks the lifetime against its own clock during decoding-time
    /// validation; the caller-supplied time is checked in addition, so a test can pin time.
    pub fn validate(
        store: &MlsStore,
        bytes: &[u8],
        expected: DeviceAddress,
        now_unix: u64,
    ) -> Result<ValidatedKeyPackage> {
        let kp_in =
            KeyPackageIn::tls_deserialize_exact(bytes).map_err(|_| CryptoError::Malformed("key package"))?;
        let key_package = kp_in
            .validate(store.crypto(), ProtocolVersion::Mls10)
            .map_err(map_verify_error)?;
        if key_package.ciphersuite() != CIPHERSUITE {
            return Err(CryptoError::UnsupportedCiphersuite);
        }
        // Checked by hand rather than with `Lifetime::validate_with_time`, whose time type
        // differs between native and wasm builds of OpenMLS.
        let lifetime = key_package.life_time();
        if now_unix < lifetime.not_before() || now_unix >= lifetime.not_after() {
            return Err(CryptoError::KeyPackageLifetime {
                now: now_unix,
                not_before: lifetime.not_before(),
                not_after: lifetime.not_after(),
            });
        }
        let found = parse_credential(key_package.leaf_node().credential())?;
        if found != expected {
            return Err(CryptoError::CredentialMismatch { expected, found });
        }
        Ok(ValidatedKeyPackage {
            key_package,
            address: found,
        })
    }
}

/// Leaf capabilities of Sirr devices: OpenMLS' defaults plus the last-resort KeyPackage
/// extension (a KeyPackage may only carry extensions its leaf declares).
pub(crate) fn capabilities() -> Capabilities {
    Capabilities::new(None, None, Some(&[ExtensionType::LastResort]), None, None)
}

fn build(
    store: &MlsStore,
    identity: &DeviceIdentity,
    now_unix: u64,
    lifetime_secs: u64,
    last_resort: bool,
) -> Result<Vec<u8>> {
    let lifetime = Lifetime::init(
        now_unix.saturating_sub(CLOCK_SKEW_MARGIN_SECS),
        now_unix.saturating_add(lifetime_secs),
    );
    let mut builder = KeyPackage::builder()
        .key_package_lifetime(lifetime)
        .leaf_node_capabilities(capabilities());
    if last_resort {
        builder = builder.mark_as_last_resort();
    }
    let bundle = builder
        .build(
            CIPHERSUITE,
            store,
            identity.signer(),
            identity.credential_with_key(),
        )
        .map_err(CryptoError::internal)?;
    bundle
        .key_package()
        .tls_serialize_detached()
        .map_err(CryptoError::internal)
}

fn map_verify_error(e: KeyPackageVerifyError) -> CryptoError {
    match e {
        KeyPackageVerifyError::InvalidSignature | KeyPackageVerifyError::InvalidLeafNodeSignature => {
            CryptoError::InvalidSignature
        }
        // OpenMLS checked the lifetime against its own clock.
        KeyPackageVerifyError::LifetimeError(LifetimeError::Expired { not_after, now }) => {
            CryptoError::KeyPackageLifetime {
                now,
                not_before: 0,
                not_after,
            }
        }
        KeyPackageVerifyError::LifetimeError(LifetimeError::NotValidYet { not_before, now }) => {
            CryptoError::KeyPackageLifetime {
                now,
                not_before,
                not_after: u64::MAX,
            }
        }
        other => CryptoError::InvalidKeyPackage(other.to_string()),
    }
}

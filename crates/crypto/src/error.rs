//! The one error type of this crate.
//!
//! Every fallible function here returns [`CryptoError`]. The variants are grouped by what the
//! caller should do about them, not by which OpenMLS call failed:
//!
//! - **malformed input**: the bytes did not parse; drop them (and maybe count the sender as
//!   misbehaving).
//! - **invalid signature / credential**: the bytes parsed but are not authentic, or name someone
//!   other than expected; drop them and never trust their content.
//! - **epoch / commit state**: the message belongs to another epoch, or a local commit is in an
//!   incompatible state; resynchronise (fetch missing commits, resolve the pending commit).
//! - **membership**: the operation names a device that is not in the group, or this device is
//!   no longer a member.
//! - **replay / decryption**: the ciphertext was already consumed or does not decrypt.
//! - **internal**: a bug or a storage failure; not caused by the peer's bytes.
//!
//! **Promise:** no function of this crate panics on bytes that came from outside; such input
//! always ends up in one of these variants.

use sirr_proto::DeviceAddress;

/// Everything that can go wrong in the end-to-end encryption core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    // ----- malformed input -----
    /// The bytes do not decode as the expected structure (TLS, postcard, length, version).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The bytes decode, but as another kind of message than this function accepts
    /// (e.g. a Welcome passed to `process_incoming`).
    #[error("unexpected message kind: expected {expected}")]
    UnexpectedMessage {
        /// What the function expected.
        expected: &'static str,
    },

    // ----- invalid signature / credential -----
    /// A signature (KeyPackage, leaf node, message, membership tag) does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// A credential is not a Sirr basic credential (`account id || device id`).
    #[error("invalid credential: {0}")]
    InvalidCredential(&'static str),
    /// A credential is well formed but names another device than the one expected.
    #[error("credential names {found}, expected {expected}")]
    CredentialMismatch {
        /// The device the caller expected.
        expected: DeviceAddress,
        /// The device the credential actually names.
        found: DeviceAddress,
    },
    /// A device is not on its account's signed device list, or has another key there: the
    /// account never approved it (it may have been registered by phone alone, or injected).
    #[error("{0} was never approved by its account")]
    UnapprovedDevice(DeviceAddress),
    /// An account's device list is signed by another account key than the one pinned for it:
    /// the account was registered anew, or someone is in the middle. The safety number changed.
    #[error("the account key changed")]
    AccountKeyChanged,
    /// A KeyPackage is outside its lifetime at the caller's time.
    #[error("key package lifetime does not cover now ({now}): valid {not_before}..{not_after}")]
    KeyPackageLifetime {
        /// Caller's current time, seconds since the Unix epoch.
        now: u64,
        /// Start of validity.
        not_before: u64,
        /// End of validity.
        not_after: u64,
    },
    /// A KeyPackage failed another structural check (protocol version, extensions, keys).
    #[error("invalid key package: {0}")]
    InvalidKeyPackage(String),
    /// The ciphersuite is not the one Sirr uses.
    #[error("unsupported ciphersuite")]
    UnsupportedCiphersuite,

    // ----- epoch / commit state -----
    /// The message was made for another epoch than the group's current one (a stale commit, a
    /// message from before a commit this device already merged, or from a future epoch).
    #[error("message is for another epoch")]
    WrongEpoch,
    /// The message belongs to another group.
    #[error("message is for another conversation")]
    WrongGroup,
    /// A commit was rejected by validation (bad path, invalid proposals, own commit mismatch).
    #[error("invalid commit: {0}")]
    InvalidCommit(String),
    /// The operation needs no pending local commit, but one is pending: resolve it first with
    /// `merge_pending_commit` (server accepted) or `clear_pending_commit` (server rejected).
    #[error("a local commit is pending")]
    PendingCommit,
    /// `merge_pending_commit` was called without a pending commit.
    #[error("no local commit is pending")]
    NoPendingCommit,

    // ----- membership -----
    /// This device is not (or no longer) a member of the conversation.
    #[error("this device is not a member of the conversation")]
    NotAMember,
    /// The named device is not a member of the conversation.
    #[error("{0} is not a member of the conversation")]
    UnknownMember(DeviceAddress),
    /// The message's sender is not a member of the group.
    #[error("sender is not a member of the conversation")]
    UnknownSender,
    /// No KeyPackage private key matches the Welcome (already used, or not ours).
    #[error("no matching key package for this welcome")]
    NoMatchingKeyPackage,
    /// The message was rejected for another protocol reason.
    #[error("message rejected: {0}")]
    Rejected(String),

    // ----- replay / decryption -----
    /// The message's key was already used: this ciphertext was processed before.
    #[error("message already processed (replay)")]
    Replay,
    /// The ciphertext does not decrypt (tampered, truncated, or not for this epoch's keys).
    #[error("decryption failed")]
    DecryptionFailed,
    /// Padding around the plaintext is invalid.
    #[error("invalid padding: {0}")]
    Padding(#[from] sirr_proto::padding::PaddingError),

    // ----- internal -----
    /// A bug or a storage failure. Not caused by the peer's bytes.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CryptoError {
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        CryptoError::Internal(e.to_string())
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;

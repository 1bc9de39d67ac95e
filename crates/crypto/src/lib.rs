//! Sirr's end-to-end encryption core.
//!
//! Conversations are MLS groups (RFC 9420, via OpenMLS) whose leaves are *devices*: a 1:1 chat
//! is the group of both accounts' devices, a group chat holds up to
//! [`conversation::MAX_MEMBERS`] devices. The server only ever sees what this crate outputs:
//! KeyPackages, Welcomes, Commits, proposals and application messages, all signed and (except
//! KeyPackages) encrypted.
//!
//! The crate is **sans-IO**: no files, no network, no clock reads of its own (times are
//! passed in by the caller; OpenMLS itself still consults the system clock when it checks
//! KeyPackage lifetimes, see [`KeyPackages::validate`]). State lives in an [`MlsStore`] that
//! the caller exports as bytes and persists encrypted. It builds for native targets and for
//! `wasm32-unknown-unknown` (feature `wasm`).
//!
//! Map of the crate:
//! - [`account`]: the account key and signed device lists.
//! - [`identity`]: [`DeviceIdentity`] (signature key + credential `account || device`).
//! - [`keypackage`]: [`KeyPackages`] generation and validation.
//! - [`conversation`]: [`Conversation`], the group operations and message processing.
//! - [`storage`]: [`MlsStore`], the OpenMLS provider with byte export/import.
//! - [`safety`]: safety numbers.
//! - [`seal`]: state at rest and device-link secrets (outside MLS).
//! - [`tokens`]: anonymous tokens that pay for sealed sends (RFC 9497 VOPRF).
//! - [`error`]: the error type [`CryptoError`].
//!
//! **Invariant:** no public function panics on bytes received from outside; all such failures
//! are a typed [`CryptoError`].

pub mod account;
pub mod conversation;
pub mod error;
pub mod franking;
pub mod identity;
pub mod keypackage;
pub mod profile;
pub mod safety;
pub mod seal;
pub mod storage;
pub mod tokens;

pub use account::{AccountKey, DeviceList, verify_device_list};
pub use conversation::{AddOutput, Conversation, ConversationId, Incoming, ProposalKind};
pub use error::CryptoError;
pub use identity::{DeviceIdentity, DevicePublic};
pub use keypackage::{KeyPackages, ValidatedKeyPackage};
pub use profile::ProfileKey;
pub use safety::{DevicePublicSet, safety_number};
pub use sirr_proto::{AccountId, DeviceAddress, DeviceId};
pub use storage::MlsStore;

/// The one ciphersuite Sirr uses: X25519 key exchange, AES-128-GCM, SHA-256, Ed25519
/// signatures (MLS' mandatory-to-implement suite, fast in software and in WASM).
pub const CIPHERSUITE: openmls::prelude::Ciphersuite =
    openmls::prelude::Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

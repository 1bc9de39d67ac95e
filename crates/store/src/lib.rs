//! Storage for `sirrd`, behind traits.
//!
//! The server talks to storage only through the traits here ([`AccountStore`], [`QueueStore`]),
//! so a backend is a module that implements them: [`sqlite`] is the embedded default; a PostgreSQL
//! backend follows the same contract. The contract tests in `tests/contract.rs` are written
//! against the traits so every backend runs the same suite.
//!
//! Promises every backend keeps:
//! - **Durable before answered.** [`QueueStore::enqueue`] returns only once the message is durable
//!   for every recipient device.
//! - **Ordered queues.** Each device's queue is ordered by `seq`, which strictly increases in
//!   commit order, and [`QueueListener::queued`] is called in that same order after commit.
//! - **Payloads are opaque.** Storage never inspects or logs a payload.
//! - **Bounded.** When the write path is saturated, calls fail fast with
//!   [`StoreError::Overloaded`] instead of queueing without bound.

use std::sync::Arc;

use async_trait::async_trait;
use sirr_proto::{AccountId, DeviceAddress, DeviceId, MessageId};

pub mod sqlite;

/// The storage-internal handle of a device: compact and stable for the device's lifetime. The
/// wire protocol never carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey(pub i64);

/// A keyed hash of a phone number. The server stores no phone number in clear: the key lives
/// with the server's data, so the directory can match numbers but a copy of the database alone
/// does not list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PhoneKey(pub [u8; 32]);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The write path is saturated; nothing was stored. Retry later.
    #[error("storage is at capacity")]
    Overloaded,
    /// The store is shutting down.
    #[error("storage is closed")]
    Closed,
    /// The account already has [`sirr_proto::MAX_DEVICES_PER_ACCOUNT`] devices.
    #[error("the account has the maximum number of devices")]
    DeviceLimit,
    /// A verification was consumed concurrently, or a row vanished mid-operation.
    #[error("conflicting concurrent change: {0}")]
    Conflict(&'static str),
    /// The backend failed (disk full, corruption, ...). The text is for operators' logs, never
    /// for clients.
    #[error("storage backend failed: {0}")]
    Backend(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A submitted write whose commit is awaited.
pub type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// A pending phone verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Keyed hash of the code; codes are short, so a plain hash would be brute-forced.
    pub code_hash: [u8; 32],
    /// Milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// Wrong codes tried so far.
    pub attempts: u32,
}

/// A device as storage knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    pub key: DeviceKey,
    pub address: DeviceAddress,
    pub name: String,
    /// SHA-256 of the device's 256-bit secret. High-entropy secrets need no slow hash.
    pub secret_hash: [u8; 32],
    /// Days since the Unix epoch.
    pub created_day: u32,
}

/// Result of [`AccountStore::register_device`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub account: AccountId,
    pub device: DeviceRecord,
    pub new_account: bool,
}

/// A new device to register.
#[derive(Clone, Debug)]
pub struct NewDevice {
    pub phone_key: PhoneKey,
    /// Used only if the number has no account yet.
    pub fresh_account_id: AccountId,
    pub name: String,
    pub secret_hash: [u8; 32],
    pub day: u32,
    /// Delete this verification in the same transaction; fail with [`StoreError::Conflict`] if it
    /// is already gone. `None` only in development mode (fixed code).
    pub consume_verification: bool,
}

/// A message accepted for delivery.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub message_id: MessageId,
    pub from: DeviceAddress,
    /// Milliseconds since the Unix epoch.
    pub server_ts: u64,
    pub payload: Arc<[u8]>,
}

/// A message in a device's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub seq: u64,
    pub message_id: MessageId,
    pub from: DeviceAddress,
    pub server_ts: u64,
    pub payload: Arc<[u8]>,
}

/// Told about each message right after it became durable, in commit order. Implementations must
/// not block: they run on the storage write path.
pub trait QueueListener: Send + Sync + 'static {
    fn queued(&self, device: DeviceKey, message: &QueuedMessage);
}

/// Accounts, devices and phone verifications.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    async fn put_verification(&self, phone: PhoneKey, v: Verification) -> Result<()>;
    async fn verification(&self, phone: PhoneKey) -> Result<Option<Verification>>;
    /// Use up one attempt of a pending, unexpired verification that has attempts left, and
    /// return it (with `attempts` counting this one); `None` when there is no such verification.
    /// The attempt is spent before the code is compared, atomically, so concurrent guesses
    /// cannot share one attempt.
    async fn take_attempt(
        &self,
        phone: PhoneKey,
        now_ms: u64,
        max_attempts: u32,
    ) -> Result<Option<Verification>>;
    async fn delete_verification(&self, phone: PhoneKey) -> Result<()>;
    /// Drop verifications that expired before `now_ms`; returns how many.
    async fn purge_verifications(&self, now_ms: u64) -> Result<u64>;

    /// Create the account for this number if it has none, and add a device to it.
    async fn register_device(&self, new: NewDevice) -> Result<Registration>;
    async fn device(&self, address: DeviceAddress) -> Result<Option<DeviceRecord>>;
    /// The account behind a phone number and its devices.
    async fn account_by_phone(&self, phone: PhoneKey) -> Result<Option<(AccountId, Vec<DeviceId>)>>;
    async fn devices(&self, account: AccountId) -> Result<Vec<DeviceRecord>>;
    /// Remove a device and everything queued for it. Returns whether it existed.
    async fn remove_device(&self, address: DeviceAddress) -> Result<bool>;
}

/// Per-device message queues.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Submit one message for each recipient device. The submission happens during this call,
    /// so messages submitted by successive calls are committed (and get `seq`s) in call order;
    /// the returned future resolves once the message is durable for every recipient. A saturated
    /// store fails the future at once with [`StoreError::Overloaded`].
    fn enqueue(&self, message: NewMessage, to: Vec<DeviceKey>) -> Pending;
    /// Up to `limit` messages with `seq > after`, in order.
    async fn fetch(&self, device: DeviceKey, after: u64, limit: usize) -> Result<Vec<QueuedMessage>>;
    /// Forget delivered messages. Unknown sequence numbers are ignored.
    async fn ack(&self, device: DeviceKey, seqs: Vec<u64>) -> Result<()>;
    async fn queue_len(&self, device: DeviceKey) -> Result<u64>;
    /// Envelopes waiting in all queues (for metrics).
    async fn queued_total(&self) -> Result<u64>;
    /// Drop messages accepted before `cutoff_ms`; returns how many.
    async fn expire(&self, cutoff_ms: u64) -> Result<u64>;
}

/// Everything `sirrd` needs from storage.
#[async_trait]
pub trait Store: AccountStore + QueueStore {
    /// Writes waiting to be applied (a gauge for metrics and load shedding).
    fn write_backlog(&self) -> usize;

    /// Finish pending writes and release the backend. Later calls fail with [`StoreError::Closed`].
    async fn close(&self) -> Result<()>;
}

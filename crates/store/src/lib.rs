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
//! - **Each payload once.** A message for N devices is stored once with N queue entries, so
//!   queued bytes grow with payload + devices, not payload × devices; the payload lives exactly
//!   as long as one of its entries does.
//! - **Bounded.** When the write path is saturated, calls fail fast with
//!   [`StoreError::Overloaded`] instead of queueing without bound.

use std::sync::Arc;

use async_trait::async_trait;
use sirr_proto::{AccountId, ConversationId, DeviceAddress, DeviceId, MessageId};

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
    /// A commit or message was made for another epoch than the conversation's current one.
    #[error("the conversation is at epoch {current}")]
    StaleEpoch { current: u64 },
    /// The sender did not prove membership in the conversation's current epoch (or storage
    /// does not know the conversation).
    #[error("not a member of the conversation")]
    NotMember,
    /// A device list's version is not newer than the stored one.
    #[error("device list version {offered} is not newer than {stored}")]
    StaleVersion { offered: u64, stored: u64 },
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
    /// The name the account's devices sealed for it (opaque here); `None` until it set one.
    pub sealed_name: Option<Vec<u8>>,
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
    /// True when the account was created, or its old identity retired ([`NewDevice::retire`]).
    pub new_account: bool,
    /// The storage keys of the devices a retired identity had (now gone).
    pub retired: Vec<DeviceKey>,
}

/// An account's registration lock as stored: an Argon2id hash of the PIN (a PHC string) and
/// the wrong guesses since the last right one.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistrationLock {
    pub pin_hash: String,
    pub failures: u32,
    /// The account's last active day (its last connection, else its creation): the lock
    /// lapses after a week without activity.
    pub active_day: u32,
}

impl std::fmt::Debug for RegistrationLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrationLock")
            .field("failures", &self.failures)
            .field("active_day", &self.active_day)
            .finish_non_exhaustive()
    }
}

/// A new device to register.
#[derive(Clone, Debug)]
pub struct NewDevice {
    pub phone_key: PhoneKey,
    /// Used only if the number has no account yet.
    pub fresh_account_id: AccountId,
    pub secret_hash: [u8; 32],
    pub day: u32,
    /// Delete this verification in the same transaction; fail with [`StoreError::Conflict`] if it
    /// is already gone. `None` only in development mode (fixed code).
    pub consume_verification: bool,
    /// Retire this account's identity first (it must still be the number's account, else
    /// [`StoreError::Conflict`]): its devices (with their queues and KeyPackages), device list,
    /// consents, ledger and appeals go, its delivery token is cleared, and the new device is
    /// the first of the identity started anew under the same account id. Its abuse decisions
    /// stay (they are the number's record). `None`: add the device to the number's account
    /// as it is (or create it).
    pub retire: Option<AccountId>,
    /// With `retire`: the registration lock the new identity keeps (the PIN hash the
    /// registrant proved it knows), its guess count reset.
    pub keep_lock: Option<String>,
}

/// A message accepted for delivery.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub message_id: MessageId,
    /// `None` for a sealed-sender message: storage never learns who sent it.
    pub from: Option<DeviceAddress>,
    /// Milliseconds since the Unix epoch.
    pub server_ts: u64,
    pub payload: Arc<[u8]>,
    /// Milliseconds since the Unix epoch: a disappearing message is dropped then, delivered or
    /// not, and never fetched after.
    pub expires_at: Option<u64>,
    /// The sender's franking commitment, relayed with the message.
    pub franking: Option<[u8; 32]>,
}

/// What a stored abuse decision says about an account. Stored as its name; a row naming
/// anything else is refused when read ([`UnknownAction`]), never taken for `allow`: a corrupt
/// row must not lift a ban.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbuseAction {
    Allow,
    Throttle,
    Challenge,
    Ban,
}

/// A stored abuse decision names no [`AbuseAction`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown abuse action {0:?} (expected allow, throttle, challenge or ban)")]
pub struct UnknownAction(pub String);

impl AbuseAction {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AbuseAction::Allow => "allow",
            AbuseAction::Throttle => "throttle",
            AbuseAction::Challenge => "challenge",
            AbuseAction::Ban => "ban",
        }
    }
}

impl std::str::FromStr for AbuseAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> std::result::Result<Self, UnknownAction> {
        match s {
            "allow" => Ok(AbuseAction::Allow),
            "throttle" => Ok(AbuseAction::Throttle),
            "challenge" => Ok(AbuseAction::Challenge),
            "ban" => Ok(AbuseAction::Ban),
            other => Err(UnknownAction(other.to_owned())),
        }
    }
}

impl std::fmt::Display for AbuseAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// A reported message the server verified, to be counted once (see [`Store::record_reports`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedReport {
    /// A keyed hash of the message's franking commitment: the same message, however often and
    /// by whomever reported, has the same hash.
    pub hash: [u8; 32],
    /// Milliseconds since the Unix epoch: forgotten then (by then the message is too old for a
    /// report to verify it, so it cannot count again).
    pub expires_at: u64,
    /// The entry for the sender's disclosure ledger, written only the first time.
    pub what: String,
}

/// One decision about an account, by the abuse engine or an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbuseRecord {
    /// Storage's own order of decisions (0 in a new record).
    pub id: i64,
    pub at_ms: u64,
    pub action: AbuseAction,
    pub reasons: Vec<String>,
    /// `engine` or `operator`.
    pub by: String,
}

/// An appeal against a ban.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appeal {
    pub at_ms: u64,
    pub text: String,
}

/// One change of an account's consent to an optional use of its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The purpose's stable name ([`sirr_proto::Purpose::name`]).
    pub purpose: String,
    pub granted: bool,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A KeyPackage to store for a device.
#[derive(Clone, Debug)]
pub struct NewKeyPackage {
    pub bytes: Vec<u8>,
    /// Milliseconds since the Unix epoch; never handed out after this.
    pub expires_at: u64,
}

/// An epoch check that must hold, atomically with the write, for a message to be stored:
/// `epoch` is the conversation's current one and `token_hash` is that epoch's membership token
/// hash (`sirr_proto::MembershipToken::hash`). Storage never learns who the members are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochCheck {
    pub conversation: ConversationId,
    pub epoch: u64,
    pub token_hash: [u8; 32],
    /// Today (days since the Unix epoch): the conversation counts as used today.
    pub day: u32,
}

/// A commit to order: accepted only if `epoch` is the conversation's current epoch (0 for a
/// conversation storage has not seen) and `token_hash` is that epoch's membership token hash
/// (`None` only to create a conversation); then the conversation moves to `epoch + 1`, whose
/// members prove themselves with `next_hash`, and every message is queued, all in one
/// transaction.
#[derive(Clone, Debug)]
pub struct NewCommit {
    pub conversation: ConversationId,
    pub epoch: u64,
    pub token_hash: Option<[u8; 32]>,
    pub next_hash: [u8; 32],
    pub day: u32,
    pub messages: Vec<(NewMessage, Vec<DeviceKey>)>,
}

/// Changes kept per account and purpose in the consent history (the oldest go first).
pub const CONSENT_CHANGES_KEPT: u32 = 32;

/// One stored value, as a data export shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportValue {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
    /// End-to-end encrypted bytes (a queued payload): only their size is read, never the bytes,
    /// so an export costs memory in proportion to its rows, not to what is queued.
    Ciphertext {
        bytes: u64,
    },
}

/// The rows of one table that concern an account: column names, then the rows.
pub type ExportTable = (Vec<String>, Vec<Vec<ExportValue>>);

/// A message in a device's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    pub seq: u64,
    pub message_id: MessageId,
    pub from: Option<DeviceAddress>,
    pub server_ts: u64,
    pub payload: Arc<[u8]>,
    pub franking: Option<[u8; 32]>,
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
    /// Add a device to an existing account (a device linked by another of its devices).
    /// [`StoreError::DeviceLimit`] if the account is full.
    async fn add_device(&self, account: AccountId, secret_hash: [u8; 32], day: u32) -> Result<DeviceRecord>;
    /// Replace a device's sealed name.
    async fn set_device_name(&self, device: DeviceKey, sealed: Vec<u8>) -> Result<()>;
    async fn device(&self, address: DeviceAddress) -> Result<Option<DeviceRecord>>;
    /// The account behind a phone number and its devices.
    async fn account_by_phone(&self, phone: PhoneKey) -> Result<Option<(AccountId, Vec<DeviceId>)>>;
    async fn devices(&self, account: AccountId) -> Result<Vec<DeviceRecord>>;
    /// Remove a device and everything queued for it. Returns whether it existed.
    async fn remove_device(&self, address: DeviceAddress) -> Result<bool>;
    /// Delete an account and every row tied to it: its devices, their keys and queues, the
    /// messages it sent that are still queued, its device list, the verification of its number.
    /// (Conversations are not tied to accounts, so none is touched.)
    /// The deleted bytes are scrubbed from the database files (freed pages zeroed, the
    /// write-ahead log truncated). Returns the storage keys of the devices it had.
    async fn delete_account(&self, account: AccountId) -> Result<Vec<DeviceKey>>;

    /// Note that `account` connected on `day` (days since the Unix epoch). Only the day is
    /// kept, and only the latest.
    async fn record_connection(&self, account: AccountId, day: u32) -> Result<()>;
    /// The day `account` last connected, if it ever did since this was recorded.
    async fn last_seen_day(&self, account: AccountId) -> Result<Option<u32>>;
    /// Append a consent change to `account`'s consent history, in the same write dropping the
    /// purpose's changes older than its latest [`CONSENT_CHANGES_KEPT`], so the history of an
    /// account that toggles a consent forever stays bounded (the change in force is the latest).
    async fn record_consent(&self, account: AccountId, consent: ConsentRecord) -> Result<()>;
    /// `account`'s consent history, oldest first (the last entry per purpose is in force).
    async fn consents(&self, account: AccountId) -> Result<Vec<ConsentRecord>>;
    /// Store the hash of `account`'s sealed-sender delivery token (replacing any before).
    async fn set_access_key_hash(&self, account: AccountId, hash: [u8; 32]) -> Result<()>;
    /// The hash of `account`'s delivery token; `None` if it has none (or does not exist).
    async fn access_key_hash(&self, account: AccountId) -> Result<Option<[u8; 32]>>;
    /// Turn `account`'s registration lock on (`Some` PIN hash) or off, its guess count reset.
    async fn set_registration_lock(&self, account: AccountId, pin_hash: Option<String>) -> Result<()>;
    /// `account`'s registration lock, if it is on.
    async fn registration_lock(&self, account: AccountId) -> Result<Option<RegistrationLock>>;
    /// Spend one PIN guess of `account`'s lock, if it has one and fewer than `max` wrong
    /// guesses are counted, and return the lock with `failures` counting this guess (spent
    /// before the PIN is compared, atomically, so concurrent guesses cannot share one). `None`
    /// when there is no lock or no guess left. A right guess is not refunded here: it retires
    /// the identity, whose kept lock starts at zero.
    async fn take_lock_guess(&self, account: AccountId, max: u32) -> Result<Option<RegistrationLock>>;

    /// Record a decision about `account`; with `drop_outgoing`, also drop every message it
    /// sent that is still queued (a ban), in the same transaction. Returns how many were dropped.
    async fn record_abuse(&self, account: AccountId, record: AbuseRecord, drop_outgoing: bool)
    -> Result<u64>;
    /// `account`'s decisions, oldest first.
    async fn abuse_history(&self, account: AccountId) -> Result<Vec<AbuseRecord>>;
    /// Every account's latest decision recorded after decision `after_id` (0: all), for
    /// loading standings at start-up and following operators' reviews.
    async fn latest_abuse(&self, after_id: i64) -> Result<Vec<(AccountId, AbuseRecord)>>;
    /// Store an appeal unless `account` already has `max_kept` of them; returns whether it was
    /// stored (the check and the insert are one write, so racing appeals cannot pass the cap).
    async fn record_appeal(&self, account: AccountId, appeal: Appeal, max_kept: u32) -> Result<bool>;
    async fn appeals(&self, account: AccountId) -> Result<Vec<Appeal>>;
}

/// Per-device message queues.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Submit one message for each recipient device. The submission happens during this call,
    /// so messages submitted by successive calls are committed (and get `seq`s) in call order;
    /// the returned future resolves once the message is durable for every recipient. A saturated
    /// store fails the future at once with [`StoreError::Overloaded`].
    fn enqueue(&self, message: NewMessage, to: Vec<DeviceKey>) -> Pending;
    /// Up to `limit` messages with `seq > after`, in order, leaving out those expired at `now_ms`.
    async fn fetch(
        &self,
        device: DeviceKey,
        after: u64,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<QueuedMessage>>;
    /// Forget delivered messages. Unknown sequence numbers are ignored. Refused with
    /// [`StoreError::Overloaded`] (nothing done; the messages stay queued and are delivered
    /// again) when the write queue is full, like a send: acks never wait for room, so a flood
    /// of them cannot hold the queue that everyone's sends need.
    async fn ack(&self, device: DeviceKey, seqs: Vec<u64>) -> Result<()>;
    async fn queue_len(&self, device: DeviceKey) -> Result<u64>;
    /// Envelopes waiting in all queues (for metrics).
    async fn queued_total(&self) -> Result<u64>;
    /// Distinct messages stored for those envelopes: each payload is stored once however many
    /// devices wait for it, and goes when the last of them no longer does (acked, expired,
    /// removed or deleted), in the same transaction.
    async fn stored_payloads(&self) -> Result<u64>;
    /// Drop messages accepted before `cutoff_ms`, and disappearing messages whose expiry is
    /// at or before `now_ms`; returns how many.
    async fn expire(&self, cutoff_ms: u64, now_ms: u64) -> Result<u64>;
}

/// The key directory and the order of conversations.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Store one-time KeyPackages for `device` (at most `max_one_time` kept: beyond, the oldest
    /// are dropped) and, if given, replace its last-resort one. Returns the one-time stock.
    async fn add_key_packages(
        &self,
        device: DeviceKey,
        one_time: Vec<NewKeyPackage>,
        last_resort: Option<NewKeyPackage>,
        max_one_time: usize,
    ) -> Result<u32>;
    /// One-time KeyPackages `device` has that are not expired at `now_ms`.
    async fn key_package_stock(&self, device: DeviceKey, now_ms: u64) -> Result<u32>;
    /// For each device, take one unexpired one-time KeyPackage (deleted: each is handed out at
    /// most once, ever), else its unexpired last-resort one (kept). Devices with neither are
    /// left out.
    async fn claim_key_packages(
        &self,
        devices: Vec<(DeviceId, DeviceKey)>,
        now_ms: u64,
    ) -> Result<Vec<(DeviceId, Vec<u8>)>>;
    /// Delete KeyPackages expired before `now_ms`; returns how many.
    async fn purge_key_packages(&self, now_ms: u64) -> Result<u64>;
    /// Store `account`'s device list if `version` is newer than the stored one.
    async fn put_device_list(&self, account: AccountId, version: u64, list: Vec<u8>) -> Result<()>;
    async fn device_list(&self, account: AccountId) -> Result<Option<Vec<u8>>>;
    /// Order a commit (see [`NewCommit`]); resolves to the new epoch once durable.
    fn commit(
        &self,
        commit: NewCommit,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64>> + Send>>;
    /// Like [`QueueStore::enqueue`], but stored only if `check` holds at that point of the
    /// commit order ([`StoreError::StaleEpoch`] / [`StoreError::NotMember`] otherwise).
    fn enqueue_checked(&self, message: NewMessage, to: Vec<DeviceKey>, check: EpochCheck) -> Pending;
    /// Forget conversations with no commit and no message since before day `before_day`
    /// (abandoned: storage cannot tell who was in them, so it cannot remove them with an
    /// account); returns how many.
    async fn purge_conversations(&self, before_day: u32) -> Result<u64>;
}

/// Everything `sirrd` needs from storage.
#[async_trait]
pub trait Store: AccountStore + QueueStore + KeyStore {
    /// Writes waiting to be applied (a gauge for metrics and load shedding).
    fn write_backlog(&self) -> usize;

    /// Append an entry to `account`'s disclosure ledger (hash-chained to the previous one).
    async fn append_disclosure(
        &self,
        account: AccountId,
        at_ms: u64,
        recipient: String,
        what: String,
    ) -> Result<sirr_proto::Disclosure>;
    /// Count verified reported messages of `account` once each: every report whose hash is not
    /// recorded yet is recorded and gets its entry in `account`'s disclosure ledger (addressed
    /// to `recipient`), in one transaction, so concurrent reports of one message count it
    /// once. Returns how many were new.
    async fn record_reports(
        &self,
        account: AccountId,
        at_ms: u64,
        recipient: String,
        reports: Vec<VerifiedReport>,
    ) -> Result<u32>;
    /// Forget the reported-message hashes that expired by `now_ms`; returns how many.
    async fn purge_reports(&self, now_ms: u64) -> Result<u64>;
    /// `account`'s disclosure ledger, oldest first.
    async fn disclosures(&self, account: AccountId) -> Result<Vec<sirr_proto::Disclosure>>;

    /// Every row that concerns `account`, table by table, with every column (GDPR articles 15
    /// and 20). Tables with no such row are present and empty. Queued payloads come back as
    /// [`ExportValue::Ciphertext`] (their size): the backend must not load them.
    async fn export_account(
        &self,
        account: AccountId,
    ) -> Result<std::collections::BTreeMap<String, ExportTable>>;

    /// Every table and its columns, as this backend really stores them: the privacy manifest
    /// is checked against it.
    async fn schema(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>>;

    /// Finish pending writes and release the backend. Later calls fail with [`StoreError::Closed`].
    async fn close(&self) -> Result<()>;
}

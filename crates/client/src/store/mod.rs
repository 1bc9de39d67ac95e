//! The client's local store: an ordered key-value store of named tables, behind one trait so the
//! same client code runs over SQLite natively and over IndexedDB (or memory) in the browser.
//!
//! The model is deliberately small — what every backend can promise:
//! - a fixed set of [`Table`]s, each an ordered map from byte keys to byte values, ordered by
//!   the keys' bytes (so numbers in keys are written big-endian);
//! - point reads ([`Store::get`]) and range scans in either [`Direction`] with a limit
//!   ([`Store::scan`]);
//! - writes only as a [`Batch`], applied by [`Store::commit`] all or nothing and durable when
//!   it returns. There is no open transaction across awaits: IndexedDB transactions die when
//!   the code awaits anything else, so a caller reads first, decides, then commits once.
//!
//! Indexes are tables too (messages by conversation, contacts by account, ...), written in the
//! same batch as the rows they index; [`crate::state::State`] keeps them consistent.
//!
//! Every backend runs the same contract suite ([`contract::run`]).

use std::ops::Bound;

#[cfg(any(test, feature = "contract"))]
pub mod contract;
mod memory;
#[cfg(feature = "native")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "native")]
pub use sqlite::SqliteStore;

use crate::platform::MaybeSendSync;

/// The tables of the local store: one per thing the client keeps, plus one per index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Table {
    /// Small named values (device-list state, the sealed-token wallet, the ledger head, ...).
    Kv,
    /// Values sealed with the at-rest key: the device identity, the MLS state, account keys.
    Sealed,
    /// This account's devices: device id (u32 BE) → empty.
    OwnDevices,
    /// Contacts: phone number (E.164 text) → their account and devices.
    Contacts,
    /// Index: account (16) ‖ phone → empty.
    ContactsByAccount,
    /// Conversations: id (16) → the conversation row.
    Conversations,
    /// Index of active groups: name → conversation id (16). Names are unique among them.
    ConversationsByName,
    /// Messages and notices: message id (16) → the stored message.
    Messages,
    /// Index: conversation (16) ‖ received_at (u64 BE) ‖ sequence (u64 BE) → message id.
    MessagesByConversation,
    /// Index of messages not yet shown: received_at (u64 BE) ‖ sequence (u64 BE) → message id.
    Unprinted,
    /// Index of disappearing messages: expires_at (u64 BE) ‖ message id → empty.
    Expiring,
    /// Ids of envelopes already processed: message id → empty.
    Seen,
    /// Account keys pinned on first use: account (16) → key (32).
    PinnedKeys,
    /// Contacts' profile keys: account (16) → key (32).
    ProfileKeys,
    /// Disappearing-message timers: conversation (16) → seconds (u32 BE).
    Timers,
    /// Reportable received messages: message id → sender and franking opening.
    Reportable,
    /// Index: sender account (16) ‖ server_ts (u64 BE) ‖ message id → message id.
    ReportableBySender,
    /// Accounts whose messages this device drops: account (16) → empty.
    Blocked,
}

impl Table {
    /// Every table, in a fixed order (backends create them all when they open).
    pub const ALL: [Table; 18] = [
        Table::Kv,
        Table::Sealed,
        Table::OwnDevices,
        Table::Contacts,
        Table::ContactsByAccount,
        Table::Conversations,
        Table::ConversationsByName,
        Table::Messages,
        Table::MessagesByConversation,
        Table::Unprinted,
        Table::Expiring,
        Table::Seen,
        Table::PinnedKeys,
        Table::ProfileKeys,
        Table::Timers,
        Table::Reportable,
        Table::ReportableBySender,
        Table::Blocked,
    ];

    /// A stable name (SQL table, IndexedDB object store): never renamed once released.
    pub fn name(self) -> &'static str {
        match self {
            Table::Kv => "kv",
            Table::Sealed => "sealed",
            Table::OwnDevices => "own_devices",
            Table::Contacts => "contacts",
            Table::ContactsByAccount => "contacts_by_account",
            Table::Conversations => "conversations",
            Table::ConversationsByName => "conversations_by_name",
            Table::Messages => "messages",
            Table::MessagesByConversation => "messages_by_conversation",
            Table::Unprinted => "unprinted",
            Table::Expiring => "expiring",
            Table::Seen => "seen",
            Table::PinnedKeys => "pinned_keys",
            Table::ProfileKeys => "profile_keys",
            Table::Timers => "timers",
            Table::Reportable => "reportable",
            Table::ReportableBySender => "reportable_by_sender",
            Table::Blocked => "blocked",
        }
    }
}

/// A range of keys, compared as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Bound<Vec<u8>>,
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> KeyRange {
        KeyRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> KeyRange {
        KeyRange {
            start: Bound::Included(prefix.to_vec()),
            end: match prefix_successor(prefix) {
                Some(end) => Bound::Excluded(end),
                None => Bound::Unbounded,
            },
        }
    }

    /// Whether `key` lies in this range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let after_start = match &self.start {
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
            Bound::Unbounded => true,
        };
        let before_end = match &self.end {
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
            Bound::Unbounded => true,
        };
        after_start && before_end
    }
}

/// The smallest key greater than every key starting with `prefix`; `None` if there is none
/// (the prefix is empty or all 0xff).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The order of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Smallest key first.
    Forward,
    /// Largest key first.
    Reverse,
}

/// One write of a [`Batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Insert or replace.
    Put {
        table: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Remove a key (no error if absent).
    Delete { table: Table, key: Vec<u8> },
    /// Remove every key in a range.
    DeleteRange { table: Table, range: KeyRange },
}

/// Writes applied together by [`Store::commit`], in order (a later op sees an earlier one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch(pub Vec<Op>);

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.0.push(Op::Put {
            table,
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, table: Table, key: impl Into<Vec<u8>>) {
        self.0.push(Op::Delete {
            table,
            key: key.into(),
        });
    }

    pub fn delete_range(&mut self, table: Table, range: KeyRange) {
        self.0.push(Op::DeleteRange { table, range });
    }

    /// Append every op of `other`.
    pub fn extend(&mut self, other: Batch) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What this batch leaves at `table`/`key`, if it writes it: `Some(Some(v))` put,
    /// `Some(None)` deleted, `None` untouched (then the store's value stands). Lets a caller
    /// that builds a batch read its own writes before committing.
    pub fn pending(&self, table: Table, key: &[u8]) -> Option<Option<&[u8]>> {
        self.0.iter().rev().find_map(|op| match op {
            Op::Put {
                table: t,
                key: k,
                value,
            } if *t == table && k == key => Some(Some(value.as_slice())),
            Op::Delete { table: t, key: k } if *t == table && k == key => Some(None),
            Op::DeleteRange { table: t, range } if *t == table && range.contains(key) => Some(None),
            _ => None,
        })
    }
}

/// Why the store failed. Nothing of a failed [`Store::commit`] was applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached now (locked by another process or tab, closed, blocked by
    /// the browser); trying again later may work.
    #[error("the local store is unavailable: {0}")]
    Unavailable(String),
    /// No space left (disk full, browser quota exceeded).
    #[error("the local store is full")]
    Full,
    /// The store's files or records are damaged.
    #[error("the local store is corrupt: {0}")]
    Corrupt(String),
    /// The store holds data in a format this version does not read (older or newer).
    #[error("the local store is in another format: {0}")]
    Incompatible(String),
    /// The caller asked for something no backend accepts (an empty key).
    #[error("invalid store operation: {0}")]
    Invalid(String),
    /// Any other backend failure.
    #[error("local store: {0}")]
    Backend(String),
}

/// Checks a key as every backend must: non-empty (IndexedDB refuses some empty keys, and an
/// empty key is always a bug here).
pub(crate) fn check_key(table: Table, key: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::Invalid(format!(
            "an empty key in table {}",
            table.name()
        )));
    }
    Ok(())
}

/// An ordered key-value store of [`Table`]s.
///
/// Promises, checked by [`contract::run`] for every backend:
/// - keys are ordered by their bytes; scans honour the range, direction and limit;
/// - [`Store::commit`] applies a whole batch or nothing, and the batch is durable when it
///   returns `Ok` (it survives a crash or a reopen);
/// - a deleted value does not linger in the backend's files once the commit returns, where the
///   backend can promise it (SQLite: `secure_delete` and a WAL checkpoint).
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
pub trait Store: MaybeSendSync {
    /// The value at `key` in `table`.
    async fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` (all if `None`) entries of `table` whose keys lie in `range`, in key
    /// order (`Forward`) or reverse key order (`Reverse`).
    async fn scan(
        &self,
        table: Table,
        range: KeyRange,
        direction: Direction,
        limit: Option<usize>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;

    /// Apply `batch` atomically and durably.
    async fn commit(&self, batch: Batch) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff]), None);
        assert_eq!(prefix_successor(&[]), None);
        let r = KeyRange::prefix(&[1, 0xff]);
        assert!(r.contains(&[1, 0xff]));
        assert!(r.contains(&[1, 0xff, 0xff, 3]));
        assert!(!r.contains(&[2]));
        assert!(!r.contains(&[1, 0xfe, 9]));
    }

    #[test]
    fn pending_reads_the_last_write() {
        let mut b = Batch::new();
        b.put(Table::Kv, b"a".to_vec(), b"1".to_vec());
        b.put(Table::Kv, b"a".to_vec(), b"2".to_vec());
        assert_eq!(b.pending(Table::Kv, b"a"), Some(Some(&b"2"[..])));
        assert_eq!(b.pending(Table::Sealed, b"a"), None);
        b.delete_range(Table::Kv, KeyRange::prefix(b"a"));
        assert_eq!(b.pending(Table::Kv, b"a"), Some(None));
        assert_eq!(b.pending(Table::Kv, b"b"), None);
    }

    #[tokio::test]
    async fn memory_store_keeps_the_contract() {
        contract::run(&MemoryStore::new()).await;
    }
}

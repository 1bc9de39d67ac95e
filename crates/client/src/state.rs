//! The client's local state, over a [`Store`] (SQLite natively, IndexedDB or memory in a
//! browser).
//!
//! A native home directory holds
//! - `credentials.json` (mode 0600): account, device and the device secret;
//! - `state.key` (mode 0600): the 256-bit key that seals the secrets in the store at rest;
//! - `server-ca.pem`: a private CA the server's certificate chains to, if any;
//! - `state.db`: the [`SqliteStore`](crate::store::SqliteStore): own devices, contacts,
//!   conversations, received and sent messages, and — sealed with `state.key` — the device
//!   identity and the MLS state (group secrets, keys).
//!
//! A state without a home directory ([`State::in_store`], the browser) keeps those three files'
//! contents in the store's `Kv` table instead; its at-rest key then protects the secrets only
//! when it is wrapped with a passphrase.
//!
//! Writes that belong together go in one [`Batch`] and one [`State::commit`]: the `stage_*`
//! methods add a change to a caller's batch (reading the store, and the batch's own earlier
//! writes, where a change depends on what is there), the `set_*` methods commit one change at
//! once. Processing a pushed message changes the MLS state (ratchets advance, commits merge);
//! the new MLS state, the stored message and the "seen" mark of its id are one batch, committed
//! before the acknowledgement, so a crash at any point either redoes the whole step or none.
//! A redelivery after a crash between the commit and the ack is absorbed by the seen mark and
//! by storing a message id only once.

use std::collections::HashMap;
#[cfg(feature = "native")]
use std::io::Write;
#[cfg(feature = "native")]
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sirr_proto::content::Member;
use sirr_proto::{AccountId, ConversationId, DeviceId, MessageId, Phone, Secret};

use crate::error::{ClientError, Result};
use crate::store::{Batch, Direction, KeyRange, Store, Table};

#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    pub phone: Phone,
    pub account: AccountId,
    pub device: DeviceId,
    pub secret: String,
}

impl Credentials {
    pub fn secret(&self) -> Result<Secret> {
        Secret::from_hex(&self.secret).map_err(|e| ClientError::State(format!("credentials: {e}")))
    }
}

/// A message as stored locally.
#[derive(Clone, Debug, Serialize)]
pub struct StoredMessage {
    pub message_id: String,
    pub conversation: String,
    /// `in` for received, `out` for sent by this account (on any of its devices), `notice` for
    /// something the user must know that is not a message (an undecryptable message, a removal,
    /// a contact's new keys).
    pub direction: String,
    pub from: String,
    pub to: String,
    pub from_device: u32,
    pub text: String,
    /// The group's name; `None` in a one-to-one chat.
    pub group: Option<String>,
    /// Sender's clock, ms since the Unix epoch.
    pub sent_at: u64,
    /// When this device stored it, ms since the Unix epoch.
    pub received_at: u64,
    /// Whether the stated sender number matches the server-authenticated sending account.
    pub verified: bool,
    /// A disappearing message: deleted from this device at this time (ms since the Unix epoch).
    pub expires_at: Option<u64>,
}

/// A received message kept so that it can be reported (see `sirr_crypto::franking`): its
/// sender account and everything a report reveals about it.
#[derive(Clone, Debug)]
pub struct Franked {
    pub sender: AccountId,
    pub opening: sirr_proto::ReportedMessage,
}

/// A conversation as this device knows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConversationRow {
    pub id: ConversationId,
    /// The group's name; `None` for a one-to-one chat.
    pub name: Option<String>,
    /// The other party of a one-to-one chat.
    pub peer: Option<String>,
    pub members: Vec<Member>,
    /// False once this device was removed or left.
    pub active: bool,
}

/// Where the credentials, the at-rest key and the server's CA live.
enum Files {
    /// Files in a native home directory.
    #[cfg(feature = "native")]
    Dir(PathBuf),
    /// Entries of the store's `Kv` table; the two read synchronously are cached here.
    InStore {
        credentials: Option<Credentials>,
        server_ca: Option<Vec<u8>>,
    },
}

/// The local state: a handle on the store, and where the credentials and keys are kept.
pub struct State {
    files: Files,
    store: Arc<dyn Store>,
    /// Unlocks `state.key` when it is wrapped with a passphrase.
    passphrase: Option<String>,
}

/// `state.key` wrapped with a passphrase: this magic, a 16-byte salt, then the 32-byte key
/// sealed under the Argon2id key of the passphrase.
const WRAPPED: &[u8; 8] = b"SIRRPW1\0";

/// `Kv` names of what a state without a home directory keeps in the store.
const KV_CREDENTIALS: &str = "credentials";
const KV_STATE_KEY: &str = "state key";
const KV_SERVER_CA: &str = "server ca";
/// `Kv` name of the last message sequence number (u64 BE): orders messages received in the
/// same millisecond by arrival.
const KV_MESSAGE_SEQ: &str = "message seq";

/// A stored message's record in [`Table::Messages`].
#[derive(Serialize, Deserialize)]
struct MessageRecord {
    conversation: [u8; 16],
    direction: String,
    from: String,
    to: String,
    from_device: u32,
    text: String,
    sent_at: u64,
    received_at: u64,
    verified: bool,
    expires_at: Option<u64>,
    /// Arrival order among messages of the same `received_at`.
    seq: u64,
    printed: bool,
}

impl MessageRecord {
    /// Key of this message in [`Table::Unprinted`] (time ‖ seq).
    fn unprinted_key(&self) -> Vec<u8> {
        [self.received_at.to_be_bytes(), self.seq.to_be_bytes()].concat()
    }

    /// Key of this message in [`Table::MessagesByConversation`] (conversation ‖ time ‖ seq).
    fn by_conversation_key(&self) -> Vec<u8> {
        [&self.conversation[..], &self.unprinted_key()].concat()
    }
}

/// A contact's record in [`Table::Contacts`].
#[derive(Serialize, Deserialize)]
struct ContactRecord {
    account: AccountId,
    devices: Vec<u32>,
}

/// A reportable message's record in [`Table::Reportable`]: its key in the sender index.
#[derive(Serialize, Deserialize)]
struct ReportableRecord {
    by_sender: Vec<u8>,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(v).map_err(|e| ClientError::State(format!("encoding a stored record: {e}")))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> Result<T> {
    postcard::from_bytes(b)
        .map_err(|_| ClientError::State(format!("corrupt {what} record in the local store")))
}

fn array<const N: usize>(what: &str, b: &[u8]) -> Result<[u8; N]> {
    b.try_into()
        .map_err(|_| ClientError::State(format!("corrupt {what} record in the local store")))
}

impl State {
    /// Open (creating) the state in `home`. The directory is made private (0700).
    #[cfg(feature = "native")]
    pub fn open(home: &Path) -> Result<State> {
        std::fs::create_dir_all(home)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))?;
        }
        let store = crate::store::SqliteStore::open(&home.join("state.db"))?;
        Ok(State {
            files: Files::Dir(home.to_owned()),
            store: Arc::new(store),
            passphrase: None,
        })
    }

    /// A state with no home directory: everything, credentials and at-rest key included, lives
    /// in `store` (a browser's IndexedDB, or memory).
    pub async fn in_store(store: Arc<dyn Store>) -> Result<State> {
        let credentials = match store.get(Table::Kv, KV_CREDENTIALS.as_bytes()).await? {
            Some(b) => Some(
                serde_json::from_slice(&b)
                    .map_err(|e| ClientError::State(format!("stored credentials: {e}")))?,
            ),
            None => None,
        };
        let server_ca = store.get(Table::Kv, KV_SERVER_CA.as_bytes()).await?;
        Ok(State {
            files: Files::InStore {
                credentials,
                server_ca,
            },
            store,
            passphrase: None,
        })
    }

    /// The store under this state.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Apply `batch` in one atomic, durable commit.
    pub async fn commit(&self, batch: Batch) -> Result<()> {
        Ok(self.store.commit(batch).await?)
    }

    /// What `table`/`key` holds once `b` is committed: `b`'s own write if it has one.
    async fn read(&self, b: &Batch, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match b.pending(table, key) {
            Some(v) => Ok(v.map(<[u8]>::to_vec)),
            None => Ok(self.store.get(table, key).await?),
        }
    }

    async fn scan_all(&self, table: Table, range: KeyRange) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.store.scan(table, range, Direction::Forward, None).await?)
    }

    /// Where this state lives, for messages.
    fn place(&self) -> String {
        match &self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => home.display().to_string(),
            Files::InStore { .. } => "this store".to_owned(),
        }
    }

    pub fn credentials(&self) -> Result<Credentials> {
        match &self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => {
                let path = home.join("credentials.json");
                let bytes = std::fs::read(&path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        ClientError::State(format!(
                            "{} is not registered; run `sirr register` first",
                            home.display()
                        ))
                    } else {
                        ClientError::State(format!("{}: {e}", path.display()))
                    }
                })?;
                serde_json::from_slice(&bytes)
                    .map_err(|e| ClientError::State(format!("{}: {e}", path.display())))
            }
            Files::InStore { credentials, .. } => credentials
                .clone()
                .ok_or_else(|| ClientError::State(format!("{} is not registered", self.place()))),
        }
    }

    pub fn is_registered(&self) -> bool {
        match &self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => home.join("credentials.json").exists(),
            Files::InStore { credentials, .. } => credentials.is_some(),
        }
    }

    /// Write credentials durably (a file: atomically, with mode 0600).
    pub async fn save_credentials(&mut self, c: &Credentials) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(c).map_err(|e| ClientError::State(e.to_string()))?;
        match &mut self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => write_private(&home.join("credentials.json"), &bytes),
            Files::InStore { credentials, .. } => {
                let mut b = Batch::new();
                b.put(Table::Kv, KV_CREDENTIALS.as_bytes(), bytes);
                self.store.commit(b).await?;
                *credentials = Some(c.clone());
                Ok(())
            }
        }
    }

    pub fn server_ca(&self) -> Option<Vec<u8>> {
        match &self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => std::fs::read(home.join("server-ca.pem")).ok(),
            Files::InStore { server_ca, .. } => server_ca.clone(),
        }
    }

    pub async fn save_server_ca(&mut self, pem: &[u8]) -> Result<()> {
        match &mut self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => Ok(std::fs::write(home.join("server-ca.pem"), pem)?),
            Files::InStore { server_ca, .. } => {
                let mut b = Batch::new();
                b.put(Table::Kv, KV_SERVER_CA.as_bytes(), pem);
                self.store.commit(b).await?;
                *server_ca = Some(pem.to_vec());
                Ok(())
            }
        }
    }

    /// Remove everything this state holds (after the account was deleted).
    pub async fn wipe(self) -> Result<()> {
        match self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => {
                drop(self.store);
                for name in [
                    "credentials.json",
                    "state.key",
                    "server-ca.pem",
                    "state.db",
                    "state.db-wal",
                    "state.db-shm",
                ] {
                    match std::fs::remove_file(home.join(name)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(())
            }
            Files::InStore { .. } => {
                let mut b = Batch::new();
                for t in Table::ALL {
                    b.delete_range(t, KeyRange::all());
                }
                Ok(self.store.commit(b).await?)
            }
        }
    }

    /// Use `passphrase` to unlock `state.key`.
    pub fn unlock(&mut self, passphrase: &str) {
        self.passphrase = Some(passphrase.to_owned());
    }

    /// The stored at-rest key file's bytes, if any.
    async fn key_bytes(&self) -> Result<Option<Vec<u8>>> {
        match &self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => match std::fs::read(home.join("state.key")) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Files::InStore { .. } => Ok(self.store.get(Table::Kv, KV_STATE_KEY.as_bytes()).await?),
        }
    }

    /// The at-rest key, created (a file: mode 0600) on first use.
    pub async fn at_rest_key(&self) -> Result<[u8; 32]> {
        let what = match &self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => home.join("state.key").display().to_string(),
            Files::InStore { .. } => "the stored state key".to_owned(),
        };
        match self.key_bytes().await? {
            Some(bytes) if bytes.len() == 32 => array("state key", &bytes),
            Some(bytes) if bytes.starts_with(WRAPPED) && bytes.len() > WRAPPED.len() + 16 => {
                let Some(passphrase) = &self.passphrase else {
                    return Err(ClientError::State(
                        "this home directory is locked with a passphrase; set SIRR_PASSPHRASE".into(),
                    ));
                };
                let salt: [u8; 16] = array("state key", &bytes[8..24])?;
                let kek = sirr_crypto::seal::key_from_passphrase(passphrase, &salt)?;
                let key = sirr_crypto::seal::open_at_rest(&kek, WRAPPED, &bytes[24..])
                    .map_err(|_| ClientError::State("wrong passphrase".into()))?;
                key.try_into()
                    .map_err(|_| ClientError::State(format!("{what} is malformed")))
            }
            Some(_) => Err(ClientError::State(format!("{what} is not a Sirr key file"))),
            None => {
                let key = sirr_crypto::seal::new_at_rest_key()?;
                self.write_key(&key, self.passphrase.as_deref()).await?;
                Ok(key)
            }
        }
    }

    /// Lock `state.key` with a new passphrase, or unlock it for good with `None`. The key itself
    /// does not change, so nothing else needs re-encrypting.
    pub async fn set_passphrase(&mut self, new: Option<&str>) -> Result<()> {
        let key = self.at_rest_key().await?;
        self.write_key(&key, new).await?;
        self.passphrase = new.map(str::to_owned);
        Ok(())
    }

    /// Write `state.key` durably (a file: atomically, with mode 0600).
    async fn write_key(&self, key: &[u8; 32], passphrase: Option<&str>) -> Result<()> {
        let bytes = match passphrase {
            None => key.to_vec(),
            Some(p) => {
                let salt = sirr_crypto::seal::random_16()?;
                let kek = sirr_crypto::seal::key_from_passphrase(p, &salt)?;
                let mut b = WRAPPED.to_vec();
                b.extend_from_slice(&salt);
                b.extend_from_slice(&sirr_crypto::seal::seal_at_rest(&kek, WRAPPED, key)?);
                b
            }
        };
        match &self.files {
            #[cfg(feature = "native")]
            Files::Dir(home) => write_private(&home.join("state.key"), &bytes),
            Files::InStore { .. } => {
                let mut b = Batch::new();
                b.put(Table::Kv, KV_STATE_KEY.as_bytes(), bytes);
                Ok(self.store.commit(b).await?)
            }
        }
    }

    pub async fn own_devices(&self) -> Result<Vec<DeviceId>> {
        self.scan_all(Table::OwnDevices, KeyRange::all())
            .await?
            .into_iter()
            .map(|(k, _)| Ok(DeviceId(u32::from_be_bytes(array("own device", &k)?))))
            .collect()
    }

    pub async fn set_own_devices(&self, devices: &[DeviceId]) -> Result<()> {
        let mut b = Batch::new();
        b.delete_range(Table::OwnDevices, KeyRange::all());
        for d in devices {
            b.put(Table::OwnDevices, d.0.to_be_bytes(), Vec::new());
        }
        self.commit(b).await
    }

    pub async fn contact(&self, phone: &Phone) -> Result<Option<(AccountId, Vec<DeviceId>)>> {
        let Some(b) = self.store.get(Table::Contacts, phone.as_str().as_bytes()).await? else {
            return Ok(None);
        };
        let c: ContactRecord = decode("contact", &b)?;
        Ok(Some((c.account, c.devices.into_iter().map(DeviceId).collect())))
    }

    /// Add (or replace) a contact to `b`, keeping the by-account index.
    pub async fn stage_contact(
        &self,
        b: &mut Batch,
        phone: &Phone,
        account: AccountId,
        devices: &[DeviceId],
    ) -> Result<()> {
        let key = phone.as_str().as_bytes();
        if let Some(old) = self.read(b, Table::Contacts, key).await? {
            let old: ContactRecord = decode("contact", &old)?;
            b.delete(Table::ContactsByAccount, [&old.account.0[..], key].concat());
        }
        let record = ContactRecord {
            account,
            devices: devices.iter().map(|d| d.0).collect(),
        };
        b.put(Table::Contacts, key, encode(&record)?);
        b.put(
            Table::ContactsByAccount,
            [&account.0[..], key].concat(),
            Vec::new(),
        );
        Ok(())
    }

    pub async fn set_contact(&self, phone: &Phone, account: AccountId, devices: &[DeviceId]) -> Result<()> {
        let mut b = Batch::new();
        self.stage_contact(&mut b, phone, account, devices).await?;
        self.commit(b).await
    }

    /// The phone number of a contact whose account is `account` (the first by number).
    pub async fn contact_phone(&self, account: AccountId) -> Result<Option<Phone>> {
        let found = self
            .store
            .scan(
                Table::ContactsByAccount,
                KeyRange::prefix(&account.0),
                Direction::Forward,
                Some(1),
            )
            .await?;
        Ok(found.first().and_then(|(k, _)| {
            let phone = std::str::from_utf8(&k[16..]).ok()?;
            Phone::parse(phone).ok()
        }))
    }

    /// All contacts as (phone, account), by number.
    pub async fn contacts(&self) -> Result<Vec<(Phone, AccountId)>> {
        let rows = self.scan_all(Table::Contacts, KeyRange::all()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (k, v) in rows {
            let c: ContactRecord = decode("contact", &v)?;
            if let Some(p) = std::str::from_utf8(&k).ok().and_then(|p| Phone::parse(p).ok()) {
                out.push((p, c.account));
            }
        }
        Ok(out)
    }

    /// Add a batch of messages to `b`; returns how many were new (a message id already stored,
    /// or earlier in `b`, is skipped).
    pub async fn stage_messages(
        &self,
        b: &mut Batch,
        msgs: &[(MessageId, StoredMessage, [u8; 16])],
    ) -> Result<usize> {
        let mut seq = match self.read(b, Table::Kv, KV_MESSAGE_SEQ.as_bytes()).await? {
            Some(v) => u64::from_be_bytes(array("message sequence", &v)?),
            None => 0,
        };
        let mut new = 0;
        for (id, m, conv) in msgs {
            if self.read(b, Table::Messages, &id.0).await?.is_some() {
                continue;
            }
            seq += 1;
            let record = MessageRecord {
                conversation: *conv,
                direction: m.direction.clone(),
                from: m.from.clone(),
                to: m.to.clone(),
                from_device: m.from_device,
                text: m.text.clone(),
                sent_at: m.sent_at,
                received_at: m.received_at,
                verified: m.verified,
                expires_at: m.expires_at,
                seq,
                printed: false,
            };
            if let Some(at) = m.expires_at {
                b.put(
                    Table::Expiring,
                    [&at.to_be_bytes()[..], &id.0].concat(),
                    Vec::new(),
                );
            }
            b.put(Table::Unprinted, record.unprinted_key(), id.0);
            b.put(Table::MessagesByConversation, record.by_conversation_key(), id.0);
            b.put(Table::Messages, id.0, encode(&record)?);
            new += 1;
        }
        b.put(Table::Kv, KV_MESSAGE_SEQ.as_bytes(), seq.to_be_bytes());
        Ok(new)
    }

    /// Store a batch of messages in one commit; returns how many were new.
    pub async fn store_messages(&self, msgs: &[(MessageId, StoredMessage, [u8; 16])]) -> Result<usize> {
        let mut b = Batch::new();
        let new = self.stage_messages(&mut b, msgs).await?;
        self.commit(b).await?;
        Ok(new)
    }

    /// The newest `limit` messages of a conversation, oldest first (they are not marked shown).
    pub async fn history(&self, conversation: ConversationId, limit: usize) -> Result<Vec<StoredMessage>> {
        self.history_page(conversation, limit, None).await
    }

    /// Up to `limit` messages of a conversation strictly older than `before` (by arrival), or
    /// the newest ones when `before` is `None`, oldest first; for paging back through a long
    /// history without reading it all. A `before` this device does not hold gives nothing.
    pub async fn history_page(
        &self,
        conversation: ConversationId,
        limit: usize,
        before: Option<&MessageId>,
    ) -> Result<Vec<StoredMessage>> {
        let range = match before {
            None => KeyRange::prefix(&conversation.0),
            Some(id) => {
                let Some(v) = self.store.get(Table::Messages, &id.0).await? else {
                    return Ok(Vec::new());
                };
                let m: MessageRecord = decode("message", &v)?;
                if m.conversation != conversation.0 {
                    return Ok(Vec::new());
                }
                KeyRange {
                    start: std::ops::Bound::Included(conversation.0.to_vec()),
                    end: std::ops::Bound::Excluded(m.by_conversation_key()),
                }
            }
        };
        let ids = self
            .store
            .scan(
                Table::MessagesByConversation,
                range,
                Direction::Reverse,
                Some(limit),
            )
            .await?;
        let group = self.conversation(conversation).await?.and_then(|c| c.name);
        let mut out = Vec::with_capacity(ids.len());
        for (_, id) in ids.into_iter().rev() {
            if let Some(v) = self.store.get(Table::Messages, &id).await? {
                out.push(stored(&id, decode("message", &v)?, group.clone()));
            }
        }
        Ok(out)
    }

    /// One stored message, if this device holds it.
    pub async fn message(&self, id: &MessageId) -> Result<Option<StoredMessage>> {
        let Some(v) = self.store.get(Table::Messages, &id.0).await? else {
            return Ok(None);
        };
        let m: MessageRecord = decode("message", &v)?;
        let group = self
            .conversation(ConversationId(m.conversation))
            .await?
            .and_then(|c| c.name);
        Ok(Some(stored(&id.0, m, group)))
    }

    pub async fn sealed(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.store.get(Table::Sealed, name.as_bytes()).await?)
    }

    /// Add a sealed value to `b`.
    pub fn stage_sealed(&self, b: &mut Batch, name: &str, blob: &[u8]) {
        b.put(Table::Sealed, name.as_bytes(), blob);
    }

    pub async fn set_sealed(&self, name: &str, blob: &[u8]) -> Result<()> {
        let mut b = Batch::new();
        self.stage_sealed(&mut b, name, blob);
        self.commit(b).await
    }

    /// The account key pinned for `account` (trust on first use).
    pub async fn pinned_key(&self, account: AccountId) -> Result<Option<[u8; 32]>> {
        match self.store.get(Table::PinnedKeys, &account.0).await? {
            Some(k) => Ok(Some(array("account key", &k)?)),
            None => Ok(None),
        }
    }

    pub async fn pin_key(&self, account: AccountId, key: [u8; 32]) -> Result<()> {
        let mut b = Batch::new();
        b.put(Table::PinnedKeys, account.0, key);
        self.commit(b).await
    }

    pub async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.store.get(Table::Kv, name.as_bytes()).await?)
    }

    pub async fn set(&self, name: &str, value: &[u8]) -> Result<()> {
        let mut b = Batch::new();
        b.put(Table::Kv, name.as_bytes(), value);
        self.commit(b).await
    }

    pub async fn delete(&self, name: &str) -> Result<()> {
        let mut b = Batch::new();
        b.delete(Table::Kv, name.as_bytes());
        self.commit(b).await
    }

    /// Whether a handshake or message with this id was already processed.
    pub async fn seen(&self, id: &MessageId) -> Result<bool> {
        Ok(self.store.get(Table::Seen, &id.0).await?.is_some())
    }

    /// Add the seen mark of `id` to `b`.
    pub fn stage_seen(&self, b: &mut Batch, id: &MessageId) {
        b.put(Table::Seen, id.0, Vec::new());
    }

    pub async fn mark_seen(&self, id: &MessageId) -> Result<()> {
        let mut b = Batch::new();
        self.stage_seen(&mut b, id);
        self.commit(b).await
    }

    pub async fn conversation(&self, id: ConversationId) -> Result<Option<ConversationRow>> {
        match self.store.get(Table::Conversations, &id.0).await? {
            Some(v) => Ok(Some(decode("conversation", &v)?)),
            None => Ok(None),
        }
    }

    /// The active one-to-one conversations with `peer` (a phone number), lowest id first: the
    /// one to write in when a creation race left more than one.
    pub async fn direct_conversations(&self, peer: &str) -> Result<Vec<ConversationId>> {
        // Keys are ids, so the scan is in id order already.
        Ok(self
            .all_conversations()
            .await?
            .into_iter()
            .filter(|c| c.name.is_none() && c.active && c.peer.as_deref() == Some(peer))
            .map(|c| c.id)
            .collect())
    }

    /// The active group called `name`.
    pub async fn group_named(&self, name: &str) -> Result<Option<ConversationRow>> {
        let Some(id) = self
            .store
            .get(Table::ConversationsByName, name.as_bytes())
            .await?
        else {
            return Ok(None);
        };
        let id = ConversationId(array("group name", &id)?);
        Ok(self.conversation(id).await?.filter(|c| c.active))
    }

    async fn all_conversations(&self) -> Result<Vec<ConversationRow>> {
        self.scan_all(Table::Conversations, KeyRange::all())
            .await?
            .iter()
            .map(|(_, v)| decode("conversation", v))
            .collect()
    }

    /// Every conversation: one-to-one chats first (by peer), then groups by name.
    pub async fn conversations(&self) -> Result<Vec<ConversationRow>> {
        let mut rows = self.all_conversations().await?;
        rows.sort_by(|a, b| (&a.name, &a.peer).cmp(&(&b.name, &b.peer)));
        Ok(rows)
    }

    /// Add (or replace) a conversation row to `b`, keeping the index of active group names. A
    /// name another active group holds is refused.
    pub async fn stage_conversation(&self, b: &mut Batch, c: &ConversationRow) -> Result<()> {
        if let Some(old) = self.read(b, Table::Conversations, &c.id.0).await? {
            let old: ConversationRow = decode("conversation", &old)?;
            if let Some(name) = old.name.filter(|_| old.active) {
                b.delete(Table::ConversationsByName, name.into_bytes());
            }
        }
        if let (Some(name), true) = (&c.name, c.active) {
            if let Some(holder) = self.read(b, Table::ConversationsByName, name.as_bytes()).await?
                && holder != c.id.0
            {
                return Err(ClientError::State(format!(
                    "another active group is called {name:?}"
                )));
            }
            b.put(Table::ConversationsByName, name.as_bytes(), c.id.0);
        }
        b.put(Table::Conversations, c.id.0, encode(c)?);
        Ok(())
    }

    pub async fn save_conversation(&self, c: &ConversationRow) -> Result<()> {
        let mut b = Batch::new();
        self.stage_conversation(&mut b, c).await?;
        self.commit(b).await
    }

    /// Add a reportable message to `b` (once per message id).
    pub async fn stage_franking(&self, b: &mut Batch, f: &Franked) -> Result<()> {
        let id = f.opening.message_id.0;
        if self.read(b, Table::Reportable, &id).await?.is_some() {
            return Ok(());
        }
        let by_sender = [&f.sender.0[..], &f.opening.server_ts.to_be_bytes(), &id].concat();
        b.put(
            Table::ReportableBySender,
            by_sender.clone(),
            sirr_proto::encode(&f.opening),
        );
        b.put(Table::Reportable, id, encode(&ReportableRecord { by_sender })?);
        Ok(())
    }

    pub async fn keep_franking(&self, f: &Franked) -> Result<()> {
        let mut b = Batch::new();
        self.stage_franking(&mut b, f).await?;
        self.commit(b).await
    }

    /// The newest `n` reportable messages from `sender`, newest first.
    pub async fn franked_from(&self, sender: AccountId, n: usize) -> Result<Vec<Franked>> {
        self.store
            .scan(
                Table::ReportableBySender,
                KeyRange::prefix(&sender.0),
                Direction::Reverse,
                Some(n),
            )
            .await?
            .iter()
            .map(|(_, b)| {
                let opening = sirr_proto::codec::decode_exact(b)
                    .map_err(|e| ClientError::State(format!("a stored franking opening: {e}")))?;
                Ok(Franked { sender, opening })
            })
            .collect()
    }

    pub async fn block(&self, account: AccountId) -> Result<()> {
        let mut b = Batch::new();
        b.put(Table::Blocked, account.0, Vec::new());
        self.commit(b).await
    }

    pub async fn is_blocked(&self, account: AccountId) -> Result<bool> {
        Ok(self.store.get(Table::Blocked, &account.0).await?.is_some())
    }

    /// The profile key `account` gave us, if any.
    pub async fn profile_key(&self, account: AccountId) -> Result<Option<[u8; 32]>> {
        Ok(self
            .store
            .get(Table::ProfileKeys, &account.0)
            .await?
            .and_then(|k| k.try_into().ok()))
    }

    /// Add to `b`: remember (or with `None`, forget) the profile key of `account`.
    pub fn stage_profile_key(&self, b: &mut Batch, account: AccountId, key: Option<[u8; 32]>) {
        match key {
            Some(k) => b.put(Table::ProfileKeys, account.0, k),
            None => b.delete(Table::ProfileKeys, account.0),
        }
    }

    pub async fn set_profile_key(&self, account: AccountId, key: Option<[u8; 32]>) -> Result<()> {
        let mut b = Batch::new();
        self.stage_profile_key(&mut b, account, key);
        self.commit(b).await
    }

    /// The disappearing-message timer of a conversation, in seconds.
    pub async fn timer(&self, id: ConversationId) -> Result<Option<u32>> {
        match self.store.get(Table::Timers, &id.0).await? {
            Some(v) => Ok(Some(u32::from_be_bytes(array("timer", &v)?))),
            None => Ok(None),
        }
    }

    /// Add a conversation's timer (or with `None`, its removal) to `b`.
    pub fn stage_timer(&self, b: &mut Batch, id: ConversationId, seconds: Option<u32>) {
        match seconds {
            Some(s) => b.put(Table::Timers, id.0, s.to_be_bytes()),
            None => b.delete(Table::Timers, id.0),
        }
    }

    pub async fn set_timer(&self, id: ConversationId, seconds: Option<u32>) -> Result<()> {
        let mut b = Batch::new();
        self.stage_timer(&mut b, id, seconds);
        self.commit(b).await
    }

    /// Delete every disappearing message whose time has come, with its index entries and its
    /// franking opening (a disappeared message cannot be reported any more), in one commit; the
    /// store does not leave the deleted text in its files. Returns how many.
    pub async fn purge_expired(&self, now_ms: u64) -> Result<usize> {
        let range = KeyRange {
            start: std::ops::Bound::Unbounded,
            end: match now_ms.checked_add(1) {
                Some(next) => std::ops::Bound::Excluded(next.to_be_bytes().to_vec()),
                None => std::ops::Bound::Unbounded,
            },
        };
        let due = self.scan_all(Table::Expiring, range).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut b = Batch::new();
        let mut n = 0;
        for (key, _) in due {
            let id = key.get(8..).unwrap_or_default().to_vec();
            b.delete(Table::Expiring, key);
            if id.is_empty() {
                continue;
            }
            if let Some(v) = self.store.get(Table::Messages, &id).await? {
                let m: MessageRecord = decode("message", &v)?;
                b.delete(Table::Unprinted, m.unprinted_key());
                b.delete(Table::MessagesByConversation, m.by_conversation_key());
                b.delete(Table::Messages, id.clone());
                n += 1;
            }
            if let Some(v) = self.store.get(Table::Reportable, &id).await? {
                let r: ReportableRecord = decode("reportable", &v)?;
                b.delete(Table::ReportableBySender, r.by_sender);
                b.delete(Table::Reportable, id);
            }
        }
        self.commit(b).await?;
        Ok(n)
    }

    /// Mark an outgoing message as already shown (the sender typed it).
    pub async fn mark_printed(&self, id: &MessageId) -> Result<()> {
        let Some(v) = self.store.get(Table::Messages, &id.0).await? else {
            return Ok(());
        };
        let mut m: MessageRecord = decode("message", &v)?;
        let mut b = Batch::new();
        b.delete(Table::Unprinted, m.unprinted_key());
        m.printed = true;
        b.put(Table::Messages, id.0, encode(&m)?);
        self.commit(b).await
    }

    /// Messages not yet shown by `recv`, oldest first (by arrival); marks them shown.
    pub async fn take_unprinted(&self) -> Result<Vec<StoredMessage>> {
        let pending = self.scan_all(Table::Unprinted, KeyRange::all()).await?;
        let mut names: HashMap<[u8; 16], Option<String>> = HashMap::new();
        let mut out = Vec::with_capacity(pending.len());
        let mut b = Batch::new();
        for (key, id) in pending {
            b.delete(Table::Unprinted, key);
            let Some(v) = self.store.get(Table::Messages, &id).await? else {
                continue;
            };
            let mut m: MessageRecord = decode("message", &v)?;
            let group = match names.get(&m.conversation) {
                Some(n) => n.clone(),
                None => {
                    let n = self
                        .conversation(ConversationId(m.conversation))
                        .await?
                        .and_then(|c| c.name);
                    names.insert(m.conversation, n.clone());
                    n
                }
            };
            m.printed = true;
            b.put(Table::Messages, id.clone(), encode(&m)?);
            out.push(stored(&id, m, group));
        }
        self.commit(b).await?;
        Ok(out)
    }
}

/// A record as the caller sees it.
fn stored(id: &[u8], m: MessageRecord, group: Option<String>) -> StoredMessage {
    StoredMessage {
        message_id: hex(id),
        conversation: hex(&m.conversation),
        direction: m.direction,
        from: m.from,
        to: m.to,
        from_device: m.from_device,
        text: m.text,
        group,
        sent_at: m.sent_at,
        received_at: m.received_at,
        verified: m.verified,
        expires_at: m.expires_at,
    }
}

/// Write `bytes` to `path` atomically, durably, with mode 0600.
#[cfg(feature = "native")]
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    async fn state() -> State {
        State::in_store(Arc::new(MemoryStore::new())).await.unwrap()
    }

    fn message(text: &str, received_at: u64, expires_at: Option<u64>) -> StoredMessage {
        StoredMessage {
            message_id: String::new(),
            conversation: String::new(),
            direction: "in".into(),
            from: "+15550000001".into(),
            to: "+15550000002".into(),
            from_device: 1,
            text: text.into(),
            group: None,
            sent_at: 1,
            received_at,
            verified: true,
            expires_at,
        }
    }

    fn group(id: u8, name: &str, active: bool) -> ConversationRow {
        ConversationRow {
            id: ConversationId([id; 16]),
            name: Some(name.into()),
            peer: None,
            members: Vec::new(),
            active,
        }
    }

    #[tokio::test]
    async fn messages_are_shown_once_in_arrival_order() {
        let s = state().await;
        s.save_conversation(&group(9, "team", true)).await.unwrap();
        // Same millisecond, ids in the opposite order of arrival.
        let msgs = [
            (MessageId([0xee; 16]), message("first", 100, None), [9; 16]),
            (MessageId([0x01; 16]), message("second", 100, None), [9; 16]),
        ];
        assert_eq!(s.store_messages(&msgs).await.unwrap(), 2);
        assert_eq!(
            s.store_messages(&msgs[..1]).await.unwrap(),
            0,
            "a redelivery is not new"
        );
        let later = [(MessageId([0x00; 16]), message("third", 100, None), [9; 16])];
        assert_eq!(s.store_messages(&later).await.unwrap(), 1);
        let shown = s.take_unprinted().await.unwrap();
        let texts: Vec<&str> = shown.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["first", "second", "third"]);
        assert_eq!(shown[0].group.as_deref(), Some("team"));
        assert_eq!(shown[0].message_id, "ee".repeat(16));
        assert!(s.take_unprinted().await.unwrap().is_empty(), "shown once");
        let history = s.history(ConversationId([9; 16]), 2).await.unwrap();
        let texts: Vec<&str> = history.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["second", "third"], "the newest two, oldest first");
        let older = s
            .history_page(ConversationId([9; 16]), 10, Some(&MessageId([0x00; 16])))
            .await
            .unwrap();
        let texts: Vec<&str> = older.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["first", "second"], "strictly older than `third`");
        let none = s
            .history_page(ConversationId([8; 16]), 10, Some(&MessageId([0x00; 16])))
            .await
            .unwrap();
        assert!(
            none.is_empty(),
            "`before` from another conversation pages nothing"
        );
        let one = s.message(&MessageId([0x01; 16])).await.unwrap().unwrap();
        assert_eq!(
            (one.text.as_str(), one.group.as_deref()),
            ("second", Some("team"))
        );
        assert!(s.message(&MessageId([0x77; 16])).await.unwrap().is_none());

        let own = [(MessageId([0x42; 16]), message("typed", 200, None), [9; 16])];
        s.store_messages(&own).await.unwrap();
        s.mark_printed(&MessageId([0x42; 16])).await.unwrap();
        assert!(s.take_unprinted().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn purging_removes_a_message_everywhere_and_only_when_due() {
        let s = state().await;
        let due = MessageId([1; 16]);
        let msgs = [
            (due, message("goes", 10, Some(1_000)), [5; 16]),
            (MessageId([2; 16]), message("stays", 10, Some(2_000)), [5; 16]),
            (MessageId([3; 16]), message("forever", 10, None), [5; 16]),
        ];
        s.store_messages(&msgs).await.unwrap();
        let sender = AccountId([7; 16]);
        for (id, ts) in [(due, 5), (MessageId([3; 16]), 6)] {
            let opening = sirr_proto::ReportedMessage {
                message_id: id,
                server_ts: ts,
                ..sample_opening()
            };
            s.keep_franking(&Franked { sender, opening }).await.unwrap();
        }
        assert_eq!(s.franked_from(sender, 10).await.unwrap().len(), 2);
        assert_eq!(s.purge_expired(999).await.unwrap(), 0);
        assert_eq!(s.purge_expired(1_000).await.unwrap(), 1, "due at its time");
        assert_eq!(s.purge_expired(1_500).await.unwrap(), 0, "purged once");
        let left: Vec<String> = s
            .history(ConversationId([5; 16]), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(left, ["stays", "forever"]);
        let unread: Vec<String> = s
            .take_unprinted()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert_eq!(unread, ["stays", "forever"]);
        let franked = s.franked_from(sender, 10).await.unwrap();
        assert_eq!(franked.len(), 1, "a disappeared message cannot be reported");
        assert_eq!(franked[0].opening.message_id, MessageId([3; 16]));
        assert!(s.store.get(Table::Messages, &due.0).await.unwrap().is_none());
    }

    fn sample_opening() -> sirr_proto::ReportedMessage {
        sirr_proto::ReportedMessage {
            message_id: MessageId([0; 16]),
            server_ts: 0,
            plaintext: b"padded content".to_vec(),
            franking_key: [1; 32],
            franking: sirr_proto::Franking {
                commitment: [2; 32],
                server_tag: [3; 32],
            },
            sender_device: DeviceId(1),
            sealed: false,
            conversation: ConversationId([5; 16]),
            signature: [4; 64],
        }
    }

    #[tokio::test]
    async fn group_names_are_unique_among_active_groups() {
        let s = state().await;
        s.save_conversation(&group(1, "a", true)).await.unwrap();
        assert_eq!(
            s.group_named("a").await.unwrap().unwrap().id,
            ConversationId([1; 16])
        );
        assert!(
            s.save_conversation(&group(2, "a", true)).await.is_err(),
            "a taken name is refused"
        );
        // Renaming frees the old name; leaving frees the name too.
        s.save_conversation(&group(1, "b", true)).await.unwrap();
        assert!(s.group_named("a").await.unwrap().is_none());
        s.save_conversation(&group(2, "a", true)).await.unwrap();
        s.save_conversation(&group(1, "b", false)).await.unwrap();
        assert!(s.group_named("b").await.unwrap().is_none());
        s.save_conversation(&group(3, "b", true)).await.unwrap();
        assert_eq!(
            s.group_named("b").await.unwrap().unwrap().id,
            ConversationId([3; 16])
        );
        let direct = ConversationRow {
            id: ConversationId([0; 16]),
            name: None,
            peer: Some("+15550000009".into()),
            members: Vec::new(),
            active: true,
        };
        s.save_conversation(&direct).await.unwrap();
        let names: Vec<Option<String>> = s
            .conversations()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [None, Some("a".into()), Some("b".into()), Some("b".into())]
        );
        assert_eq!(
            s.direct_conversations("+15550000009").await.unwrap(),
            [ConversationId([0; 16])]
        );
    }

    #[tokio::test]
    async fn a_contact_is_found_by_account_after_it_moves() {
        let s = state().await;
        let phone = Phone::parse("+15550000003").unwrap();
        s.set_contact(&phone, AccountId([1; 16]), &[DeviceId(1)])
            .await
            .unwrap();
        assert_eq!(
            s.contact_phone(AccountId([1; 16])).await.unwrap(),
            Some(phone.clone())
        );
        // Registered anew: the number now belongs to another account.
        s.set_contact(&phone, AccountId([2; 16]), &[DeviceId(1), DeviceId(2)])
            .await
            .unwrap();
        assert_eq!(s.contact_phone(AccountId([1; 16])).await.unwrap(), None);
        assert_eq!(
            s.contact_phone(AccountId([2; 16])).await.unwrap(),
            Some(phone.clone())
        );
        assert_eq!(
            s.contact(&phone).await.unwrap(),
            Some((AccountId([2; 16]), vec![DeviceId(1), DeviceId(2)]))
        );
        assert_eq!(s.contacts().await.unwrap(), [(phone, AccountId([2; 16]))]);
    }

    #[tokio::test]
    async fn a_state_without_a_home_keeps_its_key_and_credentials_in_the_store() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let mut s = State::in_store(store.clone()).await.unwrap();
        assert!(!s.is_registered());
        let key = s.at_rest_key().await.unwrap();
        assert_eq!(s.at_rest_key().await.unwrap(), key, "created once");
        let creds = Credentials {
            server: "https://sirr.example".into(),
            phone: Phone::parse("+15550000004").unwrap(),
            account: AccountId([4; 16]),
            device: DeviceId(1),
            secret: "00".repeat(32),
        };
        s.save_credentials(&creds).await.unwrap();
        s.set_passphrase(Some("correct horse")).await.unwrap();

        let mut again = State::in_store(store).await.unwrap();
        assert!(again.is_registered());
        assert_eq!(again.credentials().unwrap().account, AccountId([4; 16]));
        assert!(
            again.at_rest_key().await.is_err(),
            "locked without the passphrase"
        );
        again.unlock("correct horse");
        assert_eq!(again.at_rest_key().await.unwrap(), key);
        again.wipe().await.unwrap();
    }
}

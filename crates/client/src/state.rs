//! The client's local state in its home directory.
//!
//! - `credentials.json` (mode 0600): account, device and the device secret;
//! - `state.key` (mode 0600): the 256-bit key that seals the secrets in `state.db` at rest;
//! - `state.db` (SQLite): own devices, contacts, conversations, received and sent messages, and
//!   — sealed with `state.key` — the device identity and the MLS state (group secrets, keys).
//!
//! Processing a pushed message changes the MLS state (ratchets advance, commits merge); the new
//! MLS state, the stored message and the "seen" mark of its id are written in one transaction,
//! before the acknowledgement, so a crash at any point either redoes the whole step or none.
//!
//! A pushed message is written here *before* it is acknowledged to the server, so a crash
//! between the two means a redelivery, which the primary key on `message_id` absorbs.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sirr_proto::content::Member;
use sirr_proto::{AccountId, ConversationId, DeviceId, MessageId, Phone, Secret};

use crate::error::{ClientError, Result};

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

pub struct State {
    home: PathBuf,
    db: Connection,
    /// Unlocks `state.key` when it is wrapped with a passphrase.
    passphrase: Option<String>,
}

/// `state.key` wrapped with a passphrase: this magic, a 16-byte salt, then the 32-byte key
/// sealed under the Argon2id key of the passphrase.
const WRAPPED: &[u8; 8] = b"SIRRPW1\0";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS own_devices (device INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS contacts (
    phone TEXT PRIMARY KEY,
    account BLOB NOT NULL,
    devices TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    message_id   BLOB PRIMARY KEY,
    conversation BLOB NOT NULL,
    direction    TEXT NOT NULL,
    from_phone   TEXT NOT NULL,
    to_phone     TEXT NOT NULL,
    from_device  INTEGER NOT NULL,
    text         TEXT NOT NULL,
    sent_at      INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    verified     INTEGER NOT NULL,
    printed      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_unprinted ON messages (printed, received_at);
CREATE TABLE IF NOT EXISTS sealed (name TEXT PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS conversations (
    id      BLOB PRIMARY KEY,
    name    TEXT,
    peer    TEXT,
    members TEXT NOT NULL DEFAULT '[]',
    active  INTEGER NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX IF NOT EXISTS conversations_name ON conversations (name) WHERE active = 1;
CREATE TABLE IF NOT EXISTS seen (message_id BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS account_keys (account BLOB PRIMARY KEY, key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value BLOB NOT NULL);
-- Disappearing messages: each conversation's timer, and when each message goes.
CREATE TABLE IF NOT EXISTS timers (conversation BLOB PRIMARY KEY, seconds INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS expiring (message_id BLOB PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS expiring_by_time ON expiring (expires_at);
-- Contacts' profile keys, learnt from their one-to-one messages: with one, we can send to
-- them with sealed sender.
CREATE TABLE IF NOT EXISTS profile_keys (account BLOB PRIMARY KEY, key BLOB NOT NULL);
-- What a report needs: received messages with their franking opening (gone with the message).
-- The opening is a postcard `ReportedMessage`. (`franking` held protocol 2 openings, which no
-- server verifies any more.)
DROP TABLE IF EXISTS franking;
CREATE TABLE IF NOT EXISTS reportable (
    message_id BLOB PRIMARY KEY,
    sender     BLOB NOT NULL,
    server_ts  INTEGER NOT NULL,
    opening    BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS reportable_by_sender ON reportable (sender, server_ts);
-- Accounts whose messages this device drops.
CREATE TABLE IF NOT EXISTS blocked (account BLOB PRIMARY KEY);
";

/// A received message kept so that it can be reported (see `sirr_crypto::franking`): its
/// sender account and everything a report reveals about it.
#[derive(Clone, Debug)]
pub struct Franked {
    pub sender: AccountId,
    pub opening: sirr_proto::ReportedMessage,
}

/// A conversation as this device knows it.
#[derive(Clone, Debug, Serialize)]
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl State {
    /// Open (creating) the state in `home`. The directory is made private (0700).
    pub fn open(home: &Path) -> Result<State> {
        std::fs::create_dir_all(home)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))?;
        }
        let db = Connection::open(home.join("state.db"))?;
        db.execute_batch(
            // secure_delete: a deleted (disappeared) message is overwritten, not left in free pages.
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
             PRAGMA secure_delete = ON;",
        )?;
        db.execute_batch(SCHEMA)?;
        Ok(State {
            home: home.to_owned(),
            db,
            passphrase: None,
        })
    }

    fn credentials_path(&self) -> PathBuf {
        self.home.join("credentials.json")
    }

    pub fn credentials(&self) -> Result<Credentials> {
        let path = self.credentials_path();
        let bytes = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ClientError::State(format!(
                    "{} is not registered; run `sirr register` first",
                    self.home.display()
                ))
            } else {
                ClientError::State(format!("{}: {e}", path.display()))
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::State(format!("{}: {e}", path.display())))
    }

    pub fn is_registered(&self) -> bool {
        self.credentials_path().exists()
    }

    /// Write credentials atomically with mode 0600.
    pub fn save_credentials(&self, c: &Credentials) -> Result<()> {
        let tmp = self.home.join("credentials.json.tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(c).map_err(|e| ClientError::State(e.to_string()))?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.credentials_path())?;
        Ok(())
    }

    pub fn server_ca(&self) -> Option<Vec<u8>> {
        std::fs::read(self.home.join("server-ca.pem")).ok()
    }

    pub fn save_server_ca(&self, pem: &[u8]) -> Result<()> {
        std::fs::write(self.home.join("server-ca.pem"), pem)?;
        Ok(())
    }

    pub fn own_devices(&self) -> Result<Vec<DeviceId>> {
        let mut s = self
            .db
            .prepare("SELECT device FROM own_devices ORDER BY device")?;
        let v = s
            .query_map([], |r| Ok(DeviceId(r.get(0)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    pub fn set_own_devices(&self, devices: &[DeviceId]) -> Result<()> {
        let tx = self.db.unchecked_transaction()?;
        tx.execute("DELETE FROM own_devices", [])?;
        for d in devices {
            tx.execute("INSERT INTO own_devices (device) VALUES (?)", [d.0])?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn contact(&self, phone: &Phone) -> Result<Option<(AccountId, Vec<DeviceId>)>> {
        let row: Option<(Vec<u8>, String)> = self
            .db
            .query_row(
                "SELECT account, devices FROM contacts WHERE phone = ?",
                [phone.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((account, devices)) = row else {
            return Ok(None);
        };
        let account: [u8; 16] = account
            .try_into()
            .map_err(|_| ClientError::State("corrupt contact row".into()))?;
        let devices: Vec<u32> =
            serde_json::from_str(&devices).map_err(|_| ClientError::State("corrupt contact row".into()))?;
        Ok(Some((
            AccountId(account),
            devices.into_iter().map(DeviceId).collect(),
        )))
    }

    pub fn set_contact(&self, phone: &Phone, account: AccountId, devices: &[DeviceId]) -> Result<()> {
        let list: Vec<u32> = devices.iter().map(|d| d.0).collect();
        self.db.execute(
            "INSERT OR REPLACE INTO contacts (phone, account, devices) VALUES (?, ?, ?)",
            params![
                phone.as_str(),
                &account.0[..],
                serde_json::to_string(&list).unwrap_or_default()
            ],
        )?;
        Ok(())
    }

    /// Phone numbers of contacts whose account is `account`.
    pub fn contact_phone(&self, account: AccountId) -> Result<Option<Phone>> {
        let p: Option<String> = self
            .db
            .query_row(
                "SELECT phone FROM contacts WHERE account = ?",
                [&account.0[..]],
                |r| r.get(0),
            )
            .optional()?;
        Ok(p.and_then(|p| Phone::parse(&p).ok()))
    }

    /// Update the device list of whichever contact has `account`.
    pub fn set_contact_devices(&self, account: AccountId, devices: &[DeviceId]) -> Result<()> {
        let list: Vec<u32> = devices.iter().map(|d| d.0).collect();
        self.db.execute(
            "UPDATE contacts SET devices = ? WHERE account = ?",
            params![serde_json::to_string(&list).unwrap_or_default(), &account.0[..]],
        )?;
        Ok(())
    }

    /// Store a batch of messages in one transaction; returns how many were new.
    pub fn store_messages(&self, msgs: &[(MessageId, StoredMessage, [u8; 16])]) -> Result<usize> {
        self.tx(|| {
            let mut new = 0;
            let mut s = self.db.prepare_cached(
                "INSERT OR IGNORE INTO messages
                 (message_id, conversation, direction, from_phone, to_phone, from_device, text, sent_at, received_at, verified)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            let mut expiring = self
                .db
                .prepare_cached("INSERT OR IGNORE INTO expiring (message_id, expires_at) VALUES (?, ?)")?;
            for (id, m, conv) in msgs {
                if let Some(at) = m.expires_at {
                    expiring.execute(params![&id.0[..], at as i64])?;
                }
                new += s.execute(params![
                    &id.0[..],
                    &conv[..],
                    m.direction,
                    m.from,
                    m.to,
                    m.from_device,
                    m.text,
                    m.sent_at as i64,
                    m.received_at as i64,
                    m.verified,
                ])?;
            }
            Ok(new)
        })
    }

    /// Runs `f` in a transaction, or inside the one already open (so steps compose).
    pub fn tx<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.db.is_autocommit() {
            return f();
        }
        self.db.execute_batch("BEGIN IMMEDIATE")?;
        match f() {
            Ok(v) => {
                self.db.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.db.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Remove everything this home directory holds (after the account was deleted).
    pub fn wipe(self) -> Result<()> {
        let home = self.home.clone();
        drop(self.db);
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

    /// Use `passphrase` to unlock `state.key`.
    pub fn unlock(&mut self, passphrase: &str) {
        self.passphrase = Some(passphrase.to_owned());
    }

    fn key_path(&self) -> PathBuf {
        self.home.join("state.key")
    }

    /// The at-rest key, created (mode 0600) on first use.
    pub fn at_rest_key(&self) -> Result<[u8; 32]> {
        let path = self.key_path();
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => Ok(bytes.try_into().expect("length checked")),
            Ok(bytes) if bytes.starts_with(WRAPPED) && bytes.len() > WRAPPED.len() + 16 => {
                let Some(passphrase) = &self.passphrase else {
                    return Err(ClientError::State(
                        "this home directory is locked with a passphrase; set SIRR_PASSPHRASE".into(),
                    ));
                };
                let salt: [u8; 16] = bytes[8..24].try_into().expect("length checked");
                let kek = sirr_crypto::seal::key_from_passphrase(passphrase, &salt)?;
                let key = sirr_crypto::seal::open_at_rest(&kek, WRAPPED, &bytes[24..])
                    .map_err(|_| ClientError::State("wrong passphrase".into()))?;
                key.try_into()
                    .map_err(|_| ClientError::State(format!("{} is malformed", path.display())))
            }
            Ok(_) => Err(ClientError::State(format!(
                "{} is not a Sirr key file",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = sirr_crypto::seal::new_at_rest_key()?;
                self.write_key(&key, self.passphrase.as_deref())?;
                Ok(key)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Lock `state.key` with a new passphrase, or unlock it for good with `None`. The key itself
    /// does not change, so nothing else needs re-encrypting.
    pub fn set_passphrase(&mut self, new: Option<&str>) -> Result<()> {
        let key = self.at_rest_key()?;
        self.write_key(&key, new)?;
        self.passphrase = new.map(str::to_owned);
        Ok(())
    }

    /// Write `state.key` atomically with mode 0600.
    fn write_key(&self, key: &[u8; 32], passphrase: Option<&str>) -> Result<()> {
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
        let tmp = self.home.join("state.key.tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, self.key_path())?;
        Ok(())
    }

    pub fn sealed(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .query_row("SELECT blob FROM sealed WHERE name = ?", [name], |r| r.get(0))
            .optional()?)
    }

    pub fn set_sealed(&self, name: &str, blob: &[u8]) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO sealed (name, blob) VALUES (?, ?)",
            params![name, blob],
        )?;
        Ok(())
    }

    /// The account key pinned for `account` (trust on first use).
    pub fn pinned_key(&self, account: AccountId) -> Result<Option<[u8; 32]>> {
        let k: Option<Vec<u8>> = self
            .db
            .query_row(
                "SELECT key FROM account_keys WHERE account = ?",
                [&account.0[..]],
                |r| r.get(0),
            )
            .optional()?;
        k.map(|k| {
            k.try_into()
                .map_err(|_| ClientError::State("corrupt account key row".into()))
        })
        .transpose()
    }

    pub fn pin_key(&self, account: AccountId, key: [u8; 32]) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO account_keys (account, key) VALUES (?, ?)",
            params![&account.0[..], &key[..]],
        )?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .query_row("SELECT value FROM kv WHERE name = ?", [name], |r| r.get(0))
            .optional()?)
    }

    pub fn set(&self, name: &str, value: &[u8]) -> Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO kv (name, value) VALUES (?, ?)",
            params![name, value],
        )?;
        Ok(())
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        self.db.execute("DELETE FROM kv WHERE name = ?", [name])?;
        Ok(())
    }

    /// All contacts as (phone, account).
    pub fn contacts(&self) -> Result<Vec<(Phone, AccountId)>> {
        let mut s = self
            .db
            .prepare("SELECT phone, account FROM contacts ORDER BY phone")?;
        let rows = s
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, a)| Some((Phone::parse(&p).ok()?, AccountId(a.try_into().ok()?))))
            .collect())
    }

    /// Whether a handshake or message with this id was already processed.
    pub fn seen(&self, id: &MessageId) -> Result<bool> {
        Ok(self
            .db
            .query_row("SELECT 1 FROM seen WHERE message_id = ?", [&id.0[..]], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn mark_seen(&self, id: &MessageId) -> Result<()> {
        self.db
            .execute("INSERT OR IGNORE INTO seen (message_id) VALUES (?)", [&id.0[..]])?;
        Ok(())
    }

    pub fn conversation(&self, id: ConversationId) -> Result<Option<ConversationRow>> {
        self.db
            .query_row(
                "SELECT id, name, peer, members, active FROM conversations WHERE id = ?",
                [&id.0[..]],
                conversation_row,
            )
            .optional()?
            .transpose()
    }

    /// The active one-to-one conversations with `peer` (a phone number), lowest id first: the
    /// one to write in when a creation race left more than one.
    pub fn direct_conversations(&self, peer: &str) -> Result<Vec<ConversationId>> {
        let mut s = self.db.prepare(
            "SELECT id FROM conversations WHERE peer = ? AND name IS NULL AND active = 1 ORDER BY id",
        )?;
        let ids = s
            .query_map([peer], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(ids
            .into_iter()
            .filter_map(|id| id.try_into().ok().map(ConversationId))
            .collect())
    }

    /// The active group called `name`.
    pub fn group_named(&self, name: &str) -> Result<Option<ConversationRow>> {
        self.db
            .query_row(
                "SELECT id, name, peer, members, active FROM conversations WHERE name = ? AND active = 1",
                [name],
                conversation_row,
            )
            .optional()?
            .transpose()
    }

    pub fn conversations(&self) -> Result<Vec<ConversationRow>> {
        let mut s = self
            .db
            .prepare("SELECT id, name, peer, members, active FROM conversations ORDER BY name, peer")?;
        let rows = s
            .query_map([], conversation_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().collect()
    }

    pub fn save_conversation(&self, c: &ConversationRow) -> Result<()> {
        let members = serde_json::to_string(&c.members).map_err(|e| ClientError::State(e.to_string()))?;
        self.db.execute(
            "INSERT OR REPLACE INTO conversations (id, name, peer, members, active) VALUES (?, ?, ?, ?, ?)",
            params![&c.id.0[..], c.name, c.peer, members, c.active],
        )?;
        Ok(())
    }

    pub fn keep_franking(&self, f: &Franked) -> Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO reportable (message_id, sender, server_ts, opening) VALUES (?, ?, ?, ?)",
            params![
                &f.opening.message_id.0[..],
                &f.sender.0[..],
                f.opening.server_ts as i64,
                sirr_proto::encode(&f.opening)
            ],
        )?;
        Ok(())
    }

    /// The newest `n` reportable messages from `sender`, newest first.
    pub fn franked_from(&self, sender: AccountId, n: usize) -> Result<Vec<Franked>> {
        let mut s = self
            .db
            .prepare("SELECT opening FROM reportable WHERE sender = ? ORDER BY server_ts DESC LIMIT ?")?;
        let openings = s
            .query_map(params![&sender.0[..], n as i64], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        openings
            .iter()
            .map(|b| {
                let opening = sirr_proto::codec::decode_exact(b)
                    .map_err(|e| ClientError::State(format!("a stored franking opening: {e}")))?;
                Ok(Franked { sender, opening })
            })
            .collect()
    }

    pub fn block(&self, account: AccountId) -> Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO blocked (account) VALUES (?)",
            [&account.0[..]],
        )?;
        Ok(())
    }

    pub fn is_blocked(&self, account: AccountId) -> Result<bool> {
        Ok(self
            .db
            .query_row(
                "SELECT 1 FROM blocked WHERE account = ?",
                [&account.0[..]],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// The profile key `account` gave us, if any.
    pub fn profile_key(&self, account: AccountId) -> Result<Option<[u8; 32]>> {
        let k: Option<Vec<u8>> = self
            .db
            .query_row(
                "SELECT key FROM profile_keys WHERE account = ?",
                [&account.0[..]],
                |r| r.get(0),
            )
            .optional()?;
        Ok(k.and_then(|k| k.try_into().ok()))
    }

    /// Remember (or with `None`, forget) the profile key of `account`.
    pub fn set_profile_key(&self, account: AccountId, key: Option<[u8; 32]>) -> Result<()> {
        match key {
            Some(k) => self.db.execute(
                "INSERT OR REPLACE INTO profile_keys (account, key) VALUES (?, ?)",
                params![&account.0[..], &k[..]],
            )?,
            None => self
                .db
                .execute("DELETE FROM profile_keys WHERE account = ?", [&account.0[..]])?,
        };
        Ok(())
    }

    /// The disappearing-message timer of a conversation, in seconds.
    pub fn timer(&self, id: ConversationId) -> Result<Option<u32>> {
        Ok(self
            .db
            .query_row(
                "SELECT seconds FROM timers WHERE conversation = ?",
                [&id.0[..]],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_timer(&self, id: ConversationId, seconds: Option<u32>) -> Result<()> {
        match seconds {
            Some(s) => self.db.execute(
                "INSERT OR REPLACE INTO timers (conversation, seconds) VALUES (?, ?)",
                params![&id.0[..], s],
            )?,
            None => self
                .db
                .execute("DELETE FROM timers WHERE conversation = ?", [&id.0[..]])?,
        };
        Ok(())
    }

    /// Delete every disappearing message whose time has come (overwritten on disk, and the
    /// write-ahead log emptied, so the text does not linger in the files). Returns how many.
    pub fn purge_expired(&self, now_ms: u64) -> Result<usize> {
        let n = self.tx(|| {
            let n = self.db.execute(
                "DELETE FROM messages WHERE message_id IN
                   (SELECT message_id FROM expiring WHERE expires_at <= ?)",
                [now_ms as i64],
            )?;
            self.db
                .execute("DELETE FROM expiring WHERE expires_at <= ?", [now_ms as i64])?;
            // A disappeared message cannot be reported any more either.
            self.db.execute(
                "DELETE FROM reportable WHERE message_id NOT IN (SELECT message_id FROM messages)",
                [],
            )?;
            Ok(n)
        })?;
        if n > 0 {
            self.db
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(n)
    }

    /// Mark an outgoing message as already shown (the sender typed it).
    pub fn mark_printed(&self, id: &MessageId) -> Result<()> {
        self.db.execute(
            "UPDATE messages SET printed = 1 WHERE message_id = ?",
            [&id.0[..]],
        )?;
        Ok(())
    }

    /// Messages not yet shown by `recv`, oldest first; marks them shown.
    pub fn take_unprinted(&self) -> Result<Vec<StoredMessage>> {
        let tx = self.db.unchecked_transaction()?;
        let out = {
            let mut s = tx.prepare(
                "SELECT m.message_id, m.conversation, m.direction, m.from_phone, m.to_phone, m.from_device, m.text,
                        m.sent_at, m.received_at, m.verified, c.name, e.expires_at
                 FROM messages m LEFT JOIN conversations c ON c.id = m.conversation
                 LEFT JOIN expiring e ON e.message_id = m.message_id
                 WHERE m.printed = 0 ORDER BY m.received_at, m.rowid",
            )?;
            s.query_map([], |r| {
                Ok(StoredMessage {
                    message_id: hex(&r.get::<_, Vec<u8>>(0)?),
                    conversation: hex(&r.get::<_, Vec<u8>>(1)?),
                    direction: r.get(2)?,
                    from: r.get(3)?,
                    to: r.get(4)?,
                    from_device: r.get(5)?,
                    text: r.get(6)?,
                    sent_at: r.get::<_, i64>(7)? as u64,
                    received_at: r.get::<_, i64>(8)? as u64,
                    verified: r.get(9)?,
                    group: r.get(10)?,
                    expires_at: r.get::<_, Option<i64>>(11)?.map(|t| t as u64),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.execute("UPDATE messages SET printed = 1 WHERE printed = 0", [])?;
        tx.commit()?;
        Ok(out)
    }
}

fn conversation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ConversationRow>> {
    let id: Vec<u8> = r.get(0)?;
    let members: String = r.get(3)?;
    let name: Option<String> = r.get(1)?;
    let peer: Option<String> = r.get(2)?;
    let active: bool = r.get(4)?;
    Ok((|| {
        let id: [u8; 16] = id
            .try_into()
            .map_err(|_| ClientError::State("corrupt conversation row".into()))?;
        let members: Vec<Member> = serde_json::from_str(&members)
            .map_err(|_| ClientError::State("corrupt conversation row".into()))?;
        Ok(ConversationRow {
            id: ConversationId(id),
            name,
            peer,
            members,
            active,
        })
    })())
}

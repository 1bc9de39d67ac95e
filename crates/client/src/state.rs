//! The client's local state in its home directory.
//!
//! - `credentials.json` (mode 0600): account, device and the device secret;
//! - `state.db` (SQLite): identity, own devices, contacts, and received and sent messages.
//!
//! A pushed message is written here *before* it is acknowledged to the server, so a crash
//! between the two means a redelivery, which the primary key on `message_id` absorbs.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sirr_proto::{AccountId, DeviceId, MessageId, Phone, Secret};

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
    /// `in` for received, `out` for sent by this account (on any of its devices).
    pub direction: String,
    pub from: String,
    pub to: String,
    pub from_device: u32,
    pub text: String,
    /// Sender's clock, ms since the Unix epoch.
    pub sent_at: u64,
    /// When this device stored it, ms since the Unix epoch.
    pub received_at: u64,
    /// Whether the stated sender number matches the server-authenticated sending account.
    pub verified: bool,
}

pub struct State {
    home: PathBuf,
    db: Connection,
}

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
";

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
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )?;
        db.execute_batch(SCHEMA)?;
        Ok(State {
            home: home.to_owned(),
            db,
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
        let tx = self.db.unchecked_transaction()?;
        let mut new = 0;
        {
            let mut s = tx.prepare_cached(
                "INSERT OR IGNORE INTO messages
                 (message_id, conversation, direction, from_phone, to_phone, from_device, text, sent_at, received_at, verified)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )?;
            for (id, m, conv) in msgs {
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
        }
        tx.commit()?;
        Ok(new)
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
                "SELECT message_id, conversation, direction, from_phone, to_phone, from_device, text, sent_at, received_at, verified
                 FROM messages WHERE printed = 0 ORDER BY received_at, rowid",
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
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.execute("UPDATE messages SET printed = 1 WHERE printed = 0", [])?;
        tx.commit()?;
        Ok(out)
    }
}

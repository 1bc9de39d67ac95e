//! The embedded default backend: one SQLite database in WAL mode.
//!
//! ## Concurrency design
//! SQLite allows one writer at a time, so writes are funnelled to a single **writer thread**
//! that owns the only write connection. It takes every operation waiting in its channel (up to
//! [`SqliteOptions::max_batch`]) and applies them in one transaction: one commit, one `fsync`,
//! for the whole batch (group commit). Callers wait on a oneshot for the commit. Under light load
//! a batch is a single operation and latency is one `fsync`; under heavy load batches grow and
//! throughput follows.
//!
//! The channel is bounded ([`SqliteOptions::write_queue`]); enqueueing into a full channel fails
//! at once with [`StoreError::Overloaded`], which the server turns into "retry after".
//!
//! Reads run on a small pool of read-only connections on tokio's blocking threads. WAL lets them
//! proceed while the writer commits.

mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sirr_proto::{AccountId, DeviceAddress, DeviceId, MessageId};
use tokio::sync::{mpsc, oneshot};

use crate::*;
use writer::Op;

/// How hard commits try to reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: every commit is fsynced before it is acknowledged. Survives power loss.
    Full,
    /// `synchronous=NORMAL`: survives a killed process but not a power cut. Faster on slow disks.
    Normal,
}

#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// Operations that may wait for the writer before new ones are refused.
    pub write_queue: usize,
    /// Most operations applied in one transaction.
    pub max_batch: usize,
    /// Read connections.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            write_queue: 16_384,
            max_batch: 4_096,
            readers: 4,
        }
    }
}

/// A handle to the SQLite store. Cloning is cheap (reference counts); all clones share the one
/// writer thread and reader pool.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writes: mpsc::Sender<Op>,
    /// Idle read connections; blocking tasks wait on `reader_free` for one.
    readers: Mutex<Vec<Connection>>,
    reader_free: Condvar,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn open_connection(path: &Path, durability: Durability, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = 5000;
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = {sync};
         PRAGMA secure_delete = FAST;"
    ))
    .map_err(backend)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL").map_err(backend)?;
    let version: usize = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    if version > schema::MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "database schema version {version} is newer than this sirrd ({}); refusing to open",
            schema::MIGRATIONS.len()
        )));
    }
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", i + 1).map_err(backend)?;
        tx.commit().map_err(backend)?;
        tracing::info!(version = i + 1, "applied database migration");
    }
    Ok(())
}

impl SqliteStore {
    /// Open (creating and migrating if needed) the database at `path`. `listener` hears about
    /// every committed message, in order.
    pub fn open(path: &Path, options: SqliteOptions, listener: Arc<dyn QueueListener>) -> Result<Self> {
        let mut conn = open_connection(path, options.durability, false)?;
        migrate(&mut conn)?;
        let mut readers = Vec::with_capacity(options.readers);
        for _ in 0..options.readers.max(1) {
            readers.push(open_connection(path, options.durability, true)?);
        }
        let (tx, rx) = mpsc::channel(options.write_queue.max(1));
        let handle = writer::spawn(conn, rx, options.max_batch.max(1), listener)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writes: tx,
                reader_free: Condvar::new(),
                readers: Mutex::new(readers),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Submit a write that must not be refused for load (acks, account changes): waits for room.
    async fn submit<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .writes
            .send(make(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Run `f` on a read connection.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        // The wait for a free connection happens on the blocking thread, not in this future:
        // once started, a read finishes and gives its connection back whether or not anyone
        // still polls it. (Waiting in the future, e.g. on a semaphore, let a session that
        // stopped polling its queue read while it awaited another read hold a connection, or
        // be handed one, forever; a few such sessions wedged the whole server.)
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut pool = inner.readers.lock().map_err(|_| StoreError::Closed)?;
            let conn = loop {
                match pool.pop() {
                    Some(c) => break c,
                    None => pool = inner.reader_free.wait(pool).map_err(|_| StoreError::Closed)?,
                }
            };
            drop(pool);
            let result = f(&conn).map_err(backend);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            inner.reader_free.notify_one();
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("reader task failed: {e}")))?
    }
}

/// Columns holding end-to-end encrypted bytes: an export reads their size only.
const CIPHERTEXT: &[(&str, &str)] = &[("payloads", "payload")];

fn blob16(v: Vec<u8>) -> rusqlite::Result<[u8; 16]> {
    v.try_into()
        .map_err(|_| rusqlite::Error::InvalidColumnType(0, "id".into(), rusqlite::types::Type::Blob))
}

fn blob32(v: Vec<u8>) -> rusqlite::Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| rusqlite::Error::InvalidColumnType(0, "hash".into(), rusqlite::types::Type::Blob))
}

pub(crate) fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        key: DeviceKey(r.get(0)?),
        address: DeviceAddress {
            account: AccountId(blob16(r.get(1)?)?),
            device: DeviceId(r.get(2)?),
        },
        sealed_name: r.get(3)?,
        secret_hash: blob32(r.get(4)?)?,
        created_day: r.get(5)?,
    })
}

fn abuse_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AbuseRecord> {
    let reasons: String = r.get(3)?;
    Ok(AbuseRecord {
        id: r.get(0)?,
        at_ms: r.get::<_, i64>(1)? as u64,
        action: {
            let name: String = r.get(2)?;
            name.parse::<AbuseAction>().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
            })?
        },
        reasons: serde_json::from_str(&reasons).unwrap_or_else(|_| vec![reasons]),
        by: r.get(4)?,
    })
}

pub(crate) const DEVICE_COLUMNS: &str = "key, account, device, sealed_name, secret_hash, created_day";

#[async_trait]
impl AccountStore for SqliteStore {
    async fn put_verification(&self, phone: PhoneKey, v: Verification) -> Result<()> {
        self.submit(|reply| Op::PutVerification { phone, v, reply }).await
    }

    async fn verification(&self, phone: PhoneKey) -> Result<Option<Verification>> {
        self.read(move |c| {
            c.prepare_cached("SELECT code_hash, expires_at, attempts FROM verifications WHERE phone_key = ?")?
                .query_row([&phone.0[..]], |r| {
                    Ok(Verification {
                        code_hash: blob32(r.get(0)?)?,
                        expires_at: r.get(1)?,
                        attempts: r.get(2)?,
                    })
                })
                .optional()
        })
        .await
    }

    async fn take_attempt(
        &self,
        phone: PhoneKey,
        now_ms: u64,
        max_attempts: u32,
    ) -> Result<Option<Verification>> {
        self.submit(|reply| Op::TakeAttempt {
            phone,
            now_ms,
            max_attempts,
            reply,
        })
        .await
    }

    async fn delete_verification(&self, phone: PhoneKey) -> Result<()> {
        self.submit(|reply| Op::DeleteVerification { phone, reply }).await
    }

    async fn purge_verifications(&self, now_ms: u64) -> Result<u64> {
        self.submit(|reply| Op::PurgeVerifications { now_ms, reply })
            .await
    }

    async fn register_device(&self, new: NewDevice) -> Result<Registration> {
        self.submit(|reply| Op::Register { new, reply }).await
    }

    async fn add_device(&self, account: AccountId, secret_hash: [u8; 32], day: u32) -> Result<DeviceRecord> {
        self.submit(|reply| Op::AddDevice {
            account,
            secret_hash,
            day,
            reply,
        })
        .await
    }

    async fn set_device_name(&self, device: DeviceKey, sealed: Vec<u8>) -> Result<()> {
        self.submit(|reply| Op::SetDeviceName {
            device,
            sealed,
            reply,
        })
        .await
    }

    async fn device(&self, address: DeviceAddress) -> Result<Option<DeviceRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE account = ? AND device = ?"
            ))?
            .query_row(params![&address.account.0[..], address.device.0], device_from_row)
            .optional()
        })
        .await
    }

    async fn account_by_phone(&self, phone: PhoneKey) -> Result<Option<(AccountId, Vec<DeviceId>)>> {
        self.read(move |c| {
            let account: Option<Vec<u8>> = c
                .prepare_cached("SELECT id FROM accounts WHERE phone_key = ?")?
                .query_row([&phone.0[..]], |r| r.get(0))
                .optional()?;
            let Some(account) = account else {
                return Ok(None);
            };
            let devices = c
                .prepare_cached("SELECT device FROM devices WHERE account = ? ORDER BY device")?
                .query_map([&account], |r| Ok(DeviceId(r.get(0)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((AccountId(blob16(account)?), devices)))
        })
        .await
    }

    async fn devices(&self, account: AccountId) -> Result<Vec<DeviceRecord>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE account = ? ORDER BY device"
            ))?
            .query_map([&account.0[..]], device_from_row)?
            .collect()
        })
        .await
    }

    async fn remove_device(&self, address: DeviceAddress) -> Result<bool> {
        self.submit(|reply| Op::RemoveDevice { address, reply }).await
    }

    async fn delete_account(&self, account: AccountId) -> Result<Vec<DeviceKey>> {
        self.submit(|reply| Op::DeleteAccount { account, reply }).await
    }

    async fn record_connection(&self, account: AccountId, day: u32) -> Result<()> {
        self.submit(|reply| Op::RecordConnection { account, day, reply })
            .await
    }

    async fn last_seen_day(&self, account: AccountId) -> Result<Option<u32>> {
        self.read(move |c| {
            c.prepare_cached("SELECT last_seen_day FROM accounts WHERE id = ?")?
                .query_row([&account.0[..]], |r| r.get::<_, Option<u32>>(0))
                .optional()
                .map(Option::flatten)
        })
        .await
    }

    async fn record_consent(&self, account: AccountId, consent: ConsentRecord) -> Result<()> {
        self.submit(|reply| Op::RecordConsent {
            account,
            consent,
            reply,
        })
        .await
    }

    async fn set_access_key_hash(&self, account: AccountId, hash: [u8; 32]) -> Result<()> {
        self.submit(|reply| Op::SetAccessKeyHash { account, hash, reply })
            .await
    }

    async fn set_registration_lock(&self, account: AccountId, pin_hash: Option<String>) -> Result<()> {
        self.submit(|reply| Op::SetRegistrationLock {
            account,
            pin_hash,
            reply,
        })
        .await
    }

    async fn registration_lock(&self, account: AccountId) -> Result<Option<RegistrationLock>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT reglock_hash, reglock_failures, COALESCE(last_seen_day, created_day)
                 FROM accounts WHERE id = ? AND reglock_hash IS NOT NULL",
            )?
            .query_row([&account.0[..]], |r| {
                Ok(RegistrationLock {
                    pin_hash: r.get(0)?,
                    failures: r.get(1)?,
                    active_day: r.get(2)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn take_lock_guess(&self, account: AccountId, max: u32) -> Result<Option<RegistrationLock>> {
        self.submit(|reply| Op::TakeLockGuess { account, max, reply })
            .await
    }

    async fn access_key_hash(&self, account: AccountId) -> Result<Option<[u8; 32]>> {
        self.read(move |c| {
            let v: Option<Option<Vec<u8>>> = c
                .prepare_cached("SELECT access_key_hash FROM accounts WHERE id = ?")?
                .query_row([&account.0[..]], |r| r.get(0))
                .optional()?;
            v.flatten().map(blob32).transpose()
        })
        .await
    }

    async fn record_abuse(
        &self,
        account: AccountId,
        record: AbuseRecord,
        drop_outgoing: bool,
    ) -> Result<u64> {
        self.submit(|reply| Op::RecordAbuse {
            account,
            record,
            drop_outgoing,
            reply,
        })
        .await
    }

    async fn abuse_history(&self, account: AccountId) -> Result<Vec<AbuseRecord>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, at_ms, action, reasons, by FROM abuse_decisions WHERE account = ? ORDER BY id",
            )?
            .query_map([&account.0[..]], abuse_row)?
            .collect()
        })
        .await
    }

    async fn latest_abuse(&self, after_id: i64) -> Result<Vec<(AccountId, AbuseRecord)>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT d.id, d.at_ms, d.action, d.reasons, d.by, d.account FROM abuse_decisions d
                 WHERE d.id = (SELECT MAX(id) FROM abuse_decisions WHERE account = d.account) AND d.id > ?
                 ORDER BY d.id",
            )?
            .query_map([after_id], |r| Ok((AccountId(blob16(r.get(5)?)?), abuse_row(r)?)))?
            .collect()
        })
        .await
    }

    async fn record_appeal(&self, account: AccountId, appeal: Appeal, max_kept: u32) -> Result<bool> {
        self.submit(|reply| Op::RecordAppeal {
            account,
            appeal,
            max_kept,
            reply,
        })
        .await
    }

    async fn appeals(&self, account: AccountId) -> Result<Vec<Appeal>> {
        self.read(move |c| {
            c.prepare_cached("SELECT at_ms, text FROM appeals WHERE account = ? ORDER BY id")?
                .query_map([&account.0[..]], |r| {
                    Ok(Appeal {
                        at_ms: r.get::<_, i64>(0)? as u64,
                        text: r.get(1)?,
                    })
                })?
                .collect()
        })
        .await
    }

    async fn consents(&self, account: AccountId) -> Result<Vec<ConsentRecord>> {
        self.read(move |c| {
            c.prepare_cached("SELECT purpose, granted, at_ms FROM consents WHERE account = ? ORDER BY seq")?
                .query_map([&account.0[..]], |r| {
                    Ok(ConsentRecord {
                        purpose: r.get(0)?,
                        granted: r.get(1)?,
                        at_ms: r.get::<_, i64>(2)? as u64,
                    })
                })?
                .collect()
        })
        .await
    }
}

#[async_trait]
impl QueueStore for SqliteStore {
    fn enqueue(&self, message: NewMessage, to: Vec<DeviceKey>) -> Pending {
        let (reply, rx) = oneshot::channel();
        let submitted = self
            .inner
            .writes
            .try_send(Op::Enqueue {
                message,
                to,
                check: None,
                reply,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            });
        Box::pin(async move {
            submitted?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    async fn fetch(
        &self,
        device: DeviceKey,
        after: u64,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<QueuedMessage>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT q.seq, p.message_id, p.sender_account, p.sender_device, p.server_ts, p.payload, p.franking
                 FROM queue q JOIN payloads p ON p.id = q.payload_id
                 WHERE q.device = ? AND q.seq > ? AND (p.expires_at IS NULL OR p.expires_at > ?)
                 ORDER BY q.seq LIMIT ?",
            )?
            .query_map(
                params![device.0, after as i64, now_ms as i64, limit as i64],
                |r| {
                    Ok(QueuedMessage {
                        seq: r.get::<_, i64>(0)? as u64,
                        message_id: MessageId(blob16(r.get(1)?)?),
                        // Empty for a sealed-sender message.
                        from: match (r.get::<_, Option<Vec<u8>>>(2)?, r.get::<_, Option<u32>>(3)?) {
                            (Some(account), Some(device)) => Some(DeviceAddress {
                                account: AccountId(blob16(account)?),
                                device: DeviceId(device),
                            }),
                            _ => None,
                        },
                        server_ts: r.get::<_, i64>(4)? as u64,
                        payload: r.get::<_, Vec<u8>>(5)?.into(),
                        franking: r.get::<_, Option<Vec<u8>>>(6)?.map(blob32).transpose()?,
                    })
                },
            )?
            .collect()
        })
        .await
    }

    async fn ack(&self, device: DeviceKey, seqs: Vec<u64>) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        self.try_submit(|reply| Op::Ack { device, seqs, reply }).await
    }

    async fn queue_len(&self, device: DeviceKey) -> Result<u64> {
        self.read(move |c| {
            c.prepare_cached("SELECT COUNT(*) FROM queue WHERE device = ?")?
                .query_row([device.0], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    async fn queued_total(&self) -> Result<u64> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    async fn stored_payloads(&self) -> Result<u64> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM payloads", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    async fn expire(&self, cutoff_ms: u64, now_ms: u64) -> Result<u64> {
        self.submit(|reply| Op::Expire {
            cutoff_ms,
            now_ms,
            reply,
        })
        .await
    }
}

impl SqliteStore {
    /// Submit a write that is refused at once when the writer is saturated (load shedding).
    fn try_submit<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send>> {
        let (reply, rx) = oneshot::channel();
        let submitted = self.inner.writes.try_send(make(reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        });
        Box::pin(async move {
            submitted?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn add_key_packages(
        &self,
        device: DeviceKey,
        one_time: Vec<NewKeyPackage>,
        last_resort: Option<NewKeyPackage>,
        max_one_time: usize,
    ) -> Result<u32> {
        self.try_submit(|reply| Op::AddKeyPackages {
            device,
            one_time,
            last_resort,
            max_one_time,
            reply,
        })
        .await
    }

    async fn key_package_stock(&self, device: DeviceKey, now_ms: u64) -> Result<u32> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT COUNT(*) FROM key_packages WHERE device = ? AND last_resort = 0 AND expires_at > ?",
            )?
            .query_row(params![device.0, now_ms as i64], |r| r.get::<_, i64>(0))
            .map(|n| n as u32)
        })
        .await
    }

    async fn claim_key_packages(
        &self,
        devices: Vec<(DeviceId, DeviceKey)>,
        now_ms: u64,
    ) -> Result<Vec<(DeviceId, Vec<u8>)>> {
        self.try_submit(|reply| Op::ClaimKeyPackages {
            devices,
            now_ms,
            reply,
        })
        .await
    }

    async fn purge_key_packages(&self, now_ms: u64) -> Result<u64> {
        self.submit(|reply| Op::PurgeKeyPackages { now_ms, reply }).await
    }

    async fn put_device_list(&self, account: AccountId, version: u64, list: Vec<u8>) -> Result<()> {
        self.submit(|reply| Op::PutDeviceList {
            account,
            version,
            list,
            reply,
        })
        .await
    }

    async fn device_list(&self, account: AccountId) -> Result<Option<Vec<u8>>> {
        self.read(move |c| {
            c.prepare_cached("SELECT list FROM device_lists WHERE account = ?")?
                .query_row([&account.0[..]], |r| r.get(0))
                .optional()
        })
        .await
    }

    fn commit(
        &self,
        commit: NewCommit,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64>> + Send>> {
        self.try_submit(|reply| Op::Commit { commit, reply })
    }

    fn enqueue_checked(&self, message: NewMessage, to: Vec<DeviceKey>, check: EpochCheck) -> Pending {
        self.try_submit(|reply| Op::Enqueue {
            message,
            to,
            check: Some(check),
            reply,
        })
    }

    async fn purge_conversations(&self, before_day: u32) -> Result<u64> {
        self.submit(|reply| Op::PurgeConversations { before_day, reply })
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn write_backlog(&self) -> usize {
        self.inner.writes.max_capacity() - self.inner.writes.capacity()
    }

    async fn append_disclosure(
        &self,
        account: AccountId,
        at_ms: u64,
        recipient: String,
        what: String,
    ) -> Result<sirr_proto::Disclosure> {
        self.submit(|reply| Op::AppendDisclosure {
            account,
            at_ms,
            recipient,
            what,
            reply,
        })
        .await
    }

    async fn record_reports(
        &self,
        account: AccountId,
        at_ms: u64,
        recipient: String,
        reports: Vec<VerifiedReport>,
    ) -> Result<u32> {
        self.submit(|reply| Op::RecordReports {
            account,
            at_ms,
            recipient,
            reports,
            reply,
        })
        .await
    }

    async fn purge_reports(&self, now_ms: u64) -> Result<u64> {
        self.submit(|reply| Op::PurgeReports { now_ms, reply }).await
    }

    async fn disclosures(&self, account: AccountId) -> Result<Vec<sirr_proto::Disclosure>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT seq, at_ms, recipient, what, prev_hash, hash FROM disclosures
                 WHERE account = ? ORDER BY seq",
            )?
            .query_map([&account.0[..]], |r| {
                Ok(sirr_proto::Disclosure {
                    seq: r.get::<_, i64>(0)? as u64,
                    at_ms: r.get::<_, i64>(1)? as u64,
                    recipient: r.get(2)?,
                    what: r.get(3)?,
                    prev_hash: blob32(r.get(4)?)?,
                    hash: blob32(r.get(5)?)?,
                })
            })?
            .collect()
        })
        .await
    }

    async fn export_account(
        &self,
        account: AccountId,
    ) -> Result<std::collections::BTreeMap<String, ExportTable>> {
        // Which rows concern the account, per table (`?1` is the account id).
        const DEVICES: &str = "(SELECT key FROM devices WHERE account = ?1)";
        let wheres: Vec<(&str, String)> = vec![
            ("accounts", "id = ?1".into()),
            ("devices", "account = ?1".into()),
            (
                "verifications",
                "phone_key = (SELECT phone_key FROM accounts WHERE id = ?1)".into(),
            ),
            (
                "queue",
                format!(
                    "device IN {DEVICES} OR payload_id IN (SELECT id FROM payloads WHERE sender_account = ?1)"
                ),
            ),
            // What it sent, and what waits for its devices (shared with the other recipients).
            (
                "payloads",
                format!(
                    "sender_account = ?1 OR id IN (SELECT payload_id FROM queue WHERE device IN {DEVICES})"
                ),
            ),
            ("key_packages", format!("device IN {DEVICES}")),
            ("device_lists", "account = ?1".into()),
            // Nothing ties a conversation to an account (its members are not stored).
            // (Always false; it names `?1` because every filter takes the account.)
            ("conversations", "?1 IS NULL".into()),
            // A verified report's commitment hash names no account (it only makes a message
            // count once), so none of its rows is about the account.
            ("reported_messages", "?1 IS NULL".into()),
            ("disclosures", "account = ?1".into()),
            ("consents", "account = ?1".into()),
            ("abuse_decisions", "account = ?1".into()),
            ("appeals", "account = ?1".into()),
        ];
        self.read(move |c| {
            let mut out = std::collections::BTreeMap::new();
            for (table, filter) in wheres {
                let columns: Vec<String> = c
                    .prepare_cached("SELECT name FROM pragma_table_info(?) ORDER BY cid")?
                    .query_map([table], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                // Ciphertext is selected as its length: SQLite reads a blob's size from the
                // record header without loading its pages, so the payloads never enter memory.
                let select: Vec<String> = columns
                    .iter()
                    .map(|col| {
                        if CIPHERTEXT.contains(&(table, col.as_str())) {
                            format!("length(\"{col}\")")
                        } else {
                            format!("\"{col}\"")
                        }
                    })
                    .collect();
                let mut s = c.prepare(&format!(
                    "SELECT {} FROM {table} WHERE {filter}",
                    select.join(", ")
                ))?;
                let sealed: Vec<bool> = columns
                    .iter()
                    .map(|col| CIPHERTEXT.contains(&(table, col.as_str())))
                    .collect();
                let n = columns.len();
                let rows = s
                    .query_map([&account.0[..]], |r| {
                        (0..n)
                            .map(|i| {
                                Ok(match r.get_ref(i)? {
                                    rusqlite::types::ValueRef::Integer(v) if sealed[i] => {
                                        ExportValue::Ciphertext {
                                            bytes: v.max(0) as u64,
                                        }
                                    }
                                    rusqlite::types::ValueRef::Null => ExportValue::Null,
                                    rusqlite::types::ValueRef::Integer(v) => ExportValue::Integer(v),
                                    rusqlite::types::ValueRef::Real(v) => ExportValue::Text(v.to_string()),
                                    rusqlite::types::ValueRef::Text(t) => {
                                        ExportValue::Text(String::from_utf8_lossy(t).into_owned())
                                    }
                                    rusqlite::types::ValueRef::Blob(b) => ExportValue::Blob(b.to_vec()),
                                })
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.insert(table.to_owned(), (columns, rows));
            }
            Ok(out)
        })
        .await
    }

    async fn schema(&self) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
        self.read(|c| {
            let tables: Vec<String> = c
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = std::collections::BTreeMap::new();
            for t in tables {
                let columns: Vec<String> = c
                    .prepare("SELECT name FROM pragma_table_info(?)")?
                    .query_map([&t], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                out.insert(t, columns);
            }
            Ok(out)
        })
        .await
    }

    async fn close(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        if self.inner.writes.send(Op::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
        let handle = self.inner.writer.lock().map_err(|_| StoreError::Closed)?.take();
        if let Some(h) = handle {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|e| StoreError::Backend(e.to_string()))?
                .map_err(|_| StoreError::Backend("writer thread panicked".into()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ignore;
    impl QueueListener for Ignore {
        fn queued(&self, _: DeviceKey, _: &QueuedMessage) {}
    }

    fn synchronous(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap()
    }

    /// A SIGKILL test cannot see a missing fsync (the page cache survives the process), so the
    /// promise "acknowledged means on disk" is checked where it is made: the default store runs
    /// every connection with `synchronous = FULL` (2) in WAL mode.
    #[test]
    fn default_commits_are_fsynced_before_they_are_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sirr.db");
        let store = SqliteStore::open(&path, SqliteOptions::default(), Arc::new(Ignore)).unwrap();
        let readers = store.inner.readers.lock().unwrap();
        assert!(!readers.is_empty());
        for r in readers.iter() {
            assert_eq!(synchronous(r), 2, "reader connection is not synchronous=FULL");
        }
        let mode: String = readers[0]
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(readers);
        // The writer's connection is made by the same function with the same options.
        let writer = open_connection(&path, SqliteOptions::default().durability, false).unwrap();
        assert_eq!(synchronous(&writer), 2);
        let normal = open_connection(&path, Durability::Normal, false).unwrap();
        assert_eq!(synchronous(&normal), 1, "the check can tell FULL from NORMAL");
    }
}

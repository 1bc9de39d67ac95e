//! The writer thread: the single owner of the write connection. See the module docs of
//! [`super`] for why it exists and how batching works.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use sirr_proto::{AccountId, ConversationId, DeviceAddress, DeviceId, MAX_DEVICES_PER_ACCOUNT};
use tokio::sync::{mpsc, oneshot};

use super::{DEVICE_COLUMNS, backend, device_from_row};
use crate::*;

type Reply<T> = oneshot::Sender<Result<T>>;

/// A unit of work for the writer. Each carries the channel its result goes back on; results are
/// sent only after the transaction holding the operation has committed.
pub(super) enum Op {
    Enqueue {
        message: NewMessage,
        to: Vec<DeviceKey>,
        check: Option<EpochCheck>,
        reply: Reply<()>,
    },
    Commit {
        commit: NewCommit,
        reply: Reply<u64>,
    },
    AddKeyPackages {
        device: DeviceKey,
        one_time: Vec<NewKeyPackage>,
        last_resort: Option<NewKeyPackage>,
        max_one_time: usize,
        reply: Reply<u32>,
    },
    ClaimKeyPackages {
        devices: Vec<(DeviceId, DeviceKey)>,
        now_ms: u64,
        reply: Reply<Vec<(DeviceId, Vec<u8>)>>,
    },
    PurgeKeyPackages {
        now_ms: u64,
        reply: Reply<u64>,
    },
    PurgeConversations {
        before_day: u32,
        reply: Reply<u64>,
    },
    PutDeviceList {
        account: AccountId,
        version: u64,
        list: Vec<u8>,
        reply: Reply<()>,
    },
    Ack {
        device: DeviceKey,
        seqs: Vec<u64>,
        reply: Reply<()>,
    },
    PutVerification {
        phone: PhoneKey,
        v: Verification,
        reply: Reply<()>,
    },
    TakeAttempt {
        phone: PhoneKey,
        now_ms: u64,
        max_attempts: u32,
        reply: Reply<Option<Verification>>,
    },
    DeleteVerification {
        phone: PhoneKey,
        reply: Reply<()>,
    },
    Register {
        new: NewDevice,
        reply: Reply<Registration>,
    },
    RemoveDevice {
        address: DeviceAddress,
        reply: Reply<bool>,
    },
    AppendDisclosure {
        account: AccountId,
        at_ms: u64,
        recipient: String,
        what: String,
        reply: Reply<sirr_proto::Disclosure>,
    },
    RecordReports {
        account: AccountId,
        at_ms: u64,
        recipient: String,
        reports: Vec<VerifiedReport>,
        reply: Reply<u32>,
    },
    PurgeReports {
        now_ms: u64,
        reply: Reply<u64>,
    },
    DeleteAccount {
        account: AccountId,
        reply: Reply<Vec<DeviceKey>>,
    },
    AddDevice {
        account: AccountId,
        secret_hash: [u8; 32],
        day: u32,
        reply: Reply<DeviceRecord>,
    },
    SetDeviceName {
        device: DeviceKey,
        sealed: Vec<u8>,
        reply: Reply<()>,
    },
    Expire {
        cutoff_ms: u64,
        now_ms: u64,
        reply: Reply<u64>,
    },
    RecordConnection {
        account: AccountId,
        day: u32,
        reply: Reply<()>,
    },
    RecordConsent {
        account: AccountId,
        consent: ConsentRecord,
        reply: Reply<()>,
    },
    SetAccessKeyHash {
        account: AccountId,
        hash: [u8; 32],
        reply: Reply<()>,
    },
    SetRegistrationLock {
        account: AccountId,
        pin_hash: Option<String>,
        reply: Reply<()>,
    },
    TakeLockGuess {
        account: AccountId,
        max: u32,
        reply: Reply<Option<RegistrationLock>>,
    },
    RecordAbuse {
        account: AccountId,
        record: AbuseRecord,
        drop_outgoing: bool,
        reply: Reply<u64>,
    },
    RecordAppeal {
        account: AccountId,
        appeal: Appeal,
        max_kept: u32,
        reply: Reply<bool>,
    },
    PurgeVerifications {
        now_ms: u64,
        reply: Reply<u64>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

pub(super) fn spawn(
    conn: Connection,
    rx: mpsc::Receiver<Op>,
    max_batch: usize,
    listener: Arc<dyn QueueListener>,
) -> Result<std::thread::JoinHandle<()>> {
    let next_seq: i64 = conn
        .query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM queue", [], |r| r.get(0))
        .map_err(backend)?;
    let mut writer = Writer {
        conn,
        next_seq: next_seq as u64,
        listener,
        conversations: HashMap::new(),
    };
    std::thread::Builder::new()
        .name("sirr-store-writer".into())
        .spawn(move || writer.run(rx, max_batch))
        .map_err(|e| StoreError::Backend(format!("cannot start writer thread: {e}")))
}

struct Writer {
    conn: Connection,
    next_seq: u64,
    listener: Arc<dyn QueueListener>,
    /// Conversations seen since start (or since the last failed batch, which clears it):
    /// epoch checks on sends then need no read.
    conversations: HashMap<ConversationId, Ordered>,
}

/// How much of the conversation cache to keep before starting afresh.
const CONVERSATION_CACHE_CAP: usize = 100_000;

/// What storage knows of a conversation: where its commit order stands, nothing about who is in it.
#[derive(Clone, Copy)]
struct Ordered {
    epoch: u64,
    /// The current epoch's membership token hash; `None` for a conversation ordered before
    /// schema v5, whose next commit sets it (until then only the epoch is checked).
    member_hash: Option<[u8; 32]>,
    used_day: u32,
}

impl Ordered {
    /// Whether `presented` proves membership in the current epoch.
    fn admits(&self, presented: &[u8; 32]) -> bool {
        use subtle::ConstantTimeEq;
        self.member_hash
            .is_none_or(|stored| bool::from(stored.ct_eq(presented)))
    }
}

/// Delivers an operation's result once the commit's outcome (an error, or none) is known.
type Completion = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// What to do once the batch's fate is known.
enum Done {
    /// `Err` is a refusal for a domain reason (nothing was written); the batch goes on.
    Enqueued(Reply<()>, Result<Vec<(DeviceKey, QueuedMessage)>>),
    Committed(Reply<u64>, Result<(u64, Vec<(DeviceKey, QueuedMessage)>)>),
    Reply(Completion),
    Shutdown(oneshot::Sender<()>),
}

fn finish<T: Send + 'static>(reply: Reply<T>, result: Result<T>) -> Done {
    Done::Reply(Box::new(move |commit_err| {
        let _ = reply.send(match commit_err {
            Some(e) => Err(StoreError::Backend(format!("commit failed: {e}"))),
            None => result,
        });
    }))
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Op>, max_batch: usize) {
        let mut batch = Vec::with_capacity(max_batch);
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            let stop = self.apply(&mut batch);
            if stop {
                break;
            }
        }
        // Dropping `rx` fails every waiting caller with `Closed`.
        tracing::debug!("store writer stopped");
    }

    /// Apply a batch in one transaction. Returns true after a shutdown request.
    fn apply(&mut self, batch: &mut Vec<Op>) -> bool {
        let mut done = Vec::with_capacity(batch.len());
        // Deleting an account scrubs: freed pages are zeroed in this transaction, and the
        // write-ahead log, which still holds the old pages, is truncated after it.
        let scrub = batch.iter().any(|op| {
            matches!(op, Op::DeleteAccount { .. })
                || matches!(op, Op::Register { new, .. } if new.retire.is_some())
        });
        if scrub {
            let _ = self.conn.execute_batch("PRAGMA secure_delete = ON");
        }
        let began = self.conn.execute_batch("BEGIN IMMEDIATE").map_err(backend);
        let mut failure = began.err();
        for op in batch.drain(..) {
            if failure.is_some() {
                // The transaction is unusable; everything in it fails alike.
                done.push(self.skip(op));
                continue;
            }
            match self.one(op) {
                Ok(d) => done.push(d),
                Err((e, d)) => {
                    failure = Some(e);
                    done.push(d);
                }
            }
        }
        let commit_err = match failure {
            Some(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Some(e)
            }
            None => self.conn.execute_batch("COMMIT").map_err(backend).err(),
        };
        if let Some(e) = &commit_err {
            tracing::error!(error = %e, "store batch failed; rolled back");
            let _ = self.conn.execute_batch("ROLLBACK");
            self.conversations.clear();
        }
        if scrub {
            if let Err(e) = self.scrub() {
                tracing::error!(error = %e, "could not scrub the write-ahead log after a deletion");
            }
            let _ = self.conn.execute_batch("PRAGMA secure_delete = FAST");
        }
        let mut stop = false;
        for d in done {
            match d {
                Done::Enqueued(reply, queued) => {
                    let _ = reply.send(match (commit_err.is_none(), queued) {
                        (_, Err(refused)) => Err(refused),
                        (true, Ok(queued)) => {
                            for (device, m) in &queued {
                                self.listener.queued(*device, m);
                            }
                            Ok(())
                        }
                        (false, Ok(_)) => Err(StoreError::Backend("commit failed".into())),
                    });
                }
                Done::Committed(reply, outcome) => {
                    let _ = reply.send(match (commit_err.is_none(), outcome) {
                        (_, Err(refused)) => Err(refused),
                        (true, Ok((epoch, queued))) => {
                            for (device, m) in &queued {
                                self.listener.queued(*device, m);
                            }
                            Ok(epoch)
                        }
                        (false, Ok(_)) => Err(StoreError::Backend("commit failed".into())),
                    });
                }
                Done::Reply(f) => f(commit_err.as_ref()),
                Done::Shutdown(reply) => {
                    let _ = reply.send(());
                    stop = true;
                }
            }
        }
        stop
    }

    fn skip(&self, op: Op) -> Done {
        fn e<T>() -> Result<T> {
            Err(StoreError::Backend("transaction failed".into()))
        }
        match op {
            Op::Enqueue { reply, .. } => Done::Enqueued(reply, Ok(Vec::new())),
            Op::Commit { reply, .. } => Done::Committed(reply, Ok((0, Vec::new()))),
            Op::AddKeyPackages { reply, .. } => finish(reply, e()),
            Op::ClaimKeyPackages { reply, .. } => finish(reply, e()),
            Op::PurgeKeyPackages { reply, .. } | Op::PurgeConversations { reply, .. } => finish(reply, e()),
            Op::PutDeviceList { reply, .. } => finish(reply, e()),
            Op::Ack { reply, .. }
            | Op::PutVerification { reply, .. }
            | Op::DeleteVerification { reply, .. } => finish(reply, e()),
            Op::Register { reply, .. } => finish(reply, e()),
            Op::TakeAttempt { reply, .. } => finish(reply, e()),
            Op::RemoveDevice { reply, .. } => finish(reply, e()),
            Op::SetDeviceName { reply, .. } => finish(reply, e()),
            Op::AddDevice { reply, .. } => finish(reply, e()),
            Op::DeleteAccount { reply, .. } => finish(reply, e()),
            Op::AppendDisclosure { reply, .. } => finish(reply, e()),
            Op::RecordReports { reply, .. } => finish(reply, e()),
            Op::PurgeReports { reply, .. } => finish(reply, e()),
            Op::Expire { reply, .. } | Op::PurgeVerifications { reply, .. } => finish(reply, e()),
            Op::RecordConnection { reply, .. }
            | Op::RecordConsent { reply, .. }
            | Op::SetAccessKeyHash { reply, .. }
            | Op::SetRegistrationLock { reply, .. } => finish(reply, e()),
            Op::RecordAppeal { reply, .. } => finish(reply, e()),
            Op::RecordAbuse { reply, .. } => finish(reply, e()),
            Op::TakeLockGuess { reply, .. } => finish(reply, e()),
            Op::Shutdown { reply } => Done::Shutdown(reply),
        }
    }

    /// Apply one operation. An `Err` poisons the whole batch (an IO-level failure).
    fn one(&mut self, op: Op) -> std::result::Result<Done, (StoreError, Done)> {
        match op {
            Op::Enqueue {
                message,
                to,
                check,
                reply,
            } => {
                if let Some(check) = check {
                    match self.check_epoch(&check) {
                        Ok(Ok(())) => {}
                        Ok(Err(refused)) => return Ok(Done::Enqueued(reply, Err(refused))),
                        Err(e) => return Err((e, Done::Enqueued(reply, Ok(Vec::new())))),
                    }
                }
                match self.enqueue(&message, &to) {
                    Ok(queued) => Ok(Done::Enqueued(reply, Ok(queued))),
                    Err(e) => Err((e, Done::Enqueued(reply, Ok(Vec::new())))),
                }
            }
            Op::Commit { commit, reply } => match self.commit(commit) {
                Ok(outcome) => Ok(Done::Committed(reply, outcome)),
                Err(e) => Err((e, Done::Committed(reply, Ok((0, Vec::new()))))),
            },
            Op::AddKeyPackages {
                device,
                one_time,
                last_resort,
                max_one_time,
                reply,
            } => self.plain(reply, |c| {
                let mut insert = c.prepare_cached(
                    "INSERT INTO key_packages (device, last_resort, expires_at, bytes) VALUES (?, ?, ?, ?)",
                )?;
                for kp in &one_time {
                    insert.execute(params![device.0, 0, kp.expires_at as i64, &kp.bytes])?;
                }
                if let Some(kp) = &last_resort {
                    c.prepare_cached("DELETE FROM key_packages WHERE device = ? AND last_resort = 1")?
                        .execute([device.0])?;
                    insert.execute(params![device.0, 1, kp.expires_at as i64, &kp.bytes])?;
                }
                // Keep the newest `max_one_time`.
                c.prepare_cached(
                    "DELETE FROM key_packages WHERE device = ?1 AND last_resort = 0 AND id NOT IN
                       (SELECT id FROM key_packages WHERE device = ?1 AND last_resort = 0
                        ORDER BY id DESC LIMIT ?2)",
                )?
                .execute(params![device.0, max_one_time as i64])?;
                c.prepare_cached("SELECT COUNT(*) FROM key_packages WHERE device = ? AND last_resort = 0")?
                    .query_row([device.0], |r| r.get::<_, i64>(0))
                    .map(|n| n as u32)
            }),
            Op::ClaimKeyPackages {
                devices,
                now_ms,
                reply,
            } => self.plain(reply, |c| {
                let mut out = Vec::with_capacity(devices.len());
                let mut take = c.prepare_cached(
                    "DELETE FROM key_packages WHERE id =
                       (SELECT id FROM key_packages WHERE device = ? AND last_resort = 0 AND expires_at > ?
                        ORDER BY id LIMIT 1)
                     RETURNING bytes",
                )?;
                let mut fallback = c.prepare_cached(
                    "SELECT bytes FROM key_packages WHERE device = ? AND last_resort = 1 AND expires_at > ?
                     ORDER BY id DESC LIMIT 1",
                )?;
                for (id, key) in devices {
                    let bytes: Option<Vec<u8>> = take
                        .query_row(params![key.0, now_ms as i64], |r| r.get(0))
                        .optional()?;
                    let bytes = match bytes {
                        Some(b) => Some(b),
                        None => fallback
                            .query_row(params![key.0, now_ms as i64], |r| r.get(0))
                            .optional()?,
                    };
                    if let Some(b) = bytes {
                        out.push((id, b));
                    }
                }
                Ok(out)
            }),
            Op::PurgeKeyPackages { now_ms, reply } => self.plain(reply, |c| {
                let n = c.execute("DELETE FROM key_packages WHERE expires_at <= ?", [now_ms as i64])?;
                Ok(n as u64)
            }),
            Op::PurgeConversations { before_day, reply } => {
                // Reloaded from the table on next use.
                self.conversations.clear();
                self.plain(reply, |c| {
                    let n = c.execute("DELETE FROM conversations WHERE used_day < ?", [before_day])?;
                    Ok(n as u64)
                })
            }
            Op::PutDeviceList {
                account,
                version,
                list,
                reply,
            } => self.in_savepoint(reply, |c| {
                let stored: Option<i64> = c
                    .prepare_cached("SELECT version FROM device_lists WHERE account = ?")
                    .and_then(|mut s| s.query_row([&account.0[..]], |r| r.get(0)).optional())
                    .map_err(backend)?;
                if let Some(stored) = stored
                    && stored as u64 >= version
                {
                    return Err(StoreError::StaleVersion {
                        offered: version,
                        stored: stored as u64,
                    });
                }
                c.prepare_cached(
                    "INSERT OR REPLACE INTO device_lists (account, version, list) VALUES (?, ?, ?)",
                )
                .and_then(|mut s| s.execute(params![&account.0[..], version as i64, &list]))
                .map_err(backend)?;
                Ok(())
            }),
            Op::Ack { device, seqs, reply } => self.plain(reply, |c| {
                let mut stmt = c.prepare_cached("DELETE FROM queue WHERE seq = ? AND device = ?")?;
                for seq in seqs {
                    stmt.execute(params![seq as i64, device.0])?;
                }
                Ok(())
            }),
            Op::PutVerification { phone, v, reply } => self.plain(reply, |c| {
                c.prepare_cached(
                    "INSERT OR REPLACE INTO verifications (phone_key, code_hash, expires_at, attempts)
                     VALUES (?, ?, ?, ?)",
                )?
                .execute(params![
                    &phone.0[..],
                    &v.code_hash[..],
                    v.expires_at as i64,
                    v.attempts
                ])?;
                Ok(())
            }),
            Op::TakeAttempt {
                phone,
                now_ms,
                max_attempts,
                reply,
            } => self.plain(reply, |c| {
                c.prepare_cached(
                    "UPDATE verifications SET attempts = attempts + 1
                     WHERE phone_key = ? AND attempts < ? AND expires_at > ?
                     RETURNING code_hash, expires_at, attempts",
                )?
                .query_row(params![&phone.0[..], max_attempts, now_ms as i64], |r| {
                    let hash: Vec<u8> = r.get(0)?;
                    Ok(Verification {
                        code_hash: hash.try_into().map_err(|_| {
                            rusqlite::Error::InvalidColumnType(
                                0,
                                "code_hash".into(),
                                rusqlite::types::Type::Blob,
                            )
                        })?,
                        expires_at: r.get::<_, i64>(1)? as u64,
                        attempts: r.get(2)?,
                    })
                })
                .optional()
            }),
            Op::DeleteVerification { phone, reply } => self.plain(reply, |c| {
                c.prepare_cached("DELETE FROM verifications WHERE phone_key = ?")?
                    .execute([&phone.0[..]])?;
                Ok(())
            }),
            Op::Register { new, reply } => self.in_savepoint(reply, |c| register(c, new)),
            Op::AppendDisclosure {
                account,
                at_ms,
                recipient,
                what,
                reply,
            } => self.in_savepoint(reply, |c| append_disclosure(c, account, at_ms, recipient, what)),
            Op::RecordReports {
                account,
                at_ms,
                recipient,
                reports,
                reply,
            } => self.in_savepoint(reply, |c| {
                let mut new = 0u32;
                for r in reports {
                    let inserted = c
                        .prepare_cached(
                            "INSERT OR IGNORE INTO reported_messages (hash, expires_at) VALUES (?, ?)",
                        )
                        .and_then(|mut s| s.execute(params![&r.hash[..], r.expires_at as i64]))
                        .map_err(backend)?;
                    if inserted == 1 {
                        append_disclosure(c, account, at_ms, recipient.clone(), r.what)?;
                        new += 1;
                    }
                }
                Ok(new)
            }),
            Op::PurgeReports { now_ms, reply } => self.plain(reply, |c| {
                let n = c.execute(
                    "DELETE FROM reported_messages WHERE expires_at <= ?",
                    [now_ms as i64],
                )?;
                Ok(n as u64)
            }),
            Op::DeleteAccount { account, reply } => self.in_savepoint(reply, |c| delete_account(c, account)),
            Op::SetDeviceName { device, sealed, reply } => self.plain(reply, |c| {
                c.execute(
                    "UPDATE devices SET sealed_name = ? WHERE key = ?",
                    params![sealed, device.0],
                )?;
                Ok(())
            }),
            Op::AddDevice {
                account,
                secret_hash,
                day,
                reply,
            } => self.in_savepoint(reply, |c| {
                let next: Option<u32> = c
                    .prepare_cached("SELECT next_device FROM accounts WHERE id = ?")
                    .and_then(|mut s| s.query_row([&account.0[..]], |r| r.get(0)).optional())
                    .map_err(backend)?;
                let next = next.ok_or(StoreError::Conflict("the account no longer exists"))?;
                insert_device(c, &account.0, next, &secret_hash, day)
            }),
            Op::RemoveDevice { address, reply } => self.in_savepoint(reply, |c| {
                let key: Option<i64> = c
                    .prepare_cached("SELECT key FROM devices WHERE account = ? AND device = ?")
                    .map_err(backend)?
                    .query_row(params![&address.account.0[..], address.device.0], |r| r.get(0))
                    .optional()
                    .map_err(backend)?;
                let Some(key) = key else { return Ok(false) };
                c.execute("DELETE FROM queue WHERE device = ?", [key])
                    .map_err(backend)?;
                c.execute("DELETE FROM devices WHERE key = ?", [key])
                    .map_err(backend)?;
                Ok(true)
            }),
            Op::Expire {
                cutoff_ms,
                now_ms,
                reply,
            } => self.plain(reply, |c| {
                // Counts copies (queue rows); each payload goes with its last copy (the trigger).
                // Disappearing messages whose time is up (a partial index finds them).
                let mut total = c.execute(
                    "DELETE FROM queue WHERE payload_id IN
                       (SELECT id FROM payloads WHERE expires_at IS NOT NULL AND expires_at <= ?)",
                    [now_ms as i64],
                )? as u64;
                // Payloads are in rowid order of acceptance, so the expired ones are a prefix:
                // look at the oldest 10,000 at a time, and stop at the first batch that is not
                // wholly expired.
                const BATCH: i64 = 10_000;
                let mut oldest = c.prepare_cached(
                    "SELECT id FROM (SELECT id, server_ts FROM payloads ORDER BY id LIMIT ?)
                     WHERE server_ts < ?",
                )?;
                let mut drop = c.prepare_cached("DELETE FROM queue WHERE payload_id = ?")?;
                loop {
                    let ids = oldest
                        .query_map(params![BATCH, cutoff_ms as i64], |r| r.get::<_, i64>(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    for id in &ids {
                        total += drop.execute([id])? as u64;
                    }
                    if (ids.len() as i64) < BATCH {
                        return Ok(total);
                    }
                }
            }),
            Op::PurgeVerifications { now_ms, reply } => self.plain(reply, |c| {
                let n = c.execute("DELETE FROM verifications WHERE expires_at < ?", [now_ms as i64])?;
                Ok(n as u64)
            }),
            Op::RecordConnection { account, day, reply } => self.plain(reply, |c| {
                c.prepare_cached(
                    "UPDATE accounts SET last_seen_day = ?2 WHERE id = ?1 AND last_seen_day IS NOT ?2",
                )?
                .execute(params![&account.0[..], day])?;
                Ok(())
            }),
            Op::RecordConsent {
                account,
                consent,
                reply,
            } => self.plain(reply, |c| {
                c.prepare_cached(
                    "INSERT INTO consents (account, seq, purpose, granted, at_ms)
                     SELECT ?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM consents WHERE account = ?1), ?2, ?3, ?4
                     WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?1)",
                )?
                .execute(params![
                    &account.0[..],
                    &consent.purpose,
                    consent.granted,
                    consent.at_ms as i64
                ])?;
                c.prepare_cached(
                    "DELETE FROM consents WHERE account = ?1 AND purpose = ?2 AND seq NOT IN
                       (SELECT seq FROM consents WHERE account = ?1 AND purpose = ?2
                        ORDER BY seq DESC LIMIT ?3)",
                )?
                .execute(params![
                    &account.0[..],
                    &consent.purpose,
                    CONSENT_CHANGES_KEPT
                ])?;
                Ok(())
            }),
            Op::SetAccessKeyHash { account, hash, reply } => self.plain(reply, |c| {
                c.prepare_cached("UPDATE accounts SET access_key_hash = ? WHERE id = ?")?
                    .execute(params![&hash[..], &account.0[..]])?;
                Ok(())
            }),
            Op::SetRegistrationLock {
                account,
                pin_hash,
                reply,
            } => self.plain(reply, |c| {
                c.prepare_cached("UPDATE accounts SET reglock_hash = ?, reglock_failures = 0 WHERE id = ?")?
                    .execute(params![pin_hash, &account.0[..]])?;
                Ok(())
            }),
            Op::TakeLockGuess { account, max, reply } => self.plain(reply, |c| {
                c.prepare_cached(
                    "UPDATE accounts SET reglock_failures = reglock_failures + 1
                     WHERE id = ? AND reglock_hash IS NOT NULL AND reglock_failures < ?
                     RETURNING reglock_hash, reglock_failures, COALESCE(last_seen_day, created_day)",
                )?
                .query_row(params![&account.0[..], max], |r| {
                    Ok(RegistrationLock {
                        pin_hash: r.get(0)?,
                        failures: r.get(1)?,
                        active_day: r.get(2)?,
                    })
                })
                .optional()
            }),
            Op::RecordAbuse {
                account,
                record,
                drop_outgoing,
                reply,
            } => self.plain(reply, |c| {
                let reasons = serde_json::to_string(&record.reasons).unwrap_or_else(|_| "[]".into());
                c.prepare_cached(
                    "INSERT INTO abuse_decisions (account, at_ms, action, reasons, by)
                     SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?1)",
                )?
                .execute(params![
                    &account.0[..],
                    record.at_ms as i64,
                    record.action.as_str(),
                    reasons,
                    &record.by
                ])?;
                if !drop_outgoing {
                    return Ok(0);
                }
                let n = c
                    .prepare_cached(
                        "DELETE FROM queue WHERE payload_id IN (SELECT id FROM payloads WHERE sender_account = ?)",
                    )?
                    .execute([&account.0[..]])?;
                Ok(n as u64)
            }),
            Op::RecordAppeal {
                account,
                appeal,
                max_kept,
                reply,
            } => self.plain(reply, |c| {
                let n = c
                    .prepare_cached(
                        "INSERT INTO appeals (account, at_ms, text)
                         SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM accounts WHERE id = ?1)
                           AND (SELECT COUNT(*) FROM appeals WHERE account = ?1) < ?4",
                    )?
                    .execute(params![&account.0[..], appeal.at_ms as i64, &appeal.text, max_kept])?;
                Ok(n == 1)
            }),
            Op::Shutdown { reply } => Ok(Done::Shutdown(reply)),
        }
    }

    /// Copy the write-ahead log into the database and truncate it, so old page images (which
    /// still hold deleted rows) leave the disk. Readers are idle between their short queries;
    /// a busy checkpoint is retried briefly.
    fn scrub(&mut self) -> Result<()> {
        for _ in 0..50 {
            let busy: i64 = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .map_err(backend)?;
            if busy == 0 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err(StoreError::Backend("checkpoint stayed busy".into()))
    }

    /// Where a conversation's order stands (`None`: storage has not seen it).
    fn conversation(&mut self, id: ConversationId) -> Result<Option<Ordered>> {
        if let Some(c) = self.conversations.get(&id) {
            return Ok(Some(*c));
        }
        let row: Option<(i64, Option<Vec<u8>>, u32)> = self
            .conn
            .prepare_cached("SELECT epoch, member_hash, used_day FROM conversations WHERE id = ?")
            .and_then(|mut s| {
                s.query_row([&id.0[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(backend)?;
        let Some((epoch, hash, used_day)) = row else {
            return Ok(None);
        };
        let ordered = Ordered {
            epoch: epoch as u64,
            member_hash: hash.and_then(|h| h.try_into().ok()),
            used_day,
        };
        if self.conversations.len() >= CONVERSATION_CACHE_CAP {
            self.conversations.clear();
        }
        self.conversations.insert(id, ordered);
        Ok(Some(ordered))
    }

    /// `Ok(Err(_))`: the check failed (a refusal, not a fault). A stale epoch is reported before
    /// the token, so a member that fell behind learns where to catch up to.
    fn check_epoch(&mut self, check: &EpochCheck) -> Result<Result<()>> {
        let Some(c) = self.conversation(check.conversation)? else {
            return Ok(Err(StoreError::NotMember));
        };
        if c.epoch != check.epoch {
            return Ok(Err(StoreError::StaleEpoch { current: c.epoch }));
        }
        if !c.admits(&check.token_hash) {
            return Ok(Err(StoreError::NotMember));
        }
        if c.used_day < check.day {
            // At most one write per conversation and day.
            self.conn
                .prepare_cached("UPDATE conversations SET used_day = ? WHERE id = ?")
                .and_then(|mut s| s.execute(params![check.day, &check.conversation.0[..]]))
                .map_err(backend)?;
            self.conversations.insert(
                check.conversation,
                Ordered {
                    used_day: check.day,
                    ..c
                },
            );
        }
        Ok(Ok(()))
    }

    /// Order a commit: `Ok(Err(_))` is a refusal (nothing written).
    #[allow(clippy::type_complexity)]
    fn commit(&mut self, c: NewCommit) -> Result<Result<(u64, Vec<(DeviceKey, QueuedMessage)>)>> {
        match self.conversation(c.conversation)? {
            None if c.epoch != 0 => return Ok(Err(StoreError::StaleEpoch { current: 0 })),
            None => {}
            Some(current) if current.epoch != c.epoch => {
                return Ok(Err(StoreError::StaleEpoch {
                    current: current.epoch,
                }));
            }
            Some(current) => {
                let proven = match c.token_hash {
                    Some(h) => current.admits(&h),
                    None => current.member_hash.is_none(),
                };
                if !proven {
                    return Ok(Err(StoreError::NotMember));
                }
            }
        }
        let next = c.epoch + 1;
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO conversations (id, epoch, member_hash, used_day) VALUES (?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    &c.conversation.0[..],
                    next as i64,
                    &c.next_hash[..],
                    c.day
                ])
            })
            .map_err(backend)?;
        let mut queued = Vec::new();
        for (message, to) in &c.messages {
            queued.extend(self.enqueue(message, to)?);
        }
        self.conversations.insert(
            c.conversation,
            Ordered {
                epoch: next,
                member_hash: Some(c.next_hash),
                used_day: c.day,
            },
        );
        Ok(Ok((next, queued)))
    }

    /// Store the message once in `payloads` and one queue row per recipient device pointing at
    /// it: a message to N devices writes its payload once and N small rows.
    fn enqueue(&mut self, m: &NewMessage, to: &[DeviceKey]) -> Result<Vec<(DeviceKey, QueuedMessage)>> {
        if to.is_empty() {
            // A payload nobody waits for would never be deleted.
            return Ok(Vec::new());
        }
        self.conn
            .prepare_cached(
                "INSERT INTO payloads (message_id, sender_account, sender_device, server_ts, expires_at,
                                       franking, payload)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    &m.message_id.0[..],
                    m.from.map(|f| f.account.0.to_vec()),
                    m.from.map(|f| f.device.0),
                    m.server_ts as i64,
                    m.expires_at.map(|t| t as i64),
                    m.franking.as_ref().map(|f| &f[..]),
                    &m.payload[..],
                ])
            })
            .map_err(backend)?;
        let payload_id = self.conn.last_insert_rowid();
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO queue (seq, device, payload_id) VALUES (?, ?, ?)")
            .map_err(backend)?;
        let mut queued = Vec::with_capacity(to.len());
        for &device in to {
            let seq = self.next_seq;
            self.next_seq += 1;
            stmt.execute(params![seq as i64, device.0, payload_id])
                .map_err(backend)?;
            queued.push((
                device,
                QueuedMessage {
                    seq,
                    message_id: m.message_id,
                    from: m.from,
                    server_ts: m.server_ts,
                    payload: m.payload.clone(),
                    franking: m.franking,
                },
            ));
        }
        Ok(queued)
    }

    /// An operation whose SQL errors are IO-level: they poison the batch.
    fn plain<T: Send + 'static>(
        &mut self,
        reply: Reply<T>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> std::result::Result<Done, (StoreError, Done)> {
        match f(&self.conn) {
            Ok(v) => Ok(finish(reply, Ok(v))),
            Err(e) => {
                let e = backend(e);
                let text = e.to_string();
                Err((e, finish(reply, Err(StoreError::Backend(text)))))
            }
        }
    }

    /// An operation that may fail for a domain reason (a limit, a conflict): its writes are
    /// undone alone, and the rest of the batch commits.
    fn in_savepoint<T: Send + 'static>(
        &mut self,
        reply: Reply<T>,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> std::result::Result<Done, (StoreError, Done)> {
        if let Err(e) = self.conn.execute_batch("SAVEPOINT op") {
            let e = backend(e);
            return Err((StoreError::Backend(e.to_string()), finish(reply, Err(e))));
        }
        let result = f(&self.conn);
        let end = if result.is_ok() {
            "RELEASE op"
        } else {
            "ROLLBACK TO op; RELEASE op"
        };
        match self.conn.execute_batch(end) {
            Ok(()) => Ok(finish(reply, result)),
            Err(e) => {
                let e = backend(e);
                Err((StoreError::Backend(e.to_string()), finish(reply, Err(e))))
            }
        }
    }
}

/// Append one entry to `account`'s hash-chained disclosure ledger.
fn append_disclosure(
    c: &Connection,
    account: AccountId,
    at_ms: u64,
    recipient: String,
    what: String,
) -> Result<sirr_proto::Disclosure> {
    let last: Option<(i64, Vec<u8>)> = c
        .prepare_cached("SELECT seq, hash FROM disclosures WHERE account = ? ORDER BY seq DESC LIMIT 1")
        .and_then(|mut s| {
            s.query_row([&account.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(backend)?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (
            seq as u64 + 1,
            hash.try_into()
                .map_err(|_| StoreError::Backend("corrupt ledger hash".into()))?,
        ),
        None => (1, [0u8; 32]),
    };
    let hash = sirr_proto::disclosure_hash(&prev_hash, seq, at_ms, &recipient, &what);
    c.prepare_cached(
        "INSERT INTO disclosures (account, seq, at_ms, recipient, what, prev_hash, hash)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(params![
            &account.0[..],
            seq as i64,
            at_ms as i64,
            &recipient,
            &what,
            &prev_hash[..],
            &hash[..]
        ])
    })
    .map_err(backend)?;
    Ok(sirr_proto::Disclosure {
        seq,
        at_ms,
        recipient,
        what,
        prev_hash,
        hash,
    })
}

fn register(c: &Connection, new: NewDevice) -> Result<Registration> {
    if new.consume_verification {
        let n = c
            .prepare_cached("DELETE FROM verifications WHERE phone_key = ?")
            .and_then(|mut s| s.execute([&new.phone_key.0[..]]))
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::Conflict("verification already used"));
        }
    }
    let existing: Option<(Vec<u8>, u32)> = c
        .prepare_cached("SELECT id, next_device FROM accounts WHERE phone_key = ?")
        .and_then(|mut s| {
            s.query_row([&new.phone_key.0[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(backend)?;
    let mut retired = Vec::new();
    let (account, device_no, new_account) = match (existing, new.retire) {
        (Some((id, next)), Some(old)) if id[..] == old.0[..] => {
            retired = retire_identity(c, old, new.day, new.keep_lock.as_deref())?;
            (id, next, true)
        }
        (_, Some(_)) => return Err(StoreError::Conflict("the number's account changed meanwhile")),
        (Some((id, next)), None) => (id, next, false),
        (None, None) => {
            c.execute(
                "INSERT INTO accounts (id, phone_key, created_day, next_device) VALUES (?, ?, ?, 1)",
                params![&new.fresh_account_id.0[..], &new.phone_key.0[..], new.day],
            )
            .map_err(backend)?;
            (new.fresh_account_id.0.to_vec(), 1, true)
        }
    };
    let device = insert_device(c, &account, device_no, &new.secret_hash, new.day)?;
    Ok(Registration {
        account: device.address.account,
        device,
        new_account,
        retired,
    })
}

/// Retire `account`'s identity in place (see [`NewDevice::retire`]): device ids keep growing,
/// so nothing addressed to an old device can reach a new one. Returns the old devices' keys.
fn retire_identity(
    c: &Connection,
    account: AccountId,
    day: u32,
    keep_lock: Option<&str>,
) -> Result<Vec<DeviceKey>> {
    let id = &account.0[..];
    let run = |sql: &str| c.execute(sql, [id]).map_err(backend);
    let keys: Vec<DeviceKey> = c
        .prepare("SELECT key FROM devices WHERE account = ?")
        .and_then(|mut s| s.query_map([id], |r| Ok(DeviceKey(r.get(0)?)))?.collect())
        .map_err(backend)?;
    // The old devices' queues are not handed over. What the old identity sent stays queued
    // for its recipients: it was sent before the number changed hands.
    run("DELETE FROM queue WHERE device IN (SELECT key FROM devices WHERE account = ?)")?;
    // Devices cascade to their KeyPackages.
    run("DELETE FROM devices WHERE account = ?")?;
    run("DELETE FROM device_lists WHERE account = ?")?;
    run("DELETE FROM consents WHERE account = ?")?;
    run("DELETE FROM disclosures WHERE account = ?")?;
    run("DELETE FROM appeals WHERE account = ?")?;
    c.execute(
        "UPDATE accounts SET created_day = ?, last_seen_day = NULL, access_key_hash = NULL,
             reglock_hash = ?, reglock_failures = 0
         WHERE id = ?",
        params![day, keep_lock, id],
    )
    .map_err(backend)?;
    Ok(keys)
}

/// Add device number `device_no` to `account` (which must have room).
fn insert_device(
    c: &Connection,
    account: &[u8],
    device_no: u32,
    secret_hash: &[u8; 32],
    day: u32,
) -> Result<DeviceRecord> {
    let count: i64 = c
        .query_row("SELECT COUNT(*) FROM devices WHERE account = ?", [account], |r| {
            r.get(0)
        })
        .map_err(backend)?;
    if count as usize >= MAX_DEVICES_PER_ACCOUNT {
        return Err(StoreError::DeviceLimit);
    }
    c.execute(
        "UPDATE accounts SET next_device = ? WHERE id = ?",
        params![device_no + 1, account],
    )
    .map_err(backend)?;
    c.execute(
        "INSERT INTO devices (account, device, secret_hash, created_day) VALUES (?, ?, ?, ?)",
        params![account, device_no, &secret_hash[..], day],
    )
    .map_err(backend)?;
    c.query_row(
        &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE key = last_insert_rowid()"),
        [],
        device_from_row,
    )
    .map_err(backend)
}

fn delete_account(c: &Connection, account: AccountId) -> Result<Vec<DeviceKey>> {
    let id = &account.0[..];
    let run = |sql: &str| c.execute(sql, [id]).map_err(backend);
    let keys: Vec<DeviceKey> = c
        .prepare("SELECT key FROM devices WHERE account = ?")
        .and_then(|mut s| s.query_map([id], |r| Ok(DeviceKey(r.get(0)?)))?.collect())
        .map_err(backend)?;
    // Copies for its devices, then copies of what it sent; a payload goes with its last copy
    // (the trigger), so a group message it received stays for the other members.
    run("DELETE FROM queue WHERE device IN (SELECT key FROM devices WHERE account = ?)")?;
    run("DELETE FROM queue WHERE payload_id IN (SELECT id FROM payloads WHERE sender_account = ?)")?;
    run("DELETE FROM verifications WHERE phone_key = (SELECT phone_key FROM accounts WHERE id = ?)")?;
    // Devices cascade to their KeyPackages; the account cascades to its device list.
    run("DELETE FROM devices WHERE account = ?")?;
    run("DELETE FROM accounts WHERE id = ?")?;
    Ok(keys)
}

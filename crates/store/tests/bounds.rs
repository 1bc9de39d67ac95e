//! What storage keeps per account stays bounded whatever the account sends, exports do not load
//! ciphertext, acks do not wait for room, and a corrupt abuse decision is refused, never read
//! as `allow`.

use std::sync::Arc;

use sirr_proto::{AccountId, MessageId};
use sirr_store::sqlite::{SqliteOptions, SqliteStore};
use sirr_store::*;

struct Nobody;

impl QueueListener for Nobody {
    fn queued(&self, _: DeviceKey, _: &QueuedMessage) {}
}

fn open(dir: &tempfile::TempDir, opts: SqliteOptions) -> SqliteStore {
    SqliteStore::open(&dir.path().join("sirr.db"), opts, Arc::new(Nobody)).unwrap()
}

fn new_device(phone: u8) -> NewDevice {
    NewDevice {
        phone_key: PhoneKey([phone; 32]),
        fresh_account_id: AccountId([phone; 16]),
        secret_hash: [9; 32],
        day: 20_000,
        consume_verification: false,
        retire: None,
        keep_lock: None,
    }
}

fn message(n: u32, from: &DeviceRecord, bytes: usize) -> NewMessage {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_le_bytes());
    NewMessage {
        message_id: MessageId(id),
        from: Some(from.address),
        server_ts: 1_000 + n as u64,
        payload: vec![0xAB; bytes].into(),
        expires_at: None,
        franking: None,
    }
}

#[tokio::test]
async fn the_consent_history_keeps_the_latest_changes_per_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, SqliteOptions::default());
    let a = s.register_device(new_device(1)).await.unwrap().account;
    let change = |purpose: &str, granted, at_ms| ConsentRecord {
        purpose: purpose.into(),
        granted,
        at_ms,
    };
    s.record_consent(a, change("read-receipts", true, 1))
        .await
        .unwrap();
    for i in 0..1_000u64 {
        s.record_consent(a, change("last-seen", i % 2 == 0, 10 + i))
            .await
            .unwrap();
    }
    let history = s.consents(a).await.unwrap();
    let last_seen: Vec<_> = history.iter().filter(|c| c.purpose == "last-seen").collect();
    assert_eq!(last_seen.len(), CONSENT_CHANGES_KEPT as usize);
    assert_eq!(
        last_seen.last().map(|c| (c.granted, c.at_ms)),
        Some((false, 1_009)),
        "the change in force is kept"
    );
    assert!(
        history.iter().any(|c| c.purpose == "read-receipts"),
        "other purposes keep theirs"
    );
}

#[tokio::test]
async fn appeals_stop_at_the_cap_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, SqliteOptions::default());
    let a = s.register_device(new_device(2)).await.unwrap().account;
    let appeal = |i: u64| Appeal {
        at_ms: i,
        text: "x".repeat(2_000),
    };
    let mut stored = 0;
    for i in 0..50 {
        if s.record_appeal(a, appeal(i), 10).await.unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, 10);
    assert_eq!(s.appeals(a).await.unwrap().len(), 10);
}

#[tokio::test]
async fn an_export_gives_the_size_of_queued_ciphertext_not_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, SqliteOptions::default());
    let a = s.register_device(new_device(3)).await.unwrap().device;
    let b = s.register_device(new_device(4)).await.unwrap().device;
    s.enqueue(message(1, &b, 1_234), vec![a.key]).await.unwrap();
    let tables = s.export_account(a.address.account).await.unwrap();
    // The payload is stored once, in `payloads`, for every device it is queued for.
    let (columns, rows) = &tables["payloads"];
    let i = columns.iter().position(|c| c == "payload").unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][i], ExportValue::Ciphertext { bytes: 1_234 });
    assert!(
        rows.iter()
            .flatten()
            .all(|v| !matches!(v, ExportValue::Blob(b) if b.len() >= 1_234)),
        "no column carries the payload"
    );
}

#[tokio::test]
async fn acks_are_refused_when_the_write_queue_is_full_rather_than_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        write_queue: 1,
        max_batch: 1,
        ..Default::default()
    };
    let s = open(&dir, opts);
    let a = s.register_device(new_device(5)).await.unwrap().device;
    let mut tasks = Vec::new();
    for n in 0..200u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.ack(a.key, vec![n + 1]).await }));
    }
    let mut overloaded = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => {}
            Err(StoreError::Overloaded) => overloaded += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        overloaded > 0,
        "a one-slot queue under 200 concurrent acks must refuse some"
    );
}

#[tokio::test]
async fn an_unknown_stored_action_is_refused_not_read_as_allow() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir, SqliteOptions::default());
    let a = s.register_device(new_device(6)).await.unwrap().account;
    let ban = AbuseRecord {
        id: 0,
        at_ms: 1,
        action: AbuseAction::Ban,
        reasons: vec!["enumeration".into()],
        by: "engine".into(),
    };
    s.record_abuse(a, ban, false).await.unwrap();
    let latest = s.latest_abuse(0).await.unwrap();
    assert_eq!(latest[0].1.action, AbuseAction::Ban);
    s.close().await.unwrap();
    // A row corrupted on disk (or written by something else) names no action.
    let conn = rusqlite::Connection::open(dir.path().join("sirr.db")).unwrap();
    conn.execute("UPDATE abuse_decisions SET action = 'alow'", [])
        .unwrap();
    drop(conn);
    let s = open(&dir, SqliteOptions::default());
    let e = s.latest_abuse(0).await.unwrap_err();
    assert!(e.to_string().contains("alow"), "{e}");
    assert!(s.abuse_history(a).await.is_err());
    assert_eq!("ban".parse::<AbuseAction>(), Ok(AbuseAction::Ban));
    assert!("".parse::<AbuseAction>().is_err());
}

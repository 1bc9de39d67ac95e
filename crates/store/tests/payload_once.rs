//! The SQLite backend writes a message to many devices once: bytes on disk grow with the
//! payload plus a small entry per device, not with payload × devices.

use std::sync::Arc;

use sirr_proto::{AccountId, MessageId};
use sirr_store::sqlite::{SqliteOptions, SqliteStore};
use sirr_store::*;

struct Quiet;
impl QueueListener for Quiet {
    fn queued(&self, _: DeviceKey, _: &QueuedMessage) {}
}

/// The database and its write-ahead log, in bytes.
fn on_disk(db: &std::path::Path) -> u64 {
    let wal = db.with_extension("db-wal");
    [db.to_owned(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test]
async fn a_message_to_many_devices_is_written_once() {
    const DEVICES: usize = 64;
    const PAYLOAD: usize = 256 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sirr.db");
    let s = SqliteStore::open(&db, SqliteOptions::default(), Arc::new(Quiet)).unwrap();
    let mut to = Vec::new();
    for i in 0..DEVICES {
        let r = s
            .register_device(NewDevice {
                phone_key: PhoneKey([i as u8; 32]),
                fresh_account_id: AccountId([i as u8; 16]),
                secret_hash: [1; 32],
                day: 20_000,
                consume_verification: false,
                retire: None,
                keep_lock: None,
            })
            .await
            .unwrap();
        to.push(r.device.key);
    }
    let sender = s.device(sirr_proto::DeviceAddress {
        account: AccountId([0; 16]),
        device: sirr_proto::DeviceId(1),
    });
    let from = sender.await.unwrap().unwrap().address;
    let before = on_disk(&db);
    let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i * 7 % 251) as u8).collect();
    s.enqueue(
        NewMessage {
            message_id: MessageId([5; 16]),
            from: Some(from),
            server_ts: 1,
            payload: payload.clone().into(),
            expires_at: None,
            franking: None,
        },
        to.clone(),
    )
    .await
    .unwrap();
    let grown = on_disk(&db) - before;
    // Once: the payload's pages (a few times over at most, for page headers and the log's
    // frame headers) plus the queue rows. Per copy it would be 64 × 256 KiB = 16 MiB.
    assert!(
        grown < 3 * PAYLOAD as u64,
        "{grown} bytes written for one {PAYLOAD}-byte message to {DEVICES} devices"
    );
    for &d in &to {
        let got = s.fetch(d, 0, 1, 0).await.unwrap();
        assert_eq!(&got[0].payload[..], &payload[..], "every device reads it whole");
    }
    s.close().await.unwrap();
}

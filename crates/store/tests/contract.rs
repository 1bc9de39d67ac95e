//! The storage contract, written against the traits so every backend runs it.

use std::sync::{Arc, Mutex};

use sirr_proto::{AccountId, DeviceAddress, DeviceId, MAX_DEVICES_PER_ACCOUNT, MessageId};
use sirr_store::sqlite::{SqliteOptions, SqliteStore};
use sirr_store::*;

#[derive(Default)]
struct Recorder(Mutex<Vec<(DeviceKey, u64)>>);

impl QueueListener for Recorder {
    fn queued(&self, device: DeviceKey, m: &QueuedMessage) {
        self.0.lock().unwrap().push((device, m.seq));
    }
}

fn open(dir: &tempfile::TempDir) -> (SqliteStore, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let store =
        SqliteStore::open(&dir.path().join("sirr.db"), SqliteOptions::default(), rec.clone()).unwrap();
    (store, rec)
}

fn new_device(phone: u8, name: &str) -> NewDevice {
    NewDevice {
        phone_key: PhoneKey([phone; 32]),
        fresh_account_id: AccountId(rand_id()),
        name: name.into(),
        secret_hash: [9; 32],
        day: 20_000,
        consume_verification: false,
    }
}

fn rand_id() -> [u8; 16] {
    use std::sync::atomic::{AtomicU8, Ordering};
    static N: AtomicU8 = AtomicU8::new(1);
    [N.fetch_add(1, Ordering::Relaxed); 16]
}

fn message(n: u8, from: DeviceAddress) -> NewMessage {
    NewMessage {
        message_id: MessageId([n; 16]),
        from,
        server_ts: 1_000 + n as u64,
        payload: vec![n; 256].into(),
    }
}

#[tokio::test]
async fn registration_creates_then_adds_devices_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let first = s.register_device(new_device(1, "phone")).await.unwrap();
    assert!(first.new_account);
    assert_eq!(first.device.address.device, DeviceId(1));
    for i in 2..=MAX_DEVICES_PER_ACCOUNT as u32 {
        let r = s.register_device(new_device(1, "more")).await.unwrap();
        assert!(!r.new_account);
        assert_eq!(r.account, first.account);
        assert_eq!(r.device.address.device, DeviceId(i));
    }
    assert!(matches!(
        s.register_device(new_device(1, "sixth")).await,
        Err(StoreError::DeviceLimit)
    ));
    let (acct, devices) = s.account_by_phone(PhoneKey([1; 32])).await.unwrap().unwrap();
    assert_eq!(acct, first.account);
    assert_eq!(devices.len(), MAX_DEVICES_PER_ACCOUNT);
    // Removing one frees a slot, and ids are never reused: neither the device number nor the
    // storage key (a late copy queued for a removed device must never reach a new one).
    let last = s.devices(first.account).await.unwrap().pop().unwrap();
    assert!(s.remove_device(last.address).await.unwrap());
    let other = s.register_device(new_device(9, "other account")).await.unwrap();
    assert!(other.device.key > last.key, "storage keys are not reused");
    assert!(s.remove_device(first.device.address).await.unwrap());
    let again = s.register_device(new_device(1, "again")).await.unwrap();
    assert_eq!(
        again.device.address.device,
        DeviceId(MAX_DEVICES_PER_ACCOUNT as u32 + 1)
    );
    assert!(s.account_by_phone(PhoneKey([2; 32])).await.unwrap().is_none());
}

#[tokio::test]
async fn verification_is_consumed_once() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let phone = PhoneKey([3; 32]);
    let v = Verification {
        code_hash: [1; 32],
        expires_at: 5_000,
        attempts: 0,
    };
    s.put_verification(phone, v.clone()).await.unwrap();
    assert_eq!(
        s.take_attempt(phone, 4_000, 2).await.unwrap().unwrap().attempts,
        1
    );
    assert_eq!(s.verification(phone).await.unwrap().unwrap().attempts, 1);
    assert!(
        s.take_attempt(phone, 5_000, 2).await.unwrap().is_none(),
        "expired"
    );
    assert_eq!(
        s.take_attempt(phone, 4_000, 2).await.unwrap().unwrap().attempts,
        2
    );
    assert!(
        s.take_attempt(phone, 4_000, 2).await.unwrap().is_none(),
        "attempts used up"
    );
    let mut d = new_device(3, "a");
    d.consume_verification = true;
    s.register_device(d.clone()).await.unwrap();
    assert!(matches!(s.register_device(d).await, Err(StoreError::Conflict(_))));
    s.put_verification(phone, v).await.unwrap();
    assert_eq!(s.purge_verifications(5_001).await.unwrap(), 1);
    assert!(s.verification(phone).await.unwrap().is_none());
}

#[tokio::test]
async fn queues_are_ordered_acked_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (s, rec) = open(&dir);
    let a = s.register_device(new_device(4, "a")).await.unwrap().device;
    let b = s.register_device(new_device(5, "b")).await.unwrap().device;
    let c = s.register_device(new_device(5, "c")).await.unwrap().device;
    for n in 0..10 {
        s.enqueue(message(n, a.address), vec![b.key, c.key])
            .await
            .unwrap();
    }
    let got = s.fetch(b.key, 0, 100).await.unwrap();
    assert_eq!(got.len(), 10);
    assert!(got.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(got[3].message_id, MessageId([3; 16]));
    assert_eq!(&got[3].payload[..], &[3u8; 256][..]);
    // The listener heard every message, per device in seq order.
    let heard: Vec<u64> = rec
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(d, _)| *d == b.key)
        .map(|x| x.1)
        .collect();
    assert_eq!(heard, got.iter().map(|m| m.seq).collect::<Vec<_>>());
    // Paging.
    let page = s.fetch(b.key, got[4].seq, 3).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        got[5..8].iter().map(|m| m.seq).collect::<Vec<_>>()
    );
    // Acks delete only the acking device's rows; foreign seqs are ignored.
    let c_seqs: Vec<u64> = s
        .fetch(c.key, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    s.ack(
        b.key,
        got[..5].iter().map(|m| m.seq).chain(c_seqs.clone()).collect(),
    )
    .await
    .unwrap();
    assert_eq!(s.queue_len(b.key).await.unwrap(), 5);
    assert_eq!(s.queue_len(c.key).await.unwrap(), 10);
    s.close().await.unwrap();
    drop(s);

    let (s, _) = open(&dir);
    assert_eq!(s.queue_len(b.key).await.unwrap(), 5);
    // New messages get larger seqs than anything before the restart.
    s.enqueue(message(50, a.address), vec![b.key]).await.unwrap();
    let after = s.fetch(b.key, 0, 100).await.unwrap();
    assert_eq!(after.last().unwrap().message_id, MessageId([50; 16]));
    assert!(after.windows(2).all(|w| w[0].seq < w[1].seq));
    // Expiry drops the old prefix only.
    assert_eq!(s.expire(1_000 + 50).await.unwrap(), 5 + 10);
    assert_eq!(s.queue_len(b.key).await.unwrap(), 1);
    // Removing a device drops its queue.
    assert!(s.remove_device(b.address).await.unwrap());
    assert_eq!(s.queue_len(b.key).await.unwrap(), 0);
    assert!(!s.remove_device(b.address).await.unwrap());
    s.close().await.unwrap();
    assert!(s.queue_len(c.key).await.is_ok(), "reads still work after close");
    assert!(matches!(s.ack(c.key, vec![1]).await, Err(StoreError::Closed)));
}

#[tokio::test]
async fn a_full_write_queue_is_refused_fast() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let opts = SqliteOptions {
        write_queue: 1,
        max_batch: 1,
        ..Default::default()
    };
    let s = SqliteStore::open(&dir.path().join("x.db"), opts, rec).unwrap();
    let a = s.register_device(new_device(6, "a")).await.unwrap().device;
    let mut tasks = Vec::new();
    for n in 0..200 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.enqueue(message(n as u8, a.address), vec![a.key; 50]).await
        }));
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
        "a one-slot queue under 200 concurrent writers must refuse some"
    );
    let stored = s.queue_len(a.key).await.unwrap();
    assert_eq!(stored, (200 - overloaded) * 50, "refused writes stored nothing");
}

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

fn new_device(phone: u8) -> NewDevice {
    NewDevice {
        phone_key: PhoneKey([phone; 32]),
        fresh_account_id: AccountId(rand_id()),
        secret_hash: [9; 32],
        day: 20_000,
        consume_verification: false,
        retire: None,
        keep_lock: None,
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
        from: Some(from),
        server_ts: 1_000 + n as u64,
        payload: vec![n; 256].into(),
        expires_at: None,
        franking: None,
    }
}

#[tokio::test]
async fn registration_creates_then_adds_devices_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let first = s.register_device(new_device(1)).await.unwrap();
    assert!(first.new_account);
    assert_eq!(first.device.address.device, DeviceId(1));
    // A device has no name until it sets one, sealed (opaque bytes to storage).
    assert_eq!(first.device.sealed_name, None);
    s.set_device_name(first.device.key, vec![1, 2, 3]).await.unwrap();
    s.set_device_name(first.device.key, vec![4, 5]).await.unwrap();
    let named = s.device(first.device.address).await.unwrap().unwrap();
    assert_eq!(named.sealed_name, Some(vec![4, 5]));
    for i in 2..=MAX_DEVICES_PER_ACCOUNT as u32 {
        let r = s.register_device(new_device(1)).await.unwrap();
        assert!(!r.new_account);
        assert_eq!(r.account, first.account);
        assert_eq!(r.device.address.device, DeviceId(i));
    }
    assert!(matches!(
        s.register_device(new_device(1)).await,
        Err(StoreError::DeviceLimit)
    ));
    let (acct, devices) = s.account_by_phone(PhoneKey([1; 32])).await.unwrap().unwrap();
    assert_eq!(acct, first.account);
    assert_eq!(devices.len(), MAX_DEVICES_PER_ACCOUNT);
    // Removing one frees a slot, and ids are never reused: neither the device number nor the
    // storage key (a late copy queued for a removed device must never reach a new one).
    let last = s.devices(first.account).await.unwrap().pop().unwrap();
    assert!(s.remove_device(last.address).await.unwrap());
    let other = s.register_device(new_device(9)).await.unwrap();
    assert!(other.device.key > last.key, "storage keys are not reused");
    assert!(s.remove_device(first.device.address).await.unwrap());
    let again = s.register_device(new_device(1)).await.unwrap();
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
    let mut d = new_device(3);
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
    let a = s.register_device(new_device(4)).await.unwrap().device;
    let b = s.register_device(new_device(5)).await.unwrap().device;
    let c = s.register_device(new_device(5)).await.unwrap().device;
    for n in 0..10 {
        s.enqueue(message(n, a.address), vec![b.key, c.key])
            .await
            .unwrap();
    }
    let got = s.fetch(b.key, 0, 100, 0).await.unwrap();
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
    let page = s.fetch(b.key, got[4].seq, 3, 0).await.unwrap();
    assert_eq!(
        page.iter().map(|m| m.seq).collect::<Vec<_>>(),
        got[5..8].iter().map(|m| m.seq).collect::<Vec<_>>()
    );
    // Acks delete only the acking device's rows; foreign seqs are ignored.
    let c_seqs: Vec<u64> = s
        .fetch(c.key, 0, 100, 0)
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
    let after = s.fetch(b.key, 0, 100, 0).await.unwrap();
    assert_eq!(after.last().unwrap().message_id, MessageId([50; 16]));
    assert!(after.windows(2).all(|w| w[0].seq < w[1].seq));
    // Expiry drops the old prefix only.
    assert_eq!(s.expire(1_000 + 50, 0).await.unwrap(), 5 + 10);
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
    let a = s.register_device(new_device(6)).await.unwrap().device;
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

fn kp(tag: u8, expires_at: u64) -> NewKeyPackage {
    NewKeyPackage {
        bytes: vec![tag; 300],
        expires_at,
    }
}

#[tokio::test]
async fn key_packages_are_handed_out_once_then_the_last_resort() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let d = s.register_device(new_device(40)).await.unwrap().device;
    let now = 1_000_000;
    let stock = s
        .add_key_packages(
            d.key,
            vec![kp(1, now + 10), kp(2, now + 10), kp(3, now - 1)],
            Some(kp(9, now + 10)),
            100,
        )
        .await
        .unwrap();
    assert_eq!(stock, 3, "stock counts stored one-time packages");
    assert_eq!(
        s.key_package_stock(d.key, now).await.unwrap(),
        2,
        "the expired one does not count"
    );
    let who = vec![(d.address.device, d.key)];
    let a = s.claim_key_packages(who.clone(), now).await.unwrap();
    let b = s.claim_key_packages(who.clone(), now).await.unwrap();
    assert_eq!((a[0].1[0], b[0].1[0]), (1, 2), "oldest first, each once");
    // The expired one-time package is skipped; the last resort is handed out and kept.
    for _ in 0..3 {
        let c = s.claim_key_packages(who.clone(), now).await.unwrap();
        assert_eq!(c[0].1[0], 9);
    }
    // A new last resort replaces the old one; expired packages are purged.
    s.add_key_packages(d.key, vec![], Some(kp(8, now + 10)), 100)
        .await
        .unwrap();
    assert_eq!(s.claim_key_packages(who.clone(), now).await.unwrap()[0].1[0], 8);
    assert_eq!(s.purge_key_packages(now).await.unwrap(), 1);
    assert!(
        s.claim_key_packages(who.clone(), now + 20)
            .await
            .unwrap()
            .is_empty(),
        "expired: none"
    );
    // The stock is capped: the newest are kept.
    let many: Vec<_> = (0..10).map(|i| kp(100 + i, now + 10)).collect();
    assert_eq!(s.add_key_packages(d.key, many, None, 4).await.unwrap(), 4);
    assert_eq!(s.claim_key_packages(who.clone(), now).await.unwrap()[0].1[0], 106);
    // Removing the device removes its packages.
    s.remove_device(d.address).await.unwrap();
    assert!(s.claim_key_packages(who, now).await.unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_claims_never_share_a_package() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let d = s.register_device(new_device(41)).await.unwrap().device;
    let packages: Vec<_> = (0..50u8).map(|i| kp(i, u64::MAX / 2)).collect();
    s.add_key_packages(d.key, packages, None, 100).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (s, who) = (s.clone(), vec![(d.address.device, d.key)]);
            tokio::spawn(async move { s.claim_key_packages(who, 1).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.extend(t.await.unwrap().into_iter().map(|(_, b)| b[0]));
    }
    got.sort();
    assert_eq!(got, (0..50u8).collect::<Vec<_>>());
}

#[tokio::test]
async fn device_lists_only_move_forward() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let acct = s.register_device(new_device(42)).await.unwrap().account;
    assert_eq!(s.device_list(acct).await.unwrap(), None);
    s.put_device_list(acct, 1, vec![1]).await.unwrap();
    s.put_device_list(acct, 3, vec![3]).await.unwrap();
    assert!(matches!(
        s.put_device_list(acct, 2, vec![2]).await,
        Err(StoreError::StaleVersion {
            offered: 2,
            stored: 3
        })
    ));
    assert!(
        s.put_device_list(acct, 3, vec![4]).await.is_err(),
        "same version refused"
    );
    assert_eq!(s.device_list(acct).await.unwrap(), Some(vec![3]));
}

/// A commit of conversation `[conv; 16]` at `epoch`, proving membership with the token hash
/// `[token; 32]` (none to create it) and announcing `[next; 32]` for the next epoch.
fn commit(
    conv: u8,
    epoch: u64,
    token: Option<u8>,
    next: u8,
    to: Vec<(NewMessage, Vec<DeviceKey>)>,
) -> NewCommit {
    NewCommit {
        conversation: sirr_proto::ConversationId([conv; 16]),
        epoch,
        token_hash: token.map(|t| [t; 32]),
        next_hash: [next; 32],
        day: 20_000,
        messages: to,
    }
}

#[tokio::test]
async fn commits_are_ordered_one_per_epoch_by_members_only() {
    let dir = tempfile::tempdir().unwrap();
    let (s, rec) = open(&dir);
    let a = s.register_device(new_device(43)).await.unwrap().device;
    let b = s.register_device(new_device(44)).await.unwrap().device;
    let c = s.register_device(new_device(45)).await.unwrap().device;
    // A conversation the store has not seen starts at epoch 0.
    assert!(matches!(
        s.commit(commit(1, 3, None, 1, vec![])).await,
        Err(StoreError::StaleEpoch { current: 0 })
    ));
    let welcome = (message(1, a.address), vec![b.key]);
    assert_eq!(s.commit(commit(1, 0, None, 1, vec![welcome])).await.unwrap(), 1);
    assert_eq!(
        s.fetch(b.key, 0, 10, 0).await.unwrap().len(),
        1,
        "the welcome is queued with it"
    );
    assert!(rec.0.lock().unwrap().iter().any(|(d, _)| *d == b.key));
    // Stale, and not a member: a wrong token, or none.
    assert!(matches!(
        s.commit(commit(1, 0, None, 7, vec![])).await,
        Err(StoreError::StaleEpoch { current: 1 })
    ));
    for token in [Some(9), None] {
        assert!(matches!(
            s.commit(commit(1, 1, token, 7, vec![])).await,
            Err(StoreError::NotMember)
        ));
    }
    // Sends carry their epoch and token; a stale or foreign one stores nothing.
    let check = |epoch, token: u8| EpochCheck {
        conversation: sirr_proto::ConversationId([1; 16]),
        epoch,
        token_hash: [token; 32],
        day: 20_000,
    };
    s.enqueue_checked(message(2, b.address), vec![a.key], check(1, 1))
        .await
        .unwrap();
    assert!(matches!(
        s.enqueue_checked(message(3, b.address), vec![a.key], check(0, 1))
            .await,
        Err(StoreError::StaleEpoch { current: 1 })
    ));
    assert!(matches!(
        s.enqueue_checked(message(4, c.address), vec![a.key], check(1, 9))
            .await,
        Err(StoreError::NotMember)
    ));
    assert!(matches!(
        s.enqueue_checked(
            message(5, c.address),
            vec![a.key],
            EpochCheck {
                conversation: sirr_proto::ConversationId([2; 16]),
                ..check(1, 1)
            }
        )
        .await,
        Err(StoreError::NotMember)
    ));
    assert_eq!(s.fetch(a.key, 0, 10, 0).await.unwrap().len(), 1);
    // Many members racing for one epoch: exactly one wins.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.commit(commit(1, 1, Some(1), 2 + i % 2, vec![])).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(2) => won += 1,
            Err(StoreError::StaleEpoch { current: 2 }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1);
    // The order survives a restart, and so does the winner's token.
    drop(s);
    let (s, _) = open(&dir);
    assert!(matches!(
        s.commit(commit(1, 1, Some(1), 2, vec![])).await,
        Err(StoreError::StaleEpoch { current: 2 })
    ));
    let mut winner = None;
    for t in [2u8, 3] {
        let check = EpochCheck {
            conversation: sirr_proto::ConversationId([1; 16]),
            epoch: 2,
            token_hash: [t; 32],
            day: 20_000,
        };
        if s.enqueue_checked(message(6, b.address), vec![a.key], check)
            .await
            .is_ok()
        {
            assert!(winner.is_none(), "only one token is the epoch's");
            winner = Some(t);
        }
    }
    let winner = winner.expect("one of the racers' tokens is the epoch's");
    // A removed member knows only old tokens: it cannot commit any more.
    assert_eq!(s.commit(commit(1, 2, Some(winner), 30, vec![])).await.unwrap(), 3);
    assert!(matches!(
        s.commit(commit(1, 3, Some(winner), 31, vec![])).await,
        Err(StoreError::NotMember)
    ));
    assert_eq!(s.commit(commit(1, 3, Some(30), 31, vec![])).await.unwrap(), 4);
}

#[tokio::test]
async fn abandoned_conversations_are_forgotten_used_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let a = s.register_device(new_device(46)).await.unwrap().device;
    for conv in [1, 2] {
        s.commit(commit(conv, 0, None, conv, vec![])).await.unwrap();
    }
    // Conversation 2 is used 30 days later; conversation 1 not again.
    let used = EpochCheck {
        conversation: sirr_proto::ConversationId([2; 16]),
        epoch: 1,
        token_hash: [2; 32],
        day: 20_030,
    };
    s.enqueue_checked(message(1, a.address), vec![a.key], used)
        .await
        .unwrap();
    assert_eq!(
        s.purge_conversations(20_000).await.unwrap(),
        0,
        "nothing older than its day"
    );
    assert_eq!(s.purge_conversations(20_010).await.unwrap(), 1);
    let old = EpochCheck {
        conversation: sirr_proto::ConversationId([1; 16]),
        epoch: 1,
        token_hash: [1; 32],
        day: 20_031,
    };
    assert!(matches!(
        s.enqueue_checked(message(2, a.address), vec![a.key], old).await,
        Err(StoreError::NotMember)
    ));
    s.enqueue_checked(
        message(3, a.address),
        vec![a.key],
        EpochCheck { day: 20_031, ..used },
    )
    .await
    .unwrap();
    // It was used after the purge's day, including across a restart.
    drop(s);
    let (s, _) = open(&dir);
    assert_eq!(s.purge_conversations(20_031).await.unwrap(), 0);
    assert_eq!(s.purge_conversations(20_032).await.unwrap(), 1);
}

#[tokio::test]
async fn disappearing_messages_are_never_fetched_after_their_time_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let a = s.register_device(new_device(71)).await.unwrap().device;
    let b = s.register_device(new_device(72)).await.unwrap().device;
    let mut short = message(1, a.address);
    short.expires_at = Some(5_000);
    s.enqueue(short, vec![b.key]).await.unwrap();
    s.enqueue(message(2, a.address), vec![b.key]).await.unwrap();
    assert_eq!(s.fetch(b.key, 0, 10, 4_999).await.unwrap().len(), 2);
    let later = s.fetch(b.key, 0, 10, 5_000).await.unwrap();
    assert_eq!(later.len(), 1, "an expired message is not handed out");
    assert_eq!(later[0].message_id, MessageId([2; 16]));
    // Expiry removes the expired copy (and nothing accepted after the retention cutoff).
    assert_eq!(s.expire(0, 5_000).await.unwrap(), 1);
    assert_eq!(s.queue_len(b.key).await.unwrap(), 1);
}

#[tokio::test]
async fn consents_and_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let a = s.register_device(new_device(81)).await.unwrap().account;
    let b = s.register_device(new_device(82)).await.unwrap().account;
    assert_eq!(s.consents(a).await.unwrap(), vec![]);
    let grant = |granted, at_ms| ConsentRecord {
        purpose: "last-seen".into(),
        granted,
        at_ms,
    };
    s.record_consent(a, grant(true, 10)).await.unwrap();
    s.record_consent(a, grant(false, 20)).await.unwrap();
    assert_eq!(
        s.consents(a).await.unwrap(),
        vec![grant(true, 10), grant(false, 20)]
    );
    assert_eq!(s.consents(b).await.unwrap(), vec![], "consents are per account");
    // A deleted account's consent is not recorded (and does not fail other writes).
    let gone = AccountId([0xEE; 16]);
    s.record_consent(gone, grant(true, 30)).await.unwrap();
    assert_eq!(s.consents(gone).await.unwrap(), vec![]);

    assert_eq!(s.last_seen_day(a).await.unwrap(), None);
    s.record_connection(a, 20_001).await.unwrap();
    s.record_connection(a, 20_002).await.unwrap();
    assert_eq!(s.last_seen_day(a).await.unwrap(), Some(20_002));

    // Deleting the account removes its consents.
    s.delete_account(a).await.unwrap();
    assert_eq!(s.consents(a).await.unwrap(), vec![]);
}

#[tokio::test]
async fn sealed_messages_have_no_sender_and_are_checked_like_others() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let a = s.register_device(new_device(91)).await.unwrap();
    let b = s.register_device(new_device(92)).await.unwrap();
    assert_eq!(s.access_key_hash(b.account).await.unwrap(), None);
    s.set_access_key_hash(b.account, [3; 32]).await.unwrap();
    s.set_access_key_hash(b.account, [4; 32]).await.unwrap();
    assert_eq!(s.access_key_hash(b.account).await.unwrap(), Some([4; 32]));
    assert_eq!(s.access_key_hash(AccountId([0xAB; 16])).await.unwrap(), None);

    let conversation = sirr_proto::ConversationId([9; 16]);
    s.commit(NewCommit {
        conversation,
        epoch: 0,
        token_hash: None,
        next_hash: [8; 32],
        day: 1,
        messages: vec![],
    })
    .await
    .unwrap();
    let sealed = |n: u8| NewMessage {
        from: None,
        ..message(n, a.device.address)
    };
    let check = |epoch| EpochCheck {
        conversation,
        epoch,
        token_hash: [8; 32],
        day: 1,
    };
    s.enqueue_checked(sealed(1), vec![b.device.key], check(1))
        .await
        .unwrap();
    assert!(matches!(
        s.enqueue_checked(sealed(2), vec![b.device.key], check(0)).await,
        Err(StoreError::StaleEpoch { current: 1 })
    ));
    let got = s.fetch(b.device.key, 0, 10, 0).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, None, "storage never learns a sealed sender");
    // Deleting the sender's account cannot find what it sent sealed: that stays for b.
    s.delete_account(a.account).await.unwrap();
    assert_eq!(s.queue_len(b.device.key).await.unwrap(), 1);
}

/// A caller that starts a read and then stops polling it (a session busy elsewhere) must not
/// keep the read connection from everyone else. Found by `sirr-bench soak`: sessions blocked
/// on a second read while their first one held the pool wedged the whole server.
#[tokio::test]
async fn a_read_nobody_polls_does_not_hold_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        readers: 1,
        ..SqliteOptions::default()
    };
    let s = SqliteStore::open(&dir.path().join("sirr.db"), opts, Arc::new(Recorder::default())).unwrap();
    let a = s.register_device(new_device(101)).await.unwrap().device;
    let mut first = std::pin::pin!(s.fetch(a.key, 0, 10, 0));
    // Poll it once: it takes the only connection and starts reading (on a fast machine it may
    // even finish within that poll)...
    let first_done = futures_poll_once(first.as_mut()).await;
    // ...and is then left alone while another read is needed.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), s.queue_len(a.key)).await;
    assert_eq!(second.expect("the pool is free again").unwrap(), 0);
    if first_done.is_none() {
        assert!(first.await.unwrap().is_empty());
    }

    // Nor a read that was still waiting for the connection when its caller stopped polling:
    // it must not be handed the connection and then sit on it.
    let mut busy = std::pin::pin!(s.fetch(a.key, 0, 10, 0));
    let mut waiting = std::pin::pin!(s.queue_len(a.key));
    let _ = futures_poll_once(busy.as_mut()).await;
    let _ = futures_poll_once(waiting.as_mut()).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let third = tokio::time::timeout(std::time::Duration::from_secs(5), s.queue_len(a.key)).await;
    assert_eq!(third.expect("neither un-polled read holds the pool").unwrap(), 0);
}

/// Poll a future once; `Some` if it finished.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut f).poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// A group message is stored once for all its recipient devices: each reads the same payload
/// until it acknowledges it, the others' copies outlive one device's ack, and the payload goes
/// with the last ack.
#[tokio::test]
async fn a_payload_shared_by_devices_is_read_by_each_until_acked_and_goes_with_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let (s, rec) = open(&dir);
    let a = s.register_device(new_device(80)).await.unwrap().device;
    let mut to = Vec::new();
    for phone in 81..85 {
        to.push(s.register_device(new_device(phone)).await.unwrap().device.key);
    }
    let m = message(7, a.address);
    s.enqueue(m.clone(), to.clone()).await.unwrap();
    assert_eq!(s.queued_total().await.unwrap(), 4, "one entry per device");
    assert_eq!(
        s.stored_payloads().await.unwrap(),
        1,
        "one payload for all of them"
    );
    assert_eq!(rec.0.lock().unwrap().len(), 4, "every copy announced");
    for (i, &device) in to.iter().enumerate() {
        for &other in &to[i..] {
            let got = s.fetch(other, 0, 10, 0).await.unwrap();
            assert_eq!(got.len(), 1, "device {other:?} still has its copy");
            assert_eq!(got[0].payload, m.payload);
            assert_eq!(got[0].message_id, m.message_id);
            assert_eq!(got[0].from, m.from);
            assert_eq!(got[0].server_ts, m.server_ts);
        }
        assert_eq!(s.stored_payloads().await.unwrap(), 1, "still waited for");
        let seq = s.fetch(device, 0, 10, 0).await.unwrap()[0].seq;
        s.ack(device, vec![seq]).await.unwrap();
        assert!(s.fetch(device, 0, 10, 0).await.unwrap().is_empty());
        // Acking again (a redelivery) does not touch the others' copies.
        s.ack(device, vec![seq]).await.unwrap();
    }
    assert_eq!(s.queued_total().await.unwrap(), 0);
    assert_eq!(s.stored_payloads().await.unwrap(), 0, "gone with the last ack");
    // A message for no device stores nothing.
    s.enqueue(message(8, a.address), vec![]).await.unwrap();
    assert_eq!(s.stored_payloads().await.unwrap(), 0);
}

/// Deleting an account whose queue shares payloads with other accounts' queues leaves their
/// copies intact, and takes what it sent (from every queue) and its own copies.
#[tokio::test]
async fn deleting_an_account_leaves_the_copies_it_shared_with_others() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let alice = s.register_device(new_device(90)).await.unwrap().device;
    let bob = s.register_device(new_device(91)).await.unwrap().device;
    let carol = s.register_device(new_device(92)).await.unwrap();
    let carol2 = s.add_device(carol.account, [9; 32], 20_000).await.unwrap();
    let carol = carol.device;
    // Alice writes to the group (bob and both of carol's devices); carol writes to it too.
    let shared = message(1, alice.address);
    s.enqueue(shared.clone(), vec![bob.key, carol.key, carol2.key])
        .await
        .unwrap();
    s.enqueue(message(2, carol.address), vec![alice.key, bob.key, carol2.key])
        .await
        .unwrap();
    assert_eq!(s.stored_payloads().await.unwrap(), 2);
    let export = s.export_account(carol.address.account).await.unwrap();
    assert_eq!(
        export["payloads"].1.len(),
        2,
        "what she received and what she sent"
    );
    assert_eq!(
        export["queue"].1.len(),
        5,
        "her two copies of alice's, three of hers"
    );

    s.delete_account(carol.address.account).await.unwrap();
    let bobs = s.fetch(bob.key, 0, 10, 0).await.unwrap();
    assert_eq!(bobs.len(), 1, "carol's message went with her: {bobs:?}");
    assert_eq!(bobs[0].payload, shared.payload, "alice's stays for bob");
    assert_eq!(bobs[0].message_id, shared.message_id);
    assert!(s.fetch(alice.key, 0, 10, 0).await.unwrap().is_empty());
    assert_eq!(s.queued_total().await.unwrap(), 1);
    assert_eq!(
        s.stored_payloads().await.unwrap(),
        1,
        "only alice's message remains"
    );
    let export = s.export_account(carol.address.account).await.unwrap();
    assert!(export["payloads"].1.is_empty() && export["queue"].1.is_empty());
    s.ack(bob.key, vec![bobs[0].seq]).await.unwrap();
    assert_eq!(s.stored_payloads().await.unwrap(), 0);
}

/// Every other way a copy leaves (a removed device, a ban of the sender, the retention job,
/// a disappearing message's timer) keeps a shared payload while a copy waits and drops it
/// with the last one.
#[tokio::test]
async fn shared_payloads_go_with_their_last_copy_whatever_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let a = s.register_device(new_device(100)).await.unwrap().device;
    let b = s.register_device(new_device(101)).await.unwrap().device;
    let c = s.register_device(new_device(102)).await.unwrap().device;
    let m = |n: u8, ts: u64, expires_at: Option<u64>| NewMessage {
        server_ts: ts,
        expires_at,
        ..message(n, a.address)
    };

    // A removed device takes only its own copy.
    s.enqueue(m(1, 5_000, None), vec![b.key, c.key]).await.unwrap();
    assert!(s.remove_device(c.address).await.unwrap());
    assert_eq!(s.fetch(b.key, 0, 10, 0).await.unwrap().len(), 1);
    assert_eq!(s.stored_payloads().await.unwrap(), 1);
    let c = s.register_device(new_device(102)).await.unwrap().device;

    // A disappearing message's copies all go at its time, and only then.
    s.enqueue(m(2, 5_000, Some(9_000)), vec![b.key, c.key])
        .await
        .unwrap();
    assert_eq!(s.expire(0, 8_999).await.unwrap(), 0);
    assert_eq!(s.stored_payloads().await.unwrap(), 2);
    assert_eq!(s.expire(0, 9_000).await.unwrap(), 2, "both copies counted");
    assert_eq!(s.stored_payloads().await.unwrap(), 1);

    // The retention job drops old copies and their payload, newer ones stay.
    s.enqueue(m(3, 7_000, None), vec![b.key, c.key]).await.unwrap();
    assert_eq!(s.expire(6_000, 0).await.unwrap(), 1, "message 1's copy for b");
    assert_eq!(s.stored_payloads().await.unwrap(), 1);
    let left: Vec<_> = s.fetch(b.key, 0, 10, 0).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].message_id, MessageId([3; 16]));
    assert_eq!(s.fetch(c.key, 0, 10, 0).await.unwrap().len(), 1);

    // A ban drops everything the sender still has queued, and the payloads with it.
    let record = AbuseRecord {
        id: 0,
        at_ms: 1,
        action: sirr_store::AbuseAction::Ban,
        reasons: vec!["test".into()],
        by: "operator".into(),
    };
    let dropped = s.record_abuse(a.address.account, record, true).await.unwrap();
    assert_eq!(dropped, 2);
    assert_eq!(s.queued_total().await.unwrap(), 0);
    assert_eq!(s.stored_payloads().await.unwrap(), 0);
}

#[tokio::test]
async fn retiring_an_identity_keeps_the_account_id_and_drops_everything_of_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open(&dir);
    let old = s.register_device(new_device(91)).await.unwrap();
    let old2 = s.register_device(new_device(91)).await.unwrap();
    let peer = s.register_device(new_device(92)).await.unwrap();
    let account = old.account;
    s.put_device_list(account, 1, vec![1, 1]).await.unwrap();
    s.set_access_key_hash(account, [7; 32]).await.unwrap();
    s.record_consent(
        account,
        ConsentRecord {
            purpose: "last-seen".into(),
            granted: true,
            at_ms: 5,
        },
    )
    .await
    .unwrap();
    s.set_registration_lock(account, Some("$argon2id$old".into()))
        .await
        .unwrap();
    // Messages queued for the old devices, and one the old identity sent to the peer.
    s.enqueue(
        message(1, peer.device.address),
        vec![old.device.key, old2.device.key],
    )
    .await
    .unwrap();
    s.enqueue(message(2, old.device.address), vec![peer.device.key])
        .await
        .unwrap();

    // Retiring names the number's current account; anything else is a conflict, changing nothing.
    let mut wrong = new_device(91);
    wrong.retire = Some(peer.account);
    assert!(matches!(
        s.register_device(wrong).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.devices(account).await.unwrap().len(), 2);

    let mut anew = new_device(91);
    anew.retire = Some(account);
    anew.keep_lock = Some("$argon2id$kept".into());
    let r = s.register_device(anew).await.unwrap();
    assert_eq!(r.account, account, "the account id stays");
    assert!(r.new_account, "a new identity");
    let mut retired = r.retired.clone();
    retired.sort();
    let mut want = vec![old.device.key, old2.device.key];
    want.sort();
    assert_eq!(retired, want);
    let devices = s.devices(account).await.unwrap();
    assert_eq!(devices.len(), 1, "only the new device");
    assert!(devices[0].key > old2.device.key, "storage keys are not reused");
    assert_eq!(s.queue_len(old.device.key).await.unwrap(), 0);
    assert_eq!(s.queue_len(old2.device.key).await.unwrap(), 0);
    assert_eq!(s.device_list(account).await.unwrap(), None);
    assert_eq!(s.access_key_hash(account).await.unwrap(), None);
    assert_eq!(s.consents(account).await.unwrap(), vec![]);
    let lock = s.registration_lock(account).await.unwrap().unwrap();
    assert_eq!(lock.pin_hash, "$argon2id$kept");
    assert_eq!(lock.failures, 0);
    // What the old identity already sent to others is theirs: it stays queued for them.
    assert_eq!(s.queue_len(peer.device.key).await.unwrap(), 1);
}

#[tokio::test]
async fn lock_guesses_are_spent_once_each_up_to_the_budget_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let account = {
        let (s, _) = open(&dir);
        let a = s.register_device(new_device(93)).await.unwrap().account;
        assert!(
            s.take_lock_guess(a, 3).await.unwrap().is_none(),
            "no lock, no guess"
        );
        s.set_registration_lock(a, Some("$argon2id$x".into()))
            .await
            .unwrap();
        // Concurrent guesses never share one.
        let (g1, g2) = tokio::join!(s.take_lock_guess(a, 3), s.take_lock_guess(a, 3));
        let mut counts = vec![g1.unwrap().unwrap().failures, g2.unwrap().unwrap().failures];
        counts.sort();
        assert_eq!(counts, vec![1, 2]);
        a
    };
    let (s, _) = open(&dir);
    assert_eq!(s.take_lock_guess(account, 3).await.unwrap().unwrap().failures, 3);
    assert!(
        s.take_lock_guess(account, 3).await.unwrap().is_none(),
        "budget spent"
    );
    assert_eq!(s.registration_lock(account).await.unwrap().unwrap().failures, 3);
    // Turning the lock off and on again resets the count.
    s.set_registration_lock(account, None).await.unwrap();
    assert!(s.registration_lock(account).await.unwrap().is_none());
    s.set_registration_lock(account, Some("$argon2id$y".into()))
        .await
        .unwrap();
    assert_eq!(s.registration_lock(account).await.unwrap().unwrap().failures, 0);
}

//! The one contract every [`Store`] backend keeps, run against each of them (the SQLite and
//! memory stores' tests here; a browser backend's tests with the `contract` feature).
//!
//! Each check panics with what broke. The store must start empty.

use std::ops::Bound;

use super::{Batch, Direction, KeyRange, Store, Table};

fn kv(entries: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    entries.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

/// Run every check against `store`, which must be empty.
pub async fn run(store: &dyn Store) {
    for t in Table::ALL {
        assert!(
            store
                .scan(t, KeyRange::all(), Direction::Forward, None)
                .await
                .unwrap()
                .is_empty(),
            "the store must start empty ({})",
            t.name()
        );
    }
    get_put_delete(store).await;
    tables_are_separate(store).await;
    byte_order_and_scans(store).await;
    delete_range(store).await;
    batches_are_all_or_nothing(store).await;
}

async fn get_put_delete(store: &dyn Store) {
    assert_eq!(store.get(Table::Kv, b"a").await.unwrap(), None);
    let mut b = Batch::new();
    b.put(Table::Kv, b"a".to_vec(), b"1".to_vec());
    b.put(Table::Kv, b"b".to_vec(), Vec::new());
    store.commit(b).await.unwrap();
    assert_eq!(store.get(Table::Kv, b"a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        store.get(Table::Kv, b"b").await.unwrap(),
        Some(Vec::new()),
        "an empty value is a value"
    );
    // Replace, and a later op in the same batch sees an earlier one.
    let mut b = Batch::new();
    b.put(Table::Kv, b"a".to_vec(), b"2".to_vec());
    b.put(Table::Kv, b"a".to_vec(), b"3".to_vec());
    b.delete(Table::Kv, b"b".to_vec());
    b.delete(Table::Kv, b"never there".to_vec());
    store.commit(b).await.unwrap();
    assert_eq!(store.get(Table::Kv, b"a").await.unwrap(), Some(b"3".to_vec()));
    assert_eq!(store.get(Table::Kv, b"b").await.unwrap(), None);
    let mut b = Batch::new();
    b.put(Table::Kv, b"c".to_vec(), b"x".to_vec());
    b.delete(Table::Kv, b"c".to_vec());
    store.commit(b).await.unwrap();
    assert_eq!(
        store.get(Table::Kv, b"c").await.unwrap(),
        None,
        "a delete after a put wins"
    );
    store.commit(Batch::new()).await.unwrap();
    let mut b = Batch::new();
    b.delete_range(Table::Kv, KeyRange::all());
    store.commit(b).await.unwrap();
    assert_eq!(store.get(Table::Kv, b"a").await.unwrap(), None);
}

async fn tables_are_separate(store: &dyn Store) {
    let mut b = Batch::new();
    for (i, t) in Table::ALL.iter().enumerate() {
        b.put(*t, b"k".to_vec(), vec![i as u8]);
    }
    store.commit(b).await.unwrap();
    for (i, t) in Table::ALL.iter().enumerate() {
        assert_eq!(
            store.get(*t, b"k").await.unwrap(),
            Some(vec![i as u8]),
            "{}",
            t.name()
        );
        let all = store
            .scan(*t, KeyRange::all(), Direction::Forward, None)
            .await
            .unwrap();
        assert_eq!(
            all,
            kv(&[(b"k", &[i as u8])]),
            "a scan of {} sees only its table",
            t.name()
        );
    }
    let mut b = Batch::new();
    b.delete_range(Table::Sealed, KeyRange::all());
    store.commit(b).await.unwrap();
    assert_eq!(store.get(Table::Sealed, b"k").await.unwrap(), None);
    assert!(
        store.get(Table::Kv, b"k").await.unwrap().is_some(),
        "a range delete stays in its table"
    );
    assert!(store.get(Table::OwnDevices, b"k").await.unwrap().is_some());
    let mut b = Batch::new();
    for t in Table::ALL {
        b.delete(t, b"k".to_vec());
    }
    store.commit(b).await.unwrap();
}

async fn byte_order_and_scans(store: &dyn Store) {
    let t = Table::Messages;
    // Keys compare as unsigned bytes, shorter first when one is a prefix of the other.
    let keys: [&[u8]; 7] = [
        &[0x01],
        &[0x01, 0x00],
        &[0x01, 0x7f],
        &[0x01, 0x80],
        &[0x01, 0xff],
        &[0x02],
        &[0xff, 0xff],
    ];
    let mut b = Batch::new();
    for k in keys.iter().rev() {
        b.put(t, k.to_vec(), k.to_vec());
    }
    store.commit(b).await.unwrap();
    let all = store
        .scan(t, KeyRange::all(), Direction::Forward, None)
        .await
        .unwrap();
    let got: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(got, keys.to_vec(), "keys in byte order");
    assert!(all.iter().all(|(k, v)| k == v));

    let rev = store
        .scan(t, KeyRange::all(), Direction::Reverse, None)
        .await
        .unwrap();
    let got: Vec<&[u8]> = rev.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(
        got,
        keys.iter().rev().copied().collect::<Vec<_>>(),
        "reverse order"
    );

    let p = store
        .scan(t, KeyRange::prefix(&[0x01]), Direction::Forward, None)
        .await
        .unwrap();
    assert_eq!(p.len(), 5, "the prefix 01 holds 01 itself and 01 00..01 ff");
    let p = store
        .scan(t, KeyRange::prefix(&[0x01]), Direction::Forward, Some(2))
        .await
        .unwrap();
    assert_eq!(
        p,
        kv(&[(&[0x01], &[0x01]), (&[0x01, 0x00], &[0x01, 0x00])]),
        "a limit keeps the first"
    );
    let p = store
        .scan(t, KeyRange::prefix(&[0x01]), Direction::Reverse, Some(2))
        .await
        .unwrap();
    assert_eq!(
        p,
        kv(&[(&[0x01, 0xff], &[0x01, 0xff]), (&[0x01, 0x80], &[0x01, 0x80])]),
        "reverse with a limit keeps the last"
    );
    let p = store
        .scan(t, KeyRange::prefix(&[0xff]), Direction::Forward, None)
        .await
        .unwrap();
    assert_eq!(
        p,
        kv(&[(&[0xff, 0xff], &[0xff, 0xff])]),
        "a prefix of 0xff has no successor and still works"
    );
    assert!(
        store
            .scan(t, KeyRange::prefix(&[0x03]), Direction::Forward, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .scan(t, KeyRange::all(), Direction::Forward, Some(0))
            .await
            .unwrap()
            .is_empty()
    );

    let r = KeyRange {
        start: Bound::Excluded(vec![0x01]),
        end: Bound::Included(vec![0x01, 0x80]),
    };
    let got: Vec<Vec<u8>> = store
        .scan(t, r, Direction::Forward, None)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        got,
        vec![vec![0x01, 0x00], vec![0x01, 0x7f], vec![0x01, 0x80]],
        "excluded start, included end"
    );
    let r = KeyRange {
        start: Bound::Included(vec![0x02]),
        end: Bound::Excluded(vec![0x01]),
    };
    assert!(
        store
            .scan(t, r, Direction::Forward, None)
            .await
            .unwrap()
            .is_empty(),
        "an inverted range is empty"
    );

    // Big-endian numbers sort as numbers.
    let mut b = Batch::new();
    for n in [256u64, 1, 70_000, 2] {
        b.put(Table::Expiring, n.to_be_bytes().to_vec(), Vec::new());
    }
    store.commit(b).await.unwrap();
    let got: Vec<u64> = store
        .scan(Table::Expiring, KeyRange::all(), Direction::Forward, None)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| u64::from_be_bytes(k.try_into().unwrap()))
        .collect();
    assert_eq!(got, vec![1, 2, 256, 70_000]);
    let mut b = Batch::new();
    b.delete_range(t, KeyRange::all());
    b.delete_range(Table::Expiring, KeyRange::all());
    store.commit(b).await.unwrap();
}

async fn delete_range(store: &dyn Store) {
    let t = Table::MessagesByConversation;
    let mut b = Batch::new();
    for conv in [1u8, 2, 3] {
        for i in 0u8..4 {
            b.put(t, vec![conv, i], vec![i]);
        }
    }
    store.commit(b).await.unwrap();
    let mut b = Batch::new();
    b.delete_range(t, KeyRange::prefix(&[2]));
    b.delete_range(
        t,
        KeyRange {
            start: Bound::Included(vec![3, 2]),
            end: Bound::Unbounded,
        },
    );
    store.commit(b).await.unwrap();
    let left: Vec<Vec<u8>> = store
        .scan(t, KeyRange::all(), Direction::Forward, None)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        left,
        vec![
            vec![1, 0],
            vec![1, 1],
            vec![1, 2],
            vec![1, 3],
            vec![3, 0],
            vec![3, 1]
        ]
    );
    let mut b = Batch::new();
    b.delete_range(t, KeyRange::all());
    store.commit(b).await.unwrap();
    assert!(
        store
            .scan(t, KeyRange::all(), Direction::Forward, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn batches_are_all_or_nothing(store: &dyn Store) {
    let mut b = Batch::new();
    b.put(Table::Contacts, b"kept".to_vec(), b"before".to_vec());
    b.put(Table::Contacts, b"doomed".to_vec(), b"before".to_vec());
    store.commit(b).await.unwrap();
    // Many ops of every kind, then one every backend refuses (an empty key): none may land.
    let mut b = Batch::new();
    for i in 0u32..500 {
        b.put(Table::Messages, i.to_be_bytes().to_vec(), vec![7; 100]);
    }
    b.put(Table::Contacts, b"kept".to_vec(), b"after".to_vec());
    b.delete(Table::Contacts, b"doomed".to_vec());
    b.delete_range(Table::Contacts, KeyRange::all());
    b.put(Table::Seen, Vec::new(), b"refused".to_vec());
    assert!(store.commit(b).await.is_err(), "an empty key is refused");
    assert!(
        store
            .scan(Table::Messages, KeyRange::all(), Direction::Forward, None)
            .await
            .unwrap()
            .is_empty(),
        "no put of a failed batch landed"
    );
    assert_eq!(
        store.get(Table::Contacts, b"kept").await.unwrap(),
        Some(b"before".to_vec()),
        "no replace landed"
    );
    assert_eq!(
        store.get(Table::Contacts, b"doomed").await.unwrap(),
        Some(b"before".to_vec()),
        "no delete landed"
    );
    // And the store still works afterwards.
    let mut b = Batch::new();
    b.delete_range(Table::Contacts, KeyRange::all());
    store.commit(b).await.unwrap();
    assert!(
        store
            .scan(Table::Contacts, KeyRange::all(), Direction::Forward, None)
            .await
            .unwrap()
            .is_empty()
    );
}

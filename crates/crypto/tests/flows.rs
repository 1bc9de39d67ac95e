//! End-to-end flows between several devices, with the server reduced to "pass the bytes".

use std::time::{SystemTime, UNIX_EPOCH};

use rand::{Rng, RngCore, SeedableRng};
use sirr_crypto::{
    AccountId, Conversation, CryptoError, DeviceAddress, DeviceId, DeviceIdentity, Incoming, KeyPackages,
    MlsStore, ProposalKind,
};

const CONV: [u8; 16] = *b"conversation-001";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

struct Device {
    store: MlsStore,
    id: DeviceIdentity,
}

impl Device {
    fn new(account: u8, device: u32) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(account) << 32 | u64::from(device));
        Self {
            store: MlsStore::new(),
            id: DeviceIdentity::generate(AccountId([account; 16]), DeviceId(device), &mut rng),
        }
    }

    fn addr(&self) -> DeviceAddress {
        self.id.address()
    }

    /// One uploaded one-time KeyPackage, as the server would hand it out.
    fn key_package(&self) -> Vec<u8> {
        let mut batch = KeyPackages::generate(&self.store, &self.id, 1, now(), 3600).unwrap();
        batch.one_time.pop().unwrap()
    }
}

/// What another device does with a downloaded KeyPackage: validate for the expected device.
fn fetch_kp(adder: &Device, of: &Device) -> sirr_crypto::ValidatedKeyPackage {
    KeyPackages::validate(&adder.store, &of.key_package(), of.addr(), now()).unwrap()
}

/// `creator` creates the conversation and adds `others`; they all join. Returns the
/// conversations in the order creator, others...
fn setup(creator: &Device, others: &[&Device]) -> Vec<Conversation> {
    let mut conv = Conversation::create(&creator.store, &creator.id, CONV).unwrap();
    let kps: Vec<_> = others.iter().map(|o| fetch_kp(creator, o)).collect();
    let out = conv.add_members(&creator.store, &creator.id, &kps).unwrap();
    // Not merged until the server accepts.
    assert_eq!(conv.epoch(), 0);
    assert!(conv.has_pending_commit());
    conv.merge_pending_commit(&creator.store).unwrap();
    assert_eq!(conv.epoch(), 1);
    let mut all = vec![conv];
    for o in others {
        let joined = Conversation::join(&o.store, &out.welcome).unwrap();
        assert_eq!(joined.epoch(), 1);
        assert_eq!(joined.id(), CONV);
        all.push(joined);
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn expect_app(res: Result<Incoming, CryptoError>) -> (DeviceAddress, Vec<u8>) {
    match res.unwrap() {
        Incoming::ApplicationMessage { sender, plaintext } => (sender, plaintext),
        other => panic!("expected an application message, got {other:?}"),
    }
}

#[test]
fn one_to_one_two_devices_and_one() {
    let alice1 = Device::new(1, 1);
    let alice2 = Device::new(1, 2);
    let bob = Device::new(2, 1);
    let mut convs = setup(&alice1, &[&alice2, &bob]);
    let [a1, a2, b] = &mut convs[..] else {
        unreachable!()
    };

    let mut expected = vec![alice1.addr(), alice2.addr(), bob.addr()];
    expected.sort();
    for c in [&*a1, &*a2, &*b] {
        let mut m = c.members();
        m.sort();
        assert_eq!(m, expected);
    }

    // Alice's first device writes; every other device reads.
    let secret = b"meet me at the old lighthouse at nine";
    let ct = a1.encrypt_padded(&alice1.store, &alice1.id, secret).unwrap();
    assert!(!contains(&ct, secret), "ciphertext leaks the plaintext");
    assert!(!contains(&ct, b"lighthouse"));
    for (conv, dev) in [(&mut *a2, &alice2), (&mut *b, &bob)] {
        let (sender, pt) = expect_app(conv.process_incoming(&dev.store, &ct));
        assert_eq!(sender, alice1.addr());
        assert_eq!(Conversation::unpad(&pt).unwrap(), secret);
    }

    // Bob replies; both of Alice's devices read.
    let reply = b"see you there";
    let ct = b.encrypt_padded(&bob.store, &bob.id, reply).unwrap();
    assert!(!contains(&ct, reply));
    for (conv, dev) in [(&mut *a1, &alice1), (&mut *a2, &alice2)] {
        let (sender, pt) = expect_app(conv.process_incoming(&dev.store, &ct));
        assert_eq!(sender, bob.addr());
        assert_eq!(Conversation::unpad(&pt).unwrap(), reply);
    }

    // Alice's second device writes too.
    let ct = a2.encrypt(&alice2.store, &alice2.id, b"from my phone").unwrap();
    for (conv, dev) in [(&mut *a1, &alice1), (&mut *b, &bob)] {
        let (sender, pt) = expect_app(conv.process_incoming(&dev.store, &ct));
        assert_eq!(sender, alice2.addr());
        assert_eq!(pt, b"from my phone");
    }
    // The echo of its own message is recognised and skipped.
    assert_eq!(
        a2.process_incoming(&alice2.store, &ct).unwrap(),
        Incoming::OwnMessage
    );
}

#[test]
fn removed_member_can_no_longer_decrypt() {
    let alice = Device::new(1, 1);
    let bob = Device::new(2, 1);
    let carol = Device::new(3, 1);
    let mut convs = setup(&alice, &[&bob, &carol]);
    let [a, b, c] = &mut convs[..] else { unreachable!() };

    // Snapshot Carol's state before the removal: she may simply ignore the commit.
    let carol_snapshot = MlsStore::import(&carol.store.export().unwrap()).unwrap();
    let mut c_stale = Conversation::load(&carol_snapshot, CONV).unwrap().unwrap();

    // Every member derives the same membership token for the epoch; the committer knows the
    // next one before merging, and it differs.
    let token1 = a.membership_token();
    assert_eq!(b.membership_token(), token1);
    assert_eq!(c.membership_token(), token1);
    assert_eq!(a.pending_membership_token(), None);
    let commit = a
        .remove_members(&alice.store, &alice.id, &[carol.addr()])
        .unwrap();
    let token2 = a
        .pending_membership_token()
        .expect("a pending commit has a next token");
    assert_ne!(token2, token1);
    a.merge_pending_commit(&alice.store).unwrap();
    assert_eq!(a.membership_token(), token2);
    assert_eq!(a.members().len(), 2);

    match b.process_incoming(&bob.store, &commit).unwrap() {
        Incoming::CommitApplied {
            epoch,
            committer,
            added,
            removed,
            self_removed,
        } => {
            assert_eq!(epoch, 2);
            assert_eq!(committer, alice.addr());
            assert!(added.is_empty());
            assert_eq!(removed, vec![carol.addr()]);
            assert!(!self_removed);
        }
        other => panic!("unexpected {other:?}"),
    }
    match c.process_incoming(&carol.store, &commit).unwrap() {
        Incoming::CommitApplied { self_removed, .. } => assert!(self_removed),
        other => panic!("unexpected {other:?}"),
    }
    assert!(!c.is_active());
    assert_eq!(
        b.membership_token(),
        token2,
        "the remaining member derives the new token"
    );
    assert_ne!(c.membership_token(), token2, "the removed member cannot");

    let ct = a.encrypt(&alice.store, &alice.id, b"without carol").unwrap();
    let (_, pt) = expect_app(b.process_incoming(&bob.store, &ct));
    assert_eq!(pt, b"without carol");
    assert_eq!(
        c.process_incoming(&carol.store, &ct),
        Err(CryptoError::NotAMember)
    );
    assert_eq!(
        c_stale.process_incoming(&carol_snapshot, &ct),
        Err(CryptoError::WrongEpoch)
    );
    // Carol cannot write either.
    assert_eq!(
        c.encrypt(&carol.store, &carol.id, b"x"),
        Err(CryptoError::NotAMember)
    );
}

#[test]
fn leave_is_a_proposal_committed_by_another_member() {
    let alice = Device::new(1, 1);
    let bob = Device::new(2, 1);
    let mut convs = setup(&alice, &[&bob]);
    let [a, b] = &mut convs[..] else { unreachable!() };
    let proposal = b.leave(&bob.store, &bob.id).unwrap();
    match a.process_incoming(&alice.store, &proposal).unwrap() {
        Incoming::Proposal { sender, proposal } => {
            assert_eq!(sender, bob.addr());
            assert_eq!(proposal, ProposalKind::Remove(bob.addr()));
        }
        other => panic!("unexpected {other:?}"),
    }
    let (commit, welcome) = a.commit_pending_proposals(&alice.store, &alice.id).unwrap();
    assert!(welcome.is_none());
    a.merge_pending_commit(&alice.store).unwrap();
    assert_eq!(a.members(), vec![alice.addr()]);
    match b.process_incoming(&bob.store, &commit).unwrap() {
        Incoming::CommitApplied { self_removed, .. } => assert!(self_removed),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn tampered_and_replayed_messages_are_rejected() {
    let alice = Device::new(1, 1);
    let bob = Device::new(2, 1);
    let mut convs = setup(&alice, &[&bob]);
    let [a, b] = &mut convs[..] else { unreachable!() };

    let ct = a.encrypt(&alice.store, &alice.id, b"authentic").unwrap();
    let mut tampered = ct.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    assert_eq!(
        b.process_incoming(&bob.store, &tampered),
        Err(CryptoError::DecryptionFailed)
    );
    let mut tampered_mid = ct.clone();
    let mid = tampered_mid.len() - 20;
    tampered_mid[mid] ^= 0x80;
    assert!(b.process_incoming(&bob.store, &tampered_mid).is_err());

    // The genuine message is still accepted after the forgeries...
    let (_, pt) = expect_app(b.process_incoming(&bob.store, &ct));
    assert_eq!(pt, b"authentic");
    // ...but only once.
    assert_eq!(b.process_incoming(&bob.store, &ct), Err(CryptoError::Replay));

    // A message for another conversation is refused before any crypto.
    let other = Device::new(9, 1);
    let mut other_conv = Conversation::create(&other.store, &other.id, *b"conversation-002").unwrap();
    let foreign = other_conv.encrypt(&other.store, &other.id, b"hi").unwrap();
    assert_eq!(
        b.process_incoming(&bob.store, &foreign),
        Err(CryptoError::WrongGroup)
    );
}

#[test]
fn stale_commit_is_rejected_and_loser_recovers() {
    let alice = Device::new(1, 1);
    let bob = Device::new(2, 1);
    let carol = Device::new(3, 1);
    let dave = Device::new(4, 1);
    let mut convs = setup(&alice, &[&bob]);
    let [a, b] = &mut convs[..] else { unreachable!() };

    // Both race a commit for epoch 1.
    let alice_add = a
        .add_members(&alice.store, &alice.id, &[fetch_kp(&alice, &carol)])
        .unwrap();
    let bob_add = b
        .add_members(&bob.store, &bob.id, &[fetch_kp(&bob, &dave)])
        .unwrap();
    // No application messages while a commit is pending.
    assert_eq!(
        a.encrypt(&alice.store, &alice.id, b"x"),
        Err(CryptoError::PendingCommit)
    );

    // The echo of one's own (encrypted) commit changes nothing.
    assert_eq!(
        a.process_incoming(&alice.store, &alice_add.commit).unwrap(),
        Incoming::OwnMessage
    );
    assert_eq!(a.epoch(), 1);
    // The server accepts Alice's and rejects Bob's.
    a.merge_pending_commit(&alice.store).unwrap();
    assert_eq!(a.epoch(), 2);
    b.clear_pending_commit(&bob.store).unwrap();
    assert!(matches!(
        b.process_incoming(&bob.store, &alice_add.commit).unwrap(),
        Incoming::CommitApplied { epoch: 2, .. }
    ));
    let mut c = Conversation::join(&carol.store, &alice_add.welcome).unwrap();

    // Bob's commit for epoch 1 is stale everywhere.
    assert_eq!(
        a.process_incoming(&alice.store, &bob_add.commit),
        Err(CryptoError::WrongEpoch)
    );
    assert_eq!(
        b.process_incoming(&bob.store, &bob_add.commit),
        Err(CryptoError::WrongEpoch)
    );
    assert_eq!(
        c.process_incoming(&carol.store, &bob_add.commit),
        Err(CryptoError::WrongEpoch)
    );
    // Re-delivery of an already applied commit is stale too.
    assert_eq!(
        b.process_incoming(&bob.store, &alice_add.commit),
        Err(CryptoError::WrongEpoch)
    );
    // Dave's Welcome belongs to an epoch that never happened; it still parses, but Dave would
    // join a dead branch. The server must not deliver Welcomes of rejected commits.

    // Everyone is in sync.
    let ct = b.encrypt(&bob.store, &bob.id, b"epoch two").unwrap();
    assert_eq!(expect_app(a.process_incoming(&alice.store, &ct)).1, b"epoch two");
    assert_eq!(expect_app(c.process_incoming(&carol.store, &ct)).1, b"epoch two");
    assert_eq!(
        b.merge_pending_commit(&bob.store),
        Err(CryptoError::NoPendingCommit)
    );
}

#[test]
fn key_package_validation() {
    let alice = Device::new(1, 1);
    let bob = Device::new(2, 1);
    let kp = bob.key_package();
    let ok = KeyPackages::validate(&alice.store, &kp, bob.addr(), now()).unwrap();
    assert_eq!(ok.address(), bob.addr());
    assert!(!ok.is_last_resort());

    let mut bad_sig = kp.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 1;
    assert_eq!(
        KeyPackages::validate(&alice.store, &bad_sig, bob.addr(), now()).unwrap_err(),
        CryptoError::InvalidSignature
    );

    let other_device = DeviceAddress {
        account: bob.addr().account,
        device: DeviceId(2),
    };
    assert_eq!(
        KeyPackages::validate(&alice.store, &kp, other_device, now()).unwrap_err(),
        CryptoError::CredentialMismatch {
            expected: other_device,
            found: bob.addr()
        }
    );

    assert!(matches!(
        KeyPackages::validate(&alice.store, &kp, bob.addr(), now() + 10 * 3600),
        Err(CryptoError::KeyPackageLifetime { .. })
    ));
    assert!(matches!(
        KeyPackages::validate(&alice.store, &kp[..kp.len() - 3], bob.addr(), now()),
        Err(CryptoError::Malformed(_))
    ));
    let mut trailing = kp.clone();
    trailing.push(0);
    assert!(matches!(
        KeyPackages::validate(&alice.store, &trailing, bob.addr(), now()),
        Err(CryptoError::Malformed(_))
    ));

    let batch = KeyPackages::generate(&bob.store, &bob.id, 3, now(), 3600).unwrap();
    assert_eq!(batch.one_time.len(), 3);
    let lr = KeyPackages::validate(&alice.store, &batch.last_resort, bob.addr(), now()).unwrap();
    assert!(lr.is_last_resort());
}

#[test]
fn welcome_for_someone_else_is_refused() {
    let alice = Device::new(1, 1);
    let bob = Device::new(2, 1);
    let eve = Device::new(6, 1);
    let mut a = Conversation::create(&alice.store, &alice.id, CONV).unwrap();
    let out = a
        .add_members(&alice.store, &alice.id, &[fetch_kp(&alice, &bob)])
        .unwrap();
    assert_eq!(
        Conversation::join(&eve.store, &out.welcome).unwrap_err(),
        CryptoError::NoMatchingKeyPackage
    );
    assert!(matches!(
        Conversation::join(&bob.store, &out.commit),
        Err(CryptoError::UnexpectedMessage { .. })
    ));
    // One-time: the KeyPackage is consumed by the first join.
    Conversation::join(&bob.store, &out.welcome).unwrap();
    let bob2 = MlsStore::new();
    assert!(Conversation::join(&bob2, &out.welcome).is_err());
}

#[test]
fn state_export_import_round_trip() {
    let alice = Device::new(1, 1);
    let bob = Device::new(2, 1);
    let carol = Device::new(3, 1);
    let mut convs = setup(&alice, &[&bob]);
    {
        let [a, b] = &mut convs[..] else { unreachable!() };
        let ct = a.encrypt(&alice.store, &alice.id, b"before save 1").unwrap();
        expect_app(b.process_incoming(&bob.store, &ct));
        let ct = b.encrypt(&bob.store, &bob.id, b"before save 2").unwrap();
        expect_app(a.process_incoming(&alice.store, &ct));
    }
    // Both devices save everything: store + identity; then "restart".
    let a_bytes = (alice.store.export().unwrap(), alice.id.to_bytes());
    let b_bytes = (bob.store.export().unwrap(), bob.id.to_bytes());
    drop(convs);
    drop(alice);
    drop(bob);
    let alice = Device {
        store: MlsStore::import(&a_bytes.0).unwrap(),
        id: DeviceIdentity::from_bytes(&a_bytes.1).unwrap(),
    };
    let bob = Device {
        store: MlsStore::import(&b_bytes.0).unwrap(),
        id: DeviceIdentity::from_bytes(&b_bytes.1).unwrap(),
    };
    let mut a = Conversation::load(&alice.store, CONV).unwrap().unwrap();
    let mut b = Conversation::load(&bob.store, CONV).unwrap().unwrap();
    assert!(
        Conversation::load(&bob.store, *b"no-such-convers.")
            .unwrap()
            .is_none()
    );
    assert_eq!(a.epoch(), 1);
    assert_eq!(b.members(), a.members());

    let ct = a.encrypt(&alice.store, &alice.id, b"after reload 1").unwrap();
    assert_eq!(
        expect_app(b.process_incoming(&bob.store, &ct)),
        (alice.addr(), b"after reload 1".to_vec())
    );
    let ct = b.encrypt(&bob.store, &bob.id, b"after reload 2").unwrap();
    assert_eq!(
        expect_app(a.process_incoming(&alice.store, &ct)).1,
        b"after reload 2"
    );

    // Group operations keep working after the reload, and the state export is a snapshot
    // (a second round trip in the middle of a pending commit).
    let out = b
        .add_members(&bob.store, &bob.id, &[fetch_kp(&bob, &carol)])
        .unwrap();
    let bob_store2 = MlsStore::import(&bob.store.export().unwrap()).unwrap();
    let mut b2 = Conversation::load(&bob_store2, CONV).unwrap().unwrap();
    assert!(b2.has_pending_commit());
    b2.merge_pending_commit(&bob_store2).unwrap();
    assert!(matches!(
        a.process_incoming(&alice.store, &out.commit).unwrap(),
        Incoming::CommitApplied { epoch: 2, .. }
    ));
    let mut c = Conversation::join(&carol.store, &out.welcome).unwrap();
    let ct = c.encrypt(&carol.store, &carol.id, b"hello from carol").unwrap();
    assert_eq!(
        expect_app(a.process_incoming(&alice.store, &ct)).1,
        b"hello from carol"
    );
    assert_eq!(
        expect_app(b2.process_incoming(&bob_store2, &ct)).1,
        b"hello from carol"
    );

    // Carol refreshes her keys (post-compromise security); everyone follows.
    let commit = c.update_keys(&carol.store, &carol.id).unwrap();
    c.merge_pending_commit(&carol.store).unwrap();
    for (conv, store) in [(&mut a, &alice.store), (&mut b2, &bob_store2)] {
        assert!(matches!(
            conv.process_incoming(store, &commit).unwrap(),
            Incoming::CommitApplied { epoch: 3, .. }
        ));
    }
    let ct = a.encrypt(&alice.store, &alice.id, b"epoch three").unwrap();
    assert_eq!(
        expect_app(c.process_incoming(&carol.store, &ct)).1,
        b"epoch three"
    );
}

#[test]
fn random_and_mutated_input_never_panics() {
    let alice = Device::new(1, 1);
    let bob = Device::new(2, 1);
    let mut convs = setup(&alice, &[&bob]);
    let [a, b] = &mut convs[..] else { unreachable!() };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5117);

    // Pure noise, all lengths up to 600 bytes.
    for _ in 0..3000 {
        let len = rng.random_range(0..600);
        let mut buf = vec![0u8; len];
        rng.fill_bytes(&mut buf);
        assert!(b.process_incoming(&bob.store, &buf).is_err());
        let _ = Conversation::join(&bob.store, &buf);
        let _ = KeyPackages::validate(&bob.store, &buf, alice.addr(), now());
        let _ = MlsStore::import(&buf);
        let _ = DeviceIdentity::from_bytes(&buf);
    }

    // Mutations of valid messages: flip, truncate, extend. Samples: an application message,
    // a KeyPackage, a Commit and a Welcome (the commit is discarded on Alice's side).
    let extra = Device::new(7, 1);
    let add = a
        .add_members(&alice.store, &alice.id, &[fetch_kp(&alice, &extra)])
        .unwrap();
    a.clear_pending_commit(&alice.store).unwrap();
    let samples = [
        a.encrypt(&alice.store, &alice.id, b"sample").unwrap(),
        alice.key_package(),
        add.commit.clone(),
        add.welcome.clone(),
    ];
    for _ in 0..2000 {
        let mut m = samples[rng.random_range(0..samples.len())].clone();
        match rng.random_range(0..3) {
            0 => {
                for _ in 0..rng.random_range(1..4) {
                    let i = rng.random_range(0..m.len());
                    m[i] ^= 1 << rng.random_range(0..8);
                }
            }
            1 => m.truncate(rng.random_range(0..m.len())),
            _ => m.extend_from_slice(&[rng.random(), rng.random()]),
        }
        if m == add.commit {
            continue; // a no-op mutation would be the genuine commit
        }
        assert!(b.process_incoming(&bob.store, &m).is_err());
        let _ = KeyPackages::validate(&bob.store, &m, alice.addr(), now());
        let _ = Conversation::join(&extra.store, &m);
    }
    assert_eq!(b.epoch(), 1);

    // The conversation still works.
    let ct = a.encrypt(&alice.store, &alice.id, b"still alive").unwrap();
    assert_eq!(expect_app(b.process_incoming(&bob.store, &ct)).1, b"still alive");
}

//! MLS performance figures for Sirr.
//!
//! - `app/encrypt_256` and `app/decrypt_256`: one 256-byte application message in a 2-member
//!   group (target: < 20 µs each);
//! - `aead/aes128gcm_{seal,open}_256`: the raw AEAD of the same ciphersuite, for the ratio;
//! - `ed25519/{sign,verify}_300`: the per-message signature, the floor of the above;
//! - `group1000/add_commit_create` and `group1000/add_commit_process`: adding one device to a
//!   1,000-member group, by one member and as processed by another (target: < 50 ms);
//! - `group1000/update_commit_create`: a key-refresh commit (UpdatePath) in that group.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-crypto cargo bench -p sirr-crypto`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto;
use openmls_traits::types::AeadType;
use rand::SeedableRng;
use sirr_crypto::{AccountId, Conversation, DeviceId, DeviceIdentity, Incoming, KeyPackages, MlsStore};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Device {
    store: MlsStore,
    id: DeviceIdentity,
}

fn device(n: u32) -> Device {
    let mut rng = rand::rngs::StdRng::seed_from_u64(u64::from(n));
    let mut account = [0u8; 16];
    account[..4].copy_from_slice(&n.to_be_bytes());
    Device {
        store: MlsStore::new(),
        id: DeviceIdentity::generate(AccountId(account), DeviceId(1), &mut rng),
    }
}

fn key_package(of: &Device, validator: &Device) -> sirr_crypto::ValidatedKeyPackage {
    let batch = KeyPackages::generate(&of.store, &of.id, 1, now(), 3600).expect("kp");
    KeyPackages::validate(&validator.store, &batch.one_time[0], of.id.address(), now()).expect("valid kp")
}

/// Creator + `n - 1` members; returns (creator, its conversation, second member, its
/// conversation).
fn group(n: u32) -> (Device, Conversation, Device, Conversation) {
    let alice = device(0);
    let mut a = Conversation::create(&alice.store, &alice.id, *b"bench-conversati").expect("create");
    let bob = device(1);
    let mut kps = vec![key_package(&bob, &alice)];
    for i in 2..n {
        kps.push(key_package(&device(i), &alice));
    }
    let out = a.add_members(&alice.store, &alice.id, &kps).expect("add");
    a.merge_pending_commit(&alice.store).expect("merge");
    let b = Conversation::join(&bob.store, &out.welcome).expect("join");
    (alice, a, bob, b)
}

fn app_messages(c: &mut Criterion) {
    // Two separate groups: the messages encrypted in the first benchmark are never delivered,
    // and a receiver refuses to skip more than MAX_FORWARD_DISTANCE generations.
    let (alice, mut a, _, _) = group(2);
    let (alice2, mut a2, bob, mut b) = group(2);
    let msg = [0x42u8; 256];
    let mut g = c.benchmark_group("app");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("encrypt_256", |bench| {
        bench.iter(|| {
            black_box(
                a.encrypt(&alice.store, &alice.id, black_box(&msg))
                    .expect("encrypt"),
            )
        })
    });
    g.bench_function("decrypt_256", |bench| {
        bench.iter_batched(
            || a2.encrypt(&alice2.store, &alice2.id, &msg).expect("encrypt"),
            |ct| match b.process_incoming(&bob.store, &ct).expect("decrypt") {
                Incoming::ApplicationMessage { plaintext, .. } => black_box(plaintext),
                _ => unreachable!(),
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Membership tokens: what a sender derives per message, and what the server computes per
/// message to check it (one SHA-256 of 32 bytes).
fn membership_tokens(c: &mut Criterion) {
    let (_, a, _, _) = group(2);
    let token = a.membership_token();
    let mut g = c.benchmark_group("membership");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("derive_token", |bench| {
        bench.iter(|| black_box(a.membership_token()))
    });
    g.bench_function("server_hash", |bench| {
        bench.iter(|| black_box(black_box(&token).hash()))
    });
    g.finish();
}

fn raw_aead(c: &mut Criterion) {
    let crypto = RustCrypto::default();
    let key = [7u8; 16];
    let nonce = [9u8; 12];
    let msg = [0x42u8; 256];
    let sealed = crypto
        .aead_encrypt(AeadType::Aes128Gcm, &key, &msg, &nonce, b"")
        .expect("seal");
    let mut g = c.benchmark_group("aead");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("aes128gcm_seal_256", |bench| {
        bench.iter(|| {
            black_box(
                crypto
                    .aead_encrypt(AeadType::Aes128Gcm, &key, black_box(&msg), &nonce, b"")
                    .expect("seal"),
            )
        })
    });
    g.bench_function("aes128gcm_open_256", |bench| {
        bench.iter(|| {
            black_box(
                crypto
                    .aead_decrypt(AeadType::Aes128Gcm, &key, black_box(&sealed), &nonce, b"")
                    .expect("open"),
            )
        })
    });
    g.finish();
}

fn group_1000(c: &mut Criterion) {
    let t = Instant::now();
    let (alice, mut a, bob, b) = group(1000);
    eprintln!(
        "built a {}-member group in {:.1} s",
        a.members().len(),
        t.elapsed().as_secs_f64()
    );
    drop(b);
    let newcomer = device(5000);
    let kp = key_package(&newcomer, &alice);
    let bob_state = bob.store.export().expect("export");
    eprintln!("member state export: {} KiB", bob_state.len() / 1024);

    // One commit for Bob to process (then discarded on Alice's side).
    let out = a
        .add_members(&alice.store, &alice.id, std::slice::from_ref(&kp))
        .expect("add");
    a.clear_pending_commit(&alice.store).expect("clear");
    eprintln!(
        "commit {} KiB, welcome {} KiB",
        out.commit.len() / 1024,
        out.welcome.len() / 1024
    );

    let mut g = c.benchmark_group("group1000");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("add_commit_create", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let out = a
                    .add_members(&alice.store, &alice.id, std::slice::from_ref(&kp))
                    .expect("add");
                total += t.elapsed();
                black_box(out);
                a.clear_pending_commit(&alice.store).expect("clear");
            }
            total
        })
    });
    g.bench_function("add_commit_process", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let store = MlsStore::import(&bob_state).expect("import");
                let mut conv = Conversation::load(&store, *b"bench-conversati")
                    .expect("load")
                    .expect("present");
                let t = Instant::now();
                let res = conv.process_incoming(&store, &out.commit).expect("process");
                total += t.elapsed();
                assert!(matches!(res, Incoming::CommitApplied { epoch: 2, .. }));
            }
            total
        })
    });
    // Sending to the whole group is one encryption, whatever its size (the server fans out).
    g.bench_function("encrypt_256", |bench| {
        let msg = sirr_proto::padding::pad(&[0x61; 200]);
        bench.iter(|| black_box(a.encrypt(&alice.store, &alice.id, &msg).expect("encrypt")))
    });
    // The PCS key refresh (commit with UpdatePath) in the same tree: worst case, since all
    // parent nodes off the creator's path are blank right after the group was built.
    g.bench_function("update_commit_create", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let commit = a.update_keys(&alice.store, &alice.id).expect("update");
                total += t.elapsed();
                black_box(commit);
                a.clear_pending_commit(&alice.store).expect("clear");
            }
            total
        })
    });
    g.finish();
}

/// The per-message signature is the floor of MLS application-message cost: every
/// PrivateMessage is signed by its sender and verified by each receiver.
fn raw_ed25519(c: &mut Criterion) {
    use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
    let key = SigningKey::from_bytes(&[5u8; 32]);
    let msg = [0x42u8; 300];
    let sig = key.sign(&msg);
    let vk = key.verifying_key();
    let mut g = c.benchmark_group("ed25519");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("sign_300", |bench| {
        bench.iter(|| black_box(key.sign(black_box(&msg))))
    });
    g.bench_function("verify_300", |bench| {
        bench.iter(|| black_box(vk.verify(black_box(&msg), &sig).is_ok()))
    });
    g.finish();
}

criterion_group!(
    benches,
    app_messages,
    membership_tokens,
    raw_aead,
    raw_ed25519,
    group_1000
);
criterion_main!(benches);

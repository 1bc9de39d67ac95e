//! The SQLite group-commit ceiling: how many queue rows per second the store makes durable
//! (fsync per commit) when many writers submit at once. This is the storage floor that delivery
//! figures can be read against.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sirr_proto::{AccountId, DeviceAddress, DeviceId, MessageId};
use sirr_store::sqlite::{SqliteOptions, SqliteStore};
use sirr_store::*;

struct Quiet;
impl QueueListener for Quiet {
    fn queued(&self, _: DeviceKey, _: &QueuedMessage) {}
}

const BATCH: u64 = 10_000;

fn group_commit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(
        &dir.path().join("bench.db"),
        SqliteOptions::default(),
        Arc::new(Quiet),
    )
    .expect("open store");
    let from = DeviceAddress {
        account: AccountId([1; 16]),
        device: DeviceId(1),
    };
    let payload: Arc<[u8]> = vec![7u8; 256].into();
    let mut group = c.benchmark_group("store");
    group
        .throughput(Throughput::Elements(BATCH))
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("enqueue_10k_rows_256B_durable", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for it in 0..iters {
                    let started = Instant::now();
                    let pending: Vec<_> = (0..BATCH)
                        .map(|i| {
                            let mut id = [0u8; 16];
                            id[..8].copy_from_slice(&(it * BATCH + i).to_le_bytes());
                            let m = NewMessage {
                                message_id: MessageId(id),
                                from: Some(from),
                                server_ts: 1,
                                payload: payload.clone(),
                                expires_at: None,
                                franking: None,
                            };
                            store.enqueue(m, vec![DeviceKey((i % 1000) as i64)])
                        })
                        .collect();
                    for p in pending {
                        p.await.expect("durable");
                    }
                    total += started.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, group_commit);
criterion_main!(benches);

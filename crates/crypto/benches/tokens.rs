//! The cost of anonymous sealed-send tokens (`sirr_crypto::tokens`), per token:
//!
//! - `tokens/client_blind_100` and `tokens/client_finalize_100`: a client's share of one batch
//!   of 100 (blind, then check the proof and unblind);
//! - `tokens/server_issue_100`: the server evaluating and proving a batch of 100;
//! - `tokens/server_verify`: the server checking one token at a sealed send (what every sealed
//!   copy costs it, besides the spent-set insert).
//!
//! Run: `cargo bench -p sirr-crypto --bench tokens`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use sirr_crypto::tokens::{TokenIssuer, TokenRequest};

const BATCH: usize = 100;

fn bench(c: &mut Criterion) {
    let mut rng = rand::rng();
    let issuer = TokenIssuer::generate(1, &mut rng).unwrap();
    let mut g = c.benchmark_group("tokens");
    g.bench_function("client_blind_100", |b| {
        b.iter(|| black_box(TokenRequest::new(BATCH, &mut rand::rng()).unwrap()))
    });
    let (_, blinded) = TokenRequest::new(BATCH, &mut rng).unwrap();
    g.bench_function("server_issue_100", |b| {
        b.iter(|| black_box(issuer.issue(&blinded, &mut rand::rng()).unwrap()))
    });
    g.bench_function("client_finalize_100", |b| {
        b.iter_batched(
            || {
                let (req, blinded) = TokenRequest::new(BATCH, &mut rand::rng()).unwrap();
                (req, issuer.issue(&blinded, &mut rand::rng()).unwrap())
            },
            |(req, issued)| {
                black_box(
                    req.finalize(issuer.key(), &issued.evaluated, &issued.proof)
                        .unwrap(),
                )
            },
            BatchSize::SmallInput,
        )
    });
    let (req, blinded) = TokenRequest::new(BATCH, &mut rng).unwrap();
    let issued = issuer.issue(&blinded, &mut rng).unwrap();
    let tokens = req
        .finalize(issuer.key(), &issued.evaluated, &issued.proof)
        .unwrap();
    let mut i = 0;
    g.bench_function("server_verify", |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            assert!(issuer.verify(black_box(&tokens[i])));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

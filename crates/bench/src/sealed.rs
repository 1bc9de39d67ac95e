//! `throughput --sealed`: the same one-to-one workload as `throughput`, with every message sent
//! with **sealed sender**: each device uploads a delivery token, sends on its own
//! unauthenticated sealed-sender session (`SealedSession`, `SendSealed` naming the peer with its
//! token), and receives on its device session. Two connections per device, as real clients
//! hold them; compared side by side with identified sends in `compare`-style alternating runs.

use std::sync::Arc;

use hdrhistogram::Histogram;
use sirr_proto::*;

use crate::harness::{Target, Ws, call, open_session, open_ws, receive_pushes, register_many};
use crate::throughput::{Args, Report, Shared, device, histogram, measure, ticker};

pub async fn run(target: &Target, a: &Args) -> anyhow::Result<Report> {
    let n = a.devices.max(2) & !1;
    eprintln!("registering {n} devices ...");
    let (devices, _) = register_many(&target.url, n, 5_560_000_000, 64).await?;
    eprintln!("  connecting (device and sealed-sender sessions) ...");
    let mut tokens = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    for (i, d) in devices.iter().enumerate() {
        let mut ws = open_session(target, None, d).await?;
        let mut token = [0u8; 16];
        token[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        token[8..].copy_from_slice(&d.account.0[..8]);
        match call(&mut ws, 1, Request::SetAccessKey { access_key: token }).await? {
            Ok(Response::Done) => {}
            other => anyhow::bail!("SetAccessKey refused: {other:?}"),
        }
        tokens.push(token);
        receivers.push(ws);
        let mut anon = open_ws(&target.endpoint(), None).await?;
        match call(&mut anon, 1, Request::SealedSession).await? {
            Ok(Response::Done) => {}
            other => anyhow::bail!("SealedSession refused: {other:?}"),
        }
        senders.push(anon);
    }
    let shared = Shared::new();
    let mut tasks = Vec::with_capacity(2 * n);
    for (i, (rx, tx)) in receivers.into_iter().zip(senders).enumerate() {
        let j = (i + n / 2) % n;
        let peer = &devices[j];
        let to = SealedRecipient {
            account: peer.account,
            devices: vec![peer.device],
            access_key: tokens[j],
        };
        tasks.push(tokio::spawn(receive(rx, shared.clone())));
        let tick = ticker(i, n, a.rate);
        let body = move |message_id, payload| Request::SendSealed {
            message_id,
            to: vec![to.clone()],
            payload,
            epoch: None,
            ttl_secs: None,
            franking: None,
        };
        // The sending side is `throughput`'s device loop, on the sealed-sender session.
        let me = devices[i].clone();
        tasks.push(tokio::spawn(device(
            tx,
            me,
            body,
            a.clone(),
            tick,
            shared.clone(),
        )));
    }
    measure("sirr-sealed", n, a, target.pid, &shared, tasks).await
}

/// A device session that only receives: latency on receipt, acks in batches.
async fn receive(ws: Ws, shared: Arc<Shared>) -> Histogram<u64> {
    let mut hist = histogram();
    receive_pushes(ws, shared.stop_tx.subscribe(), |env| {
        if let Some(sent) = env.payload.first_chunk::<8>() {
            shared.delivered(&mut hist, u64::from_le_bytes(*sent));
        }
    })
    .await;
    hist
}

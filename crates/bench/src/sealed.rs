//! `throughput --sealed`: the same one-to-one workload as `throughput`, with every message sent
//! with **sealed sender**: each device uploads a delivery token, sends on its own
//! unauthenticated sealed-sender session (`SealedSession`, `SendSealed` naming the peer with its
//! token), and receives on its device session. Two connections per device, as real clients
//! hold them; compared side by side with identified sends in `compare`-style alternating runs.

use std::sync::{Arc, Mutex};

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
    // Every sealed message costs a token: each device fetches, before the clock starts, what
    // its share of the run needs (all it can send, when the run is not paced).
    let per_device = if a.rate > 0.0 {
        (a.rate * (a.duration + a.warmup) / n as f64 * 1.25).ceil() as usize + a.window + 8
    } else {
        UNPACED_TOKENS
    };
    eprintln!("  fetching {per_device} sealed-send tokens per device ...");
    let mut wallets = Vec::with_capacity(n);
    for (i, d) in devices.iter().enumerate() {
        let mut ws = open_session(target, None, d).await?;
        wallets.push(Arc::new(Mutex::new(fetch_tokens(&mut ws, per_device).await?)));
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
        let wallet = wallets[i].clone();
        let body = move |message_id, payload| Request::SendSealed {
            message_id,
            to: vec![to.clone()],
            payload,
            epoch: None,
            ttl_secs: None,
            franking: None,
            // Out of tokens, the send is refused and counted as an error.
            tokens: wallet.lock().ok().and_then(|mut w| w.pop()).into_iter().collect(),
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

/// Tokens fetched per device for a run that is not paced.
const UNPACED_TOKENS: usize = 2_000;

/// `count` sealed-send tokens for the signed-in device of `ws`, in batches of 1,000.
async fn fetch_tokens(ws: &mut Ws, count: usize) -> anyhow::Result<Vec<SealedToken>> {
    let mut out = Vec::with_capacity(count);
    let mut id = 100;
    while out.len() < count {
        let k = (count - out.len()).min(sirr_crypto::tokens::MAX_BATCH);
        let (req, blinded) = sirr_crypto::tokens::TokenRequest::new(k, &mut rand::rng())?;
        id += 1;
        match call(ws, id, Request::IssueSealedTokens { blinded }).await? {
            Ok(Response::SealedTokens {
                key,
                evaluated,
                proof,
            }) => {
                out.extend(req.finalize(key, &evaluated, &proof)?);
            }
            other => anyhow::bail!("IssueSealedTokens refused: {other:?}"),
        }
    }
    Ok(out)
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

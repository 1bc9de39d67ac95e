//! `throughput --sealed`: the same one-to-one workload as `throughput`, with every message sent
//! with **sealed sender**: each device uploads a delivery token, sends on its own
//! unauthenticated sealed-sender session (`SealedSession`, `SendSealed` naming the peer with its
//! token), and receives on its device session. Two connections per device, as real clients
//! hold them; compared side by side with identified sends in `compare`-style alternating runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use sirr_proto::*;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Device, Target, Ws, call, open_session, open_ws, register_many};
use crate::throughput::{Args, Report, Shared, histogram, measure, ticker};

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
        tasks.push(tokio::spawn(send(
            tx,
            devices[i].clone(),
            to,
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
    let mut stop = shared.stop_tx.subscribe();
    let (mut sink, mut stream) = ws.split();
    let mut acks = Vec::new();
    loop {
        let first = tokio::select! {
            _ = stop.changed() => break,
            m = stream.next() => m,
        };
        let mut next = Some(first);
        while let Some(m) = next.take() {
            let Some(Ok(m)) = m else { return hist };
            if let Message::Binary(b) = m
                && let Ok(ServerFrame::Push(env)) = decode_server_frame(&b, 1 << 24)
            {
                acks.push(env.seq);
                if let Some(sent) = env.payload.first_chunk::<8>() {
                    shared.delivered(&mut hist, u64::from_le_bytes(*sent));
                }
            }
            next = stream.next().now_or_never();
        }
        if !acks.is_empty() {
            let f = ClientFrame::Ack {
                seqs: std::mem::take(&mut acks),
            };
            if sink.send(Message::Binary(encode(&f).into())).await.is_err() {
                return hist;
            }
        }
    }
    hist
}

/// A sealed-sender session that only sends, keeping `window` sends in flight (or paced).
async fn send(
    ws: Ws,
    me: Device,
    to: SealedRecipient,
    a: Args,
    mut tick: tokio::time::Interval,
    shared: Arc<Shared>,
) -> Histogram<u64> {
    let paced = a.rate > 0.0;
    let mut stop = shared.stop_tx.subscribe();
    let (mut sink, mut stream) = ws.split();
    let (mut inflight, mut next_id, mut counter) = (0usize, 1u32, 0u64);
    let mut payload = vec![0u8; a.payload.max(16)];
    payload[8..12].copy_from_slice(&me.device.0.to_le_bytes());
    let mut frame = |counter: &mut u64, next_id: &mut u32| {
        *counter += 1;
        payload[..8].copy_from_slice(&shared.now_ns().to_le_bytes());
        let mut mid = [0u8; 16];
        mid[..8].copy_from_slice(&counter.to_le_bytes());
        mid[8..].copy_from_slice(&me.account.0[..8]);
        *next_id = next_id.wrapping_add(1);
        let f = ClientFrame::Request {
            id: *next_id,
            body: Request::SendSealed {
                message_id: MessageId(mid),
                to: vec![to.clone()],
                payload: payload.clone(),
                epoch: None,
                ttl_secs: None,
                franking: None,
            },
        };
        Message::Binary(encode(&f).into())
    };
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        if !paced && inflight < a.window {
            while inflight < a.window {
                if sink.feed(frame(&mut counter, &mut next_id)).await.is_err() {
                    return histogram();
                }
                inflight += 1;
            }
            if sink.flush().await.is_err() {
                return histogram();
            }
        }
        let first = tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick(), if paced => {
                if inflight < a.window {
                    if sink.send(frame(&mut counter, &mut next_id)).await.is_err() {
                        return histogram();
                    }
                    inflight += 1;
                }
                continue;
            }
            m = stream.next() => m,
        };
        let mut next = Some(first);
        while let Some(m) = next.take() {
            let Some(Ok(m)) = m else { return histogram() };
            if let Message::Binary(b) = m {
                match decode_server_frame(&b, 1 << 24) {
                    Ok(ServerFrame::Response { result: Ok(_), .. }) => {
                        inflight = inflight.saturating_sub(1);
                        shared.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(ServerFrame::Response { result: Err(e), .. }) => {
                        inflight = inflight.saturating_sub(1);
                        if e.code == ErrorCode::Overloaded {
                            shared.overloaded.fetch_add(1, Ordering::Relaxed);
                        } else {
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {}
                }
            }
            next = stream.next().now_or_never();
        }
    }
    histogram()
}

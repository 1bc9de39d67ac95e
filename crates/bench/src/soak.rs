//! `soak`: a bounded mixed workload — devices connect, send, drop their connections (abruptly,
//! possibly with pushes read but not acknowledged) and come back, while new accounts sign up and
//! send their first message — then a check that every message the server acknowledged (`Sent`)
//! reached its recipient device exactly once. Exits non-zero otherwise.
//!
//! "Exactly once" is what the device's application sees, the way sirr-client keeps it: the wire
//! is at-least-once (a push stays queued until acknowledged, and the server applies an ack
//! asynchronously, so a push read just before a drop, or acknowledged just before a fast
//! reconnect, can be pushed again) and the client drops a repeated message id. So a lost message
//! fails the check; repeats on the wire are counted and reported, split by whether the device's
//! ack had already been confirmed (by the answer to a later Ping on the same connection). At the
//! end every device opens one last session and reads its queue to the end (`QueueEmpty`), after
//! all senders have stopped; a queue that does not drain fails the check too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use sirr_proto::*;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Device, Endpoint, Target, Ws, call, open_session, register_many};
use crate::throughput::load_average;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Devices (each its own account), sending to each other in pairs
    #[arg(long, default_value_t = 200)]
    pub devices: usize,
    /// Seconds of mixed load (the final drain comes after)
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Messages per second offered in total
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Mean seconds a device stays connected before it drops and reconnects
    #[arg(long, default_value_t = 2.0)]
    pub session: f64,
    /// New accounts signing up per second, each sending one message to an existing device
    #[arg(long, default_value_t = 20.0)]
    pub signups: f64,
    /// Seconds each device waits after its first Hello before it sends (0: at once, while the
    /// server still reads its queue: what wedged sirrd before the store fix; BENCHMARKS.md, soak)
    #[arg(long, default_value_t = 0.0)]
    pub first_send_after: f64,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub devices: usize,
    pub seconds: f64,
    pub sessions: u64,
    pub sign_ups: u64,
    /// Messages the server acknowledged durably (`Sent`).
    pub acknowledged: u64,
    /// Of those, delivered to their recipient device.
    pub delivered: u64,
    /// Acknowledged but never delivered: must be 0.
    pub lost: u64,
    /// Pushed again after the device's ack was confirmed (dropped by id, as sirr-client does).
    pub duplicated_after_ack: u64,
    /// Pushed again because the connection dropped before the ack (dropped by id).
    pub redelivered_before_ack: u64,
    /// Delivered although the sender never saw `Sent` (its connection dropped first).
    pub delivered_unacknowledged: u64,
    pub send_errors: u64,
    /// Sessions opened (or Hellos answered) not within 5 s.
    pub connect_errors: u64,
    /// Devices whose final session did not read their queue to the end within 20 s.
    pub drain_failures: u64,
    pub passed: bool,
    pub load_average: Option<[f64; 3]>,
}

/// What the senders learnt, shared by all tasks.
#[derive(Default)]
struct Ledger {
    /// (recipient device index, message id) of every acknowledged message.
    acknowledged: std::sync::Mutex<Vec<(usize, [u8; 16])>>,
    sessions: AtomicU64,
    send_errors: AtomicU64,
    connect_errors: AtomicU64,
}

impl Ledger {
    fn acknowledged(&self, to: usize, id: [u8; 16]) {
        if let Ok(mut v) = self.acknowledged.lock() {
            v.push((to, id));
        }
    }
}

/// What one recipient device saw, over all its sessions.
#[derive(Default)]
struct Inbox {
    received: HashSet<[u8; 16]>,
    /// Message id of every push read, by its queue position, until acknowledged.
    unacked: HashMap<u64, [u8; 16]>,
    acked: HashSet<[u8; 16]>,
    duplicated_after_ack: u64,
    redelivered_before_ack: u64,
}

impl Inbox {
    fn push(&mut self, env: &Envelope) {
        let id = env.message_id.0;
        if self.acked.contains(&id) {
            self.duplicated_after_ack += 1;
        } else if !self.received.insert(id) {
            self.redelivered_before_ack += 1;
        }
        self.unacked.insert(env.seq, id);
    }

    fn acked(&mut self, seqs: &[u64]) {
        for s in seqs {
            if let Some(id) = self.unacked.remove(s) {
                self.acked.insert(id);
            }
        }
    }
}

pub async fn run(target: &Target, a: &Args) -> anyhow::Result<Report> {
    let n = a.devices.max(2) & !1;
    eprintln!("registering {n} devices ...");
    let (devices, _) = register_many(&target.url, n, 5_580_000_000, 64).await?;
    let devices = Arc::new(devices);
    let ledger = Arc::new(Ledger::default());
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(a.duration);
    // Everyone stops sending before anyone drains.
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (devices, ledger, barrier, endpoint, a) = (
            devices.clone(),
            ledger.clone(),
            barrier.clone(),
            target.endpoint(),
            a.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut inbox = Inbox::default();
            let peer = (i + n / 2) % n;
            churn(&endpoint, i, peer, &devices, &a, until, &ledger, &mut inbox).await;
            barrier.wait().await;
            let drained =
                tokio::time::timeout(Duration::from_secs(20), drain(&endpoint, &devices[i], &mut inbox))
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("queue not drained within 20 s")));
            (inbox, drained)
        }));
    }
    let sign_ups = sign_up_load(target, a, &devices, until, &ledger).await;
    barrier.wait().await;
    eprintln!("draining every queue ...");
    let mut inboxes = Vec::with_capacity(n);
    let mut drain_failures = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let (inbox, drained) = t.await?;
        if let Err(e) = drained {
            if drain_failures == 0 {
                eprintln!("  device {i}: {e:#}");
            }
            drain_failures += 1;
        }
        inboxes.push(inbox);
    }
    let acknowledged = ledger
        .acknowledged
        .lock()
        .map_err(|_| anyhow::anyhow!("ledger lock poisoned"))?
        .clone();
    let expected: HashSet<(usize, [u8; 16])> = acknowledged.iter().copied().collect();
    let delivered = expected
        .iter()
        .filter(|(to, id)| inboxes[*to].received.contains(id))
        .count() as u64;
    let received_total: usize = inboxes.iter().map(|b| b.received.len()).sum();
    let lost = expected.len() as u64 - delivered;
    let duplicated_after_ack = inboxes.iter().map(|b| b.duplicated_after_ack).sum();
    Ok(Report {
        devices: n,
        seconds: started.elapsed().as_secs_f64(),
        sessions: ledger.sessions.load(Ordering::Relaxed),
        sign_ups,
        acknowledged: expected.len() as u64,
        delivered,
        lost,
        duplicated_after_ack,
        redelivered_before_ack: inboxes.iter().map(|b| b.redelivered_before_ack).sum(),
        delivered_unacknowledged: (received_total as u64).saturating_sub(delivered),
        send_errors: ledger.send_errors.load(Ordering::Relaxed),
        connect_errors: ledger.connect_errors.load(Ordering::Relaxed),
        drain_failures,
        passed: lost == 0 && drain_failures == 0 && !expected.is_empty(),
        load_average: load_average(),
    })
}

fn message_id(sender: usize, counter: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(sender as u64).to_le_bytes());
    id[8..].copy_from_slice(&counter.to_le_bytes());
    id
}

/// Device `i`'s life until `until`: sessions of varying length, each sending to `peer` at its
/// share of the offered rate and reading (and acknowledging) its own pushes; every session ends
/// by dropping the connection, whatever is in flight.
#[allow(clippy::too_many_arguments)]
async fn churn(
    endpoint: &Endpoint,
    i: usize,
    peer: usize,
    devices: &[Device],
    a: &Args,
    until: Instant,
    ledger: &Ledger,
    inbox: &mut Inbox,
) {
    let n = devices.len();
    let to = vec![Recipient {
        account: devices[peer].account,
        devices: vec![devices[peer].device],
    }];
    let period = Duration::from_secs_f64(n as f64 / a.rate.max(0.001));
    let mut counter = 0u64;
    let mut cycle = 0u64;
    while Instant::now() < until {
        cycle += 1;
        let opened =
            tokio::time::timeout(Duration::from_secs(5), open_session_at(endpoint, &devices[i])).await;
        let Ok(Ok(ws)) = opened else {
            ledger.connect_errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        ledger.sessions.fetch_add(1, Ordering::Relaxed);
        // Session lengths spread 0.25–1.75× the mean, differing per device and cycle.
        let spread = ((i as u64 * 7919 + cycle * 104_729) % 1000) as f64 / 1000.0;
        let end = (Instant::now() + Duration::from_secs_f64(a.session * (0.25 + 1.5 * spread))).min(until);
        let (mut sink, mut stream) = ws.split();
        let mut pending: HashMap<u32, [u8; 16]> = HashMap::new();
        // Acks written in this session: they count as acknowledged once a later Ping's Pong
        // shows the server read them (an abrupt close can lose what the server had not read).
        let mut sent_acks: Vec<u64> = Vec::new();
        let mut ended = false;
        let hold = if cycle == 1 {
            a.first_send_after.max(0.0)
        } else {
            0.0
        };
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_secs_f64(hold),
            period,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        'session: loop {
            let first = tokio::select! {
                _ = tokio::time::sleep_until(end.into()) => {
                    ended = true;
                    break 'session;
                }
                _ = tick.tick() => {
                    counter += 1;
                    let id = message_id(i, counter);
                    let req = counter as u32;
                    pending.insert(req, id);
                    let f = ClientFrame::Request {
                        id: req,
                        body: Request::Send {
                            message_id: MessageId(id),
                            to: to.clone(),
                            payload: vec![0u8; 64],
                            epoch: None,
                            ttl_secs: None,
                            franking: None,
                        },
                    };
                    if sink.send(Message::Binary(encode(&f).into())).await.is_err() {
                        break 'session;
                    }
                    continue;
                }
                m = stream.next() => m,
            };
            let mut acks = Vec::new();
            let mut next = Some(first);
            while let Some(m) = next.take() {
                let Some(Ok(m)) = m else { break 'session };
                if let Message::Binary(b) = m {
                    match decode_server_frame(&b, 1 << 24) {
                        Ok(ServerFrame::Response { id, result }) => {
                            if let Some(mid) = pending.remove(&id) {
                                match result {
                                    Ok(Response::Sent { .. }) => ledger.acknowledged(peer, mid),
                                    _ => {
                                        ledger.send_errors.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        }
                        Ok(ServerFrame::Push(env)) => {
                            inbox.push(&env);
                            acks.push(env.seq);
                        }
                        Ok(_) => {}
                        Err(_) => break 'session,
                    }
                }
                next = stream.next().now_or_never();
            }
            if !acks.is_empty() {
                let f = ClientFrame::Ack { seqs: acks.clone() };
                if sink.send(Message::Binary(encode(&f).into())).await.is_err() {
                    break 'session;
                }
                sent_acks.extend(acks);
            }
        }
        if ended {
            let ping = ClientFrame::Request {
                id: 0,
                body: Request::Ping,
            };
            if sink.send(Message::Binary(encode(&ping).into())).await.is_ok()
                && confirm(&mut stream, inbox).await
            {
                inbox.acked(&sent_acks);
            }
        }
        // Drop the connection abruptly: pushes in flight stay unacknowledged, sends in flight
        // stay unanswered.
        drop((sink, stream));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Read until the Pong (request id 0); pushes read meanwhile are noted but left unacknowledged,
/// so they must come again in the next session.
async fn confirm(stream: &mut futures_util::stream::SplitStream<Ws>, inbox: &mut Inbox) -> bool {
    let wait = async {
        while let Some(Ok(m)) = stream.next().await {
            if let Message::Binary(b) = m {
                match decode_server_frame(&b, 1 << 24) {
                    Ok(ServerFrame::Response { id: 0, .. }) => return true,
                    Ok(ServerFrame::Push(env)) => inbox.push(&env),
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(5), wait)
        .await
        .unwrap_or(false)
}

async fn open_session_at(endpoint: &Endpoint, d: &Device) -> anyhow::Result<Ws> {
    let mut ws = crate::harness::open_ws(endpoint, None).await?;
    let hello = Request::Hello {
        protocol: PROTOCOL_VERSION,
        account: d.account,
        device: d.device,
        secret: d.secret.clone(),
    };
    match call(&mut ws, 0, hello).await? {
        Ok(Response::Welcome { .. }) => Ok(ws),
        other => anyhow::bail!("Hello answered {other:?}"),
    }
}

/// One last session: read the queue to its end and acknowledge everything.
async fn drain(endpoint: &Endpoint, d: &Device, inbox: &mut Inbox) -> anyhow::Result<()> {
    let mut ws = open_session_at(endpoint, d).await?;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| anyhow::anyhow!("queue not drained within 30 s"))?;
        let Some(m) = m else {
            anyhow::bail!("connection closed while draining")
        };
        if let Message::Binary(b) = m? {
            match decode_server_frame(&b, 1 << 24)? {
                ServerFrame::Push(env) => {
                    inbox.push(&env);
                    ws.send(Message::Binary(
                        encode(&ClientFrame::Ack { seqs: vec![env.seq] }).into(),
                    ))
                    .await?;
                }
                ServerFrame::QueueEmpty => break,
                _ => {}
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(())
}

/// New accounts signing up at `a.signups` per second until `until`, each sending one message to
/// an existing device once registered. Returns how many signed up.
async fn sign_up_load(target: &Target, a: &Args, devices: &[Device], until: Instant, ledger: &Ledger) -> u64 {
    if a.signups <= 0.0 {
        tokio::time::sleep_until(until.into()).await;
        return 0;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / a.signups));
    let mut k = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        k += 1;
        let to = (k as usize * 31) % devices.len();
        let id = message_id(1_000_000 + k as usize, 1);
        let one = async {
            let (new, _) = register_many(&target.url, 1, 5_590_000_000 + k, 1).await?;
            let me = new
                .first()
                .ok_or_else(|| anyhow::anyhow!("no device registered"))?;
            let mut ws = open_session(target, None, me).await?;
            ledger.sessions.fetch_add(1, Ordering::Relaxed);
            let send = Request::Send {
                message_id: MessageId(id),
                to: vec![Recipient {
                    account: devices[to].account,
                    devices: vec![devices[to].device],
                }],
                payload: vec![1u8; 64],
                epoch: None,
                ttl_secs: None,
                franking: None,
            };
            let answer = call(&mut ws, 1, send).await?;
            let _ = ws.close(None).await;
            anyhow::Ok(answer)
        };
        // Bounded like every other step, so a server that stops answering fails the check
        // instead of hanging it.
        match tokio::time::timeout(Duration::from_secs(5), one).await {
            Ok(Ok(Ok(Response::Sent { .. }))) => ledger.acknowledged(to, id),
            Ok(Ok(_)) => {
                ledger.send_errors.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) | Err(_) => {
                ledger.connect_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    k
}

//! `groups`: fan-out. One sender sends each payload once, addressed to every member's device
//! (as an MLS group message is: encrypted once, stored and pushed per member); for groups of 10,
//! 100 and 1,000 members: messages and delivered copies per second, the latency of each copy,
//! and the latency until the *last* member has it.
//!
//! Every payload carries its send time and a sequence number; each member's task notes what it
//! received and when, and after the run the copies are joined by sequence number, so the
//! last-member latency is exact and a message some member never got is counted, not hidden.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use sirr_proto::*;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{
    Target, Ws, dir_bytes, open_session, proc_cpu_seconds, proc_write_bytes, receive_pushes, register_many,
};
use crate::throughput::{Shared, histogram, load_average, own_cpu_seconds};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Group sizes (members receiving, besides the sender)
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    pub sizes: Vec<usize>,
    /// Seconds measured per group size
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds of warm-up per group size
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Payload bytes per message
    #[arg(long, default_value_t = 256)]
    pub payload: usize,
    /// Group messages the sender keeps in flight (awaiting the server's durable ack)
    #[arg(long, default_value_t = 16)]
    pub window: usize,
}

#[derive(Serialize, Debug)]
pub struct Size {
    pub members: usize,
    pub messages_per_s: f64,
    pub copies_per_s: f64,
    pub copy_p50_ms: f64,
    pub copy_p99_ms: f64,
    pub last_member_p50_ms: f64,
    pub last_member_p99_ms: f64,
    /// Messages acknowledged in the window that some member had not received by the end.
    pub incomplete: u64,
    pub server_cpu_s: Option<f64>,
    pub bench_cpu_s: Option<f64>,
    /// Bytes the server wrote to storage in the window (database, log, checkpoints), per copy
    /// delivered in it. Only for a spawned server.
    pub write_bytes_per_copy: Option<f64>,
    /// Size of the server's data directory (database and log files) at the end of the window.
    pub disk_bytes: Option<u64>,
    pub load_average: Option<[f64; 3]>,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub payload: usize,
    pub sizes: Vec<Size>,
}

pub async fn run(target: &Target, a: &Args) -> anyhow::Result<Report> {
    let most = a.sizes.iter().copied().max().unwrap_or(0).max(1);
    eprintln!("registering {} devices ...", most + 1);
    let (devices, _) = register_many(&target.url, most + 1, 5_570_000_000, 64).await?;
    let (sender, members) = devices
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("no devices"))?;
    let mut sizes = Vec::new();
    for &m in &a.sizes {
        let m = m.clamp(1, members.len());
        eprintln!("group of {m}: connecting ...");
        let mut sessions = Vec::with_capacity(m);
        for chunk in members[..m].chunks(256) {
            for s in futures_util::future::join_all(chunk.iter().map(|d| open_session(target, None, d))).await
            {
                sessions.push(s?);
            }
        }
        let shared = Shared::new();
        let receivers: Vec<_> = sessions
            .into_iter()
            .map(|ws| tokio::spawn(member(ws, shared.clone())))
            .collect();
        let to: Vec<Recipient> = members[..m]
            .iter()
            .map(|d| Recipient {
                account: d.account,
                devices: vec![d.device],
            })
            .collect();
        let ws = open_session(target, None, sender).await?;
        let sending = tokio::spawn(send_group(ws, to, a.clone(), shared.clone()));
        tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
        let cpu0 = (target.pid.and_then(proc_cpu_seconds), own_cpu_seconds());
        let written0 = target.pid.and_then(proc_write_bytes);
        let first = shared.sent.load(Ordering::Relaxed);
        let t0 = std::time::Instant::now();
        shared.measuring.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
        shared.measuring.store(false, Ordering::Relaxed);
        let secs = t0.elapsed().as_secs_f64();
        let last = shared.sent.load(Ordering::Relaxed);
        let cpu1 = (target.pid.and_then(proc_cpu_seconds), own_cpu_seconds());
        let written = written0
            .zip(target.pid.and_then(proc_write_bytes))
            .map(|(a, b)| b.saturating_sub(a));
        let disk_bytes = target.data_dir().map(|d| dir_bytes(&d));
        shared.stop.store(true, Ordering::Relaxed);
        sending.await??;
        // Let the last copies arrive before the members stop.
        tokio::time::sleep(Duration::from_secs(1)).await;
        shared.stop_tx.send_replace(true);
        // Messages sent in the window are numbered first+1 ..= last (acks come back in order of
        // durability, which may differ slightly from numbering; the window's edges are blurred by
        // at most `window` messages).
        let window = first + 1..=last;
        let mut copies = histogram();
        let mut per_message: HashMap<u64, (usize, u64)> = HashMap::new();
        for r in receivers {
            for (seq, us) in r.await? {
                if window.contains(&seq) {
                    let _ = copies.record(us);
                    let e = per_message.entry(seq).or_insert((0, 0));
                    e.0 += 1;
                    e.1 = e.1.max(us);
                }
            }
        }
        let mut last_member = histogram();
        let mut incomplete = 0;
        for seq in window.clone() {
            match per_message.get(&seq) {
                Some(&(n, us)) if n == m => {
                    let _ = last_member.record(us);
                }
                _ => incomplete += 1,
            }
        }
        let q = |h: &hdrhistogram::Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
        let size = Size {
            members: m,
            messages_per_s: (last - first) as f64 / secs,
            copies_per_s: copies.len() as f64 / secs,
            copy_p50_ms: q(&copies, 0.5),
            copy_p99_ms: q(&copies, 0.99),
            last_member_p50_ms: q(&last_member, 0.5),
            last_member_p99_ms: q(&last_member, 0.99),
            incomplete,
            server_cpu_s: cpu0.0.zip(cpu1.0).map(|(a, b)| b - a),
            bench_cpu_s: cpu0.1.zip(cpu1.1).map(|(a, b)| b - a),
            write_bytes_per_copy: written.map(|w| w as f64 / copies.len().max(1) as f64),
            disk_bytes,
            load_average: load_average(),
        };
        eprintln!(
            "  {:.0} msgs/s, {:.0} copies/s, last member p99 {:.1} ms, incomplete {}, {} B written per copy, {} B on disk",
            size.messages_per_s,
            size.copies_per_s,
            size.last_member_p99_ms,
            size.incomplete,
            size.write_bytes_per_copy
                .map_or("?".into(), |b| format!("{b:.0}")),
            size.disk_bytes.map_or("?".into(), |b| b.to_string()),
        );
        sizes.push(size);
    }
    Ok(Report {
        payload: a.payload,
        sizes,
    })
}

/// The sender: keeps `window` group messages in flight, numbering them 1, 2, ...; `shared.sent`
/// counts the acknowledged ones.
async fn send_group(ws: Ws, to: Vec<Recipient>, a: Args, shared: Arc<Shared>) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let mut seq = 0u64;
    let mut inflight = 0usize;
    let mut payload = vec![0u8; a.payload.max(16)];
    while !shared.stop.load(Ordering::Relaxed) {
        while inflight < a.window {
            seq += 1;
            payload[..8].copy_from_slice(&shared.now_ns().to_le_bytes());
            payload[8..16].copy_from_slice(&seq.to_le_bytes());
            let mut mid = [0u8; 16];
            mid[..8].copy_from_slice(&seq.to_le_bytes());
            // Unique per group size too: message ids are the sender's, and must not repeat.
            mid[8..].copy_from_slice(&(to.len() as u64).to_le_bytes());
            let f = ClientFrame::Request {
                id: seq as u32,
                body: Request::Send {
                    message_id: MessageId(mid),
                    to: to.clone(),
                    payload: payload.clone(),
                    epoch: None,
                    ttl_secs: None,
                    franking: None,
                },
            };
            sink.feed(Message::Binary(encode(&f).into())).await?;
            inflight += 1;
        }
        sink.flush().await?;
        let Some(m) = stream.next().await else {
            anyhow::bail!("sender's connection closed")
        };
        if let Message::Binary(b) = m? {
            match decode_server_frame(&b, 1 << 24)? {
                ServerFrame::Response { result: Ok(_), .. } => {
                    inflight -= 1;
                    shared.sent.fetch_add(1, Ordering::Relaxed);
                }
                ServerFrame::Response { result: Err(e), .. } => anyhow::bail!("group send refused: {e}"),
                _ => {}
            }
        }
    }
    Ok(())
}

/// A member: acks everything, notes (sequence number, latency µs) of every copy received.
async fn member(ws: Ws, shared: Arc<Shared>) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    receive_pushes(ws, shared.stop_tx.subscribe(), |env| {
        if let (Some(sent), Some(seq)) = (env.payload.first_chunk::<8>(), env.payload.get(8..16)) {
            let us = (shared.now_ns().saturating_sub(u64::from_le_bytes(*sent)) / 1000).max(1);
            let seq = u64::from_le_bytes(seq.try_into().unwrap_or_default());
            got.push((seq, us));
        }
    })
    .await;
    got
}

//! `throughput`: N connected devices in one-to-one pairs, each sending to its peer; delivered
//! messages per second and send-to-receipt latency, at a fixed offered rate or at saturation.
//!
//! Every payload starts with the sender's send time (nanoseconds on this process's monotonic
//! clock); the receiving device task, in the same process, subtracts it on receipt. So latency is
//! end to end: client encode, server decode, durable commit, fan-out, push, client decode.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use sirr_proto::*;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Device, Target, Ws, open_session, proc_cpu_seconds, register_many};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Connected devices (each its own account), paired one-to-one
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Offered messages per second in total; 0 = as fast as the server takes them
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds measured (after the warm-up)
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of warm-up, not measured
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Payload bytes per message
    #[arg(long, default_value_t = 256)]
    pub payload: usize,
    /// Sends a device keeps in flight (awaiting the server's durable ack)
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Send every message with sealed sender (a second, unauthenticated connection per device)
    #[arg(long, conflicts_with = "peer")]
    pub sealed: bool,
    /// Measure this peer instead of Sirr, with the same workload (see scripts/peers/)
    #[arg(long, value_enum)]
    pub peer: Option<crate::peer::Peer>,
    /// The peer's address [default: 127.0.0.1:5222 for ejabberd, 127.0.0.1:6379 for redis]
    #[arg(long)]
    pub peer_addr: Option<std::net::SocketAddr>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Report {
    /// What was measured: `sirr`, `ejabberd` or `redis`.
    pub system: &'static str,
    pub devices: usize,
    pub offered_rate: f64,
    pub payload: usize,
    pub seconds: f64,
    pub sent_per_s: f64,
    pub delivered_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub overloaded: u64,
    pub other_errors: u64,
    pub server_cpu_s: Option<f64>,
    pub bench_cpu_s: Option<f64>,
    pub load_average: Option<[f64; 3]>,
}

/// State shared by every device task of one run, Sirr's or a peer's: the one clock that stamps
/// sends and receipts, the measurement window, and the counters.
pub struct Shared {
    pub epoch: Instant,
    pub measuring: AtomicBool,
    pub stop: AtomicBool,
    /// Set with `stop`, for tasks that wait on a socket and must not miss the end.
    pub stop_tx: tokio::sync::watch::Sender<bool>,
    pub sent: AtomicU64,
    pub delivered: AtomicU64,
    pub overloaded: AtomicU64,
    pub errors: AtomicU64,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            stop_tx: tokio::sync::watch::Sender::new(false),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            overloaded: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    /// Nanoseconds since this run started, on the monotonic clock every task shares.
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Count one delivery stamped `sent_ns` at send time; record its latency while measuring.
    pub fn delivered(&self, hist: &mut Histogram<u64>, sent_ns: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if self.measuring.load(Ordering::Relaxed) {
            let _ = hist.record((self.now_ns().saturating_sub(sent_ns) / 1000).max(1));
        }
    }
}

/// A latency histogram in microseconds, up to 10 minutes.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

/// The send clock of device `i` of `n` at `rate` messages/s in total: one tick per period,
/// phases spread evenly so the devices do not send in lockstep. At saturation (`rate` 0) it never
/// ticks and devices send whenever their window allows.
pub fn ticker(i: usize, n: usize, rate: f64) -> tokio::time::Interval {
    let period = (rate > 0.0).then(|| Duration::from_secs_f64(n as f64 / rate));
    let phase = period.map_or(Duration::ZERO, |p| p.mul_f64(i as f64 / n as f64));
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + phase,
        period.unwrap_or(Duration::from_secs(3600)),
    );
    // A device that falls behind skips ticks instead of bursting to catch up.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick
}

/// Warm up, measure for `a.duration`, stop the device tasks and merge their histograms into one
/// report. `server` is the process measured (for its CPU), if known.
pub async fn measure(
    system: &'static str,
    n: usize,
    a: &Args,
    server: Option<u32>,
    shared: &Shared,
    tasks: Vec<tokio::task::JoinHandle<Histogram<u64>>>,
) -> anyhow::Result<Report> {
    eprintln!(
        "running {system}: {:.0}s warm-up, {:.0}s measured ...",
        a.warmup, a.duration
    );
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    let (sent0, del0) = (
        shared.sent.load(Ordering::Relaxed),
        shared.delivered.load(Ordering::Relaxed),
    );
    let cpu0 = (server.and_then(proc_cpu_seconds), own_cpu_seconds());
    let t0 = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let (sent1, del1) = (
        shared.sent.load(Ordering::Relaxed),
        shared.delivered.load(Ordering::Relaxed),
    );
    let cpu1 = (server.and_then(proc_cpu_seconds), own_cpu_seconds());
    shared.stop.store(true, Ordering::Relaxed);
    shared.stop_tx.send_replace(true);
    let mut hist = histogram();
    for t in tasks {
        hist.add(t.await?)?;
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(Report {
        system,
        devices: n,
        offered_rate: a.rate,
        payload: a.payload,
        seconds: secs,
        sent_per_s: (sent1 - sent0) as f64 / secs,
        delivered_per_s: (del1 - del0) as f64 / secs,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
        overloaded: shared.overloaded.load(Ordering::Relaxed),
        other_errors: shared.errors.load(Ordering::Relaxed),
        server_cpu_s: cpu0.0.zip(cpu1.0).map(|(a, b)| b - a),
        bench_cpu_s: cpu0.1.zip(cpu1.1).map(|(a, b)| b - a),
        load_average: load_average(),
    })
}

pub async fn run(target: &Target, a: &Args) -> anyhow::Result<Report> {
    let n = a.devices.max(2) & !1;
    eprintln!("registering {n} devices ...");
    let (devices, reg_rate) = register_many(&target.url, n, 5_550_000_000, 64).await?;
    eprintln!("  {reg_rate:.0} registrations/s; connecting ...");
    let mut sessions = Vec::with_capacity(n);
    for chunk in devices.chunks(256) {
        let opened =
            futures_util::future::join_all(chunk.iter().map(|d| open_session(target, None, d))).await;
        for s in opened {
            sessions.push(s?);
        }
    }
    let shared = Shared::new();
    let mut tasks = Vec::with_capacity(n);
    for (i, ws) in sessions.into_iter().enumerate() {
        let peer = &devices[(i + n / 2) % n];
        let to = Recipient {
            account: peer.account,
            devices: vec![peer.device],
        };
        let me = devices[i].clone();
        let tick = ticker(i, n, a.rate);
        let body = move |message_id, payload| Request::Send {
            message_id,
            to: vec![to.clone()],
            payload,
            epoch: None,
            ttl_secs: None,
            franking: None,
        };
        tasks.push(tokio::spawn(device(
            ws,
            me,
            body,
            a.clone(),
            tick,
            shared.clone(),
        )));
    }
    measure("sirr", n, a, target.pid, &shared, tasks).await
}

/// The 1-, 5- and 15-minute load averages of the machine (Linux), recorded with every run
/// because other work on the machine moves the figures.
pub fn load_average() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// CPU seconds used by this process (Linux).
pub fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
}

/// One device's session: sends `body(message id, payload)` requests, paced or keeping
/// `a.window` in flight, counts the answers, and records the latency of every push it
/// receives (a sealed-sender session simply receives none).
pub async fn device(
    ws: Ws,
    me: Device,
    body: impl Fn(MessageId, Vec<u8>) -> Request + Send + 'static,
    a: Args,
    mut tick: tokio::time::Interval,
    shared: Arc<Shared>,
) -> Histogram<u64> {
    let paced = a.rate > 0.0;
    let mut hist = histogram();
    // A device waiting on a server that stopped answering must still end with the run.
    let mut stop = shared.stop_tx.subscribe();
    let (mut sink, mut stream) = ws.split();
    let mut inflight = 0usize;
    let mut next_id = 1u32;
    let mut counter = 0u64;
    let mut acks: Vec<u64> = Vec::new();
    let mut payload = vec![0u8; a.payload.max(16)];
    payload[8..12].copy_from_slice(&me.device.0.to_le_bytes());
    let mut frame = |counter: &mut u64, next_id: &mut u32| {
        *counter += 1;
        let ts = shared.now_ns();
        payload[..8].copy_from_slice(&ts.to_le_bytes());
        let mut mid = [0u8; 16];
        mid[..8].copy_from_slice(&counter.to_le_bytes());
        mid[8..].copy_from_slice(&me.account.0[..8]);
        *next_id = next_id.wrapping_add(1);
        let f = ClientFrame::Request {
            id: *next_id,
            body: body(MessageId(mid), payload.clone()),
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
                    return hist;
                }
                inflight += 1;
            }
            if sink.flush().await.is_err() {
                return hist;
            }
        }
        let first = tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick(), if paced => {
                if inflight < a.window {
                    if sink.send(frame(&mut counter, &mut next_id)).await.is_err() {
                        return hist;
                    }
                    inflight += 1;
                }
                continue;
            }
            m = stream.next() => m,
        };
        // Handle this frame and every other one already received, then ack them all at once.
        let mut next = Some(first);
        while let Some(m) = next.take() {
            let Some(Ok(m)) = m else { return hist };
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
                    Ok(ServerFrame::Push(env)) => {
                        acks.push(env.seq);
                        if let Some(sent) = env.payload.first_chunk::<8>() {
                            shared.delivered(&mut hist, u64::from_le_bytes(*sent));
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
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

//! `compare`: Sirr and its peers (ejabberd, Redis pub/sub) side by side in one run, on the same
//! machine, with the same load generator and workload shape, alternating systems run by run
//! (S E R S E R ...) so that drift of the machine (other work, thermal, page cache) falls on all
//! of them alike. Every ratio is taken between runs of the same repetition, and its spread over
//! the repetitions is reported with it.
//!
//! Also side by side: sign-ups (Sirr's code request + verification + first device against
//! ejabberd's in-band registration, both a fresh connection each, closed-loop) and the memory an
//! idle authenticated session costs (Sirr's device session against ejabberd's SCRAM session).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::harness::{Target, proc_rss_bytes};
use crate::peer::{self, Peer};
use crate::throughput::{self, load_average};
use crate::{connections, plot, surge, xmpp};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Clients per system, in one-to-one pairs
    #[arg(long, default_value_t = 200)]
    pub devices: usize,
    /// Payload bytes per message
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Sends a client keeps in flight
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Offered rates in messages/s (0 = saturation)
    #[arg(long, value_delimiter = ',', default_value = "0,10000,40000")]
    pub rates: Vec<f64>,
    /// Repetitions of each (rate, system); systems alternate within a repetition
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Seconds measured per run
    #[arg(long, default_value_t = 4.0)]
    pub duration: f64,
    /// Seconds of warm-up per run
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Peers to measure beside Sirr
    #[arg(long, value_enum, value_delimiter = ',', default_value = "ejabberd,redis")]
    pub peers: Vec<Peer>,
    /// ejabberd's c2s address
    #[arg(long, default_value = "127.0.0.1:5222")]
    pub ejabberd_addr: SocketAddr,
    /// redis-server's address
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub redis_addr: SocketAddr,
    /// Seconds of closed-loop sign-ups per registration run (0 skips the comparison)
    #[arg(long, default_value_t = 3.0)]
    pub register_seconds: f64,
    /// Clients signing up back to back in a registration run
    #[arg(long, default_value_t = 32)]
    pub register_clients: usize,
    /// Idle sessions opened per system for the memory comparison (0 skips it)
    #[arg(long, default_value_t = 4000)]
    pub idle: usize,
    /// Write a plot of p99 latency against load (SVG) here
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// How Sirr is started for each of its runs: a fresh server, like the other scenarios.
pub struct Spawn {
    pub sirrd: Option<PathBuf>,
    pub config: String,
}

/// One figure's ratio Sirr : peer over the repetitions.
#[derive(Serialize, Debug)]
pub struct Ratio {
    pub offered_rate: f64,
    pub peer: &'static str,
    /// Sirr's delivered/s divided by the peer's, per repetition.
    pub delivered: Vec<f64>,
    /// The peer's p99 latency divided by Sirr's, per repetition (> 1: Sirr's is lower).
    pub p99_lower: Vec<f64>,
}

#[derive(Serialize, Debug)]
pub struct SignUps {
    pub system: &'static str,
    pub completed_per_s: f64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub load_average: Option<[f64; 3]>,
}

#[derive(Serialize, Debug)]
pub struct Idle {
    pub system: &'static str,
    pub sessions: usize,
    pub bytes_per_session: Option<f64>,
    pub sessions_per_gib: Option<f64>,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub devices: usize,
    pub payload: usize,
    pub window: usize,
    pub runs: Vec<throughput::Report>,
    pub ratios: Vec<Ratio>,
    pub sign_ups: Vec<SignUps>,
    /// Sirr's sign-ups/s divided by ejabberd's, per repetition.
    pub sign_up_ratio: Vec<f64>,
    pub idle: Vec<Idle>,
}

pub async fn run(spawn: &Spawn, a: &Args) -> anyhow::Result<Report> {
    let addr = |p: Peer| match p {
        Peer::Ejabberd => a.ejabberd_addr,
        Peer::Redis => a.redis_addr,
    };
    let mut runs = Vec::new();
    let mut ratios = Vec::new();
    for &rate in &a.rates {
        let args = throughput::Args {
            devices: a.devices,
            rate,
            duration: a.duration,
            warmup: a.warmup,
            payload: a.payload,
            window: a.window,
            sealed: false,
            peer: None,
            peer_addr: None,
        };
        let mut per_rep: Vec<Vec<throughput::Report>> = Vec::new();
        for rep in 0..a.reps {
            let mut this = Vec::new();
            eprintln!("== rate {} rep {}/{}: sirr", rate_name(rate), rep + 1, a.reps);
            let target = Target::obtain(None, spawn.sirrd.clone(), &spawn.config)?;
            this.push(throughput::run(&target, &args).await?);
            drop(target);
            for &p in &a.peers {
                eprintln!(
                    "== rate {} rep {}/{}: {}",
                    rate_name(rate),
                    rep + 1,
                    a.reps,
                    p.name()
                );
                this.push(peer::throughput(p, addr(p), &args).await?);
            }
            for r in &this {
                eprintln!(
                    "   {:<8} delivered {:>8.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
                    r.system, r.delivered_per_s, r.p50_ms, r.p99_ms
                );
            }
            per_rep.push(this);
        }
        for (k, &p) in a.peers.iter().enumerate() {
            let pair = |f: fn(&throughput::Report, &throughput::Report) -> f64| {
                per_rep.iter().map(|r| f(&r[0], &r[k + 1])).collect::<Vec<_>>()
            };
            ratios.push(Ratio {
                offered_rate: rate,
                peer: p.name(),
                delivered: pair(|s, q| s.delivered_per_s / q.delivered_per_s.max(1e-9)),
                p99_lower: pair(|s, q| q.p99_ms / s.p99_ms.max(1e-9)),
            });
        }
        runs.extend(per_rep.into_iter().flatten());
    }

    let mut sign_ups = Vec::new();
    let mut sign_up_ratio = Vec::new();
    if a.register_seconds > 0.0 && a.peers.contains(&Peer::Ejabberd) {
        for rep in 0..a.reps {
            eprintln!("== sign-ups rep {}/{}", rep + 1, a.reps);
            let target = Target::obtain(None, spawn.sirrd.clone(), &spawn.config)?;
            let s = sirr_sign_ups(&target, a).await?;
            drop(target);
            let e = xmpp_sign_ups(a.ejabberd_addr, a).await?;
            eprintln!(
                "   sirr {:.0}/s (p99 {:.1} ms)  ejabberd {:.0}/s (p99 {:.1} ms)",
                s.completed_per_s, s.p99_ms, e.completed_per_s, e.p99_ms
            );
            sign_up_ratio.push(s.completed_per_s / e.completed_per_s.max(1e-9));
            sign_ups.push(s);
            sign_ups.push(e);
        }
    }

    let mut idle = Vec::new();
    if a.idle > 0 {
        eprintln!("== idle sessions: sirr");
        let target = Target::obtain(None, spawn.sirrd.clone(), &spawn.config)?;
        let c = connections::run(
            &target,
            &connections::Args {
                count: a.idle,
                sources: 8,
                hold: 2.0,
            },
        )
        .await?;
        drop(target);
        idle.push(Idle {
            system: "sirr",
            sessions: c.held,
            bytes_per_session: c.bytes_per_connection,
            sessions_per_gib: c.bytes_per_connection.map(|b| (1u64 << 30) as f64 / b),
        });
        if a.peers.contains(&Peer::Ejabberd) {
            eprintln!("== idle sessions: ejabberd");
            idle.push(xmpp_idle(a.ejabberd_addr, a.idle).await?);
        }
    }

    if let Some(path) = &a.plot {
        let mut series = Vec::new();
        for system in std::iter::once("sirr").chain(a.peers.iter().map(|p| p.name())) {
            let of = |rate: Option<f64>| {
                runs.iter()
                    .filter(|r| r.system == system && rate.is_none_or(|x| r.offered_rate == x))
                    .map(|r| (r.delivered_per_s, r.p99_ms))
                    .collect::<Vec<_>>()
            };
            let mut line: Vec<(f64, f64)> = a
                .rates
                .iter()
                .map(|&rate| {
                    let pts = of(Some(rate));
                    (median(pts.iter().map(|p| p.0)), median(pts.iter().map(|p| p.1)))
                })
                .collect();
            line.sort_by(|x, y| x.0.total_cmp(&y.0));
            series.push(plot::Series {
                name: system.to_owned(),
                points: of(None),
                line,
            });
        }
        plot::latency_vs_load(
            path,
            &format!(
                "p99 latency against delivered load ({} clients in pairs, {}-byte payloads)",
                a.devices, a.payload
            ),
            &series,
        )?;
    }
    Ok(Report {
        devices: a.devices,
        payload: a.payload,
        window: a.window,
        runs,
        ratios,
        sign_ups,
        sign_up_ratio,
        idle,
    })
}

pub fn rate_name(rate: f64) -> String {
    if rate > 0.0 {
        format!("{rate:.0}/s")
    } else {
        "max".into()
    }
}

/// Closed-loop sign-ups against a fresh sirrd: `register_clients` clients, each a new connection
/// per sign-up (code request + verification + first device), for `register_seconds`.
async fn sirr_sign_ups(target: &Target, a: &Args) -> anyhow::Result<SignUps> {
    let endpoint = target.endpoint();
    let next = Arc::new(AtomicU64::new(0));
    closed_loop("sirr", a, move |_| {
        let (endpoint, next) = (endpoint.clone(), next.clone());
        async move {
            let phone = surge::phone(&next)?;
            match surge::sign_up(&endpoint, surge::sources()[0], phone, Duration::from_secs(5)).await {
                surge::Outcome::Ok => Ok(()),
                _ => anyhow::bail!("sign-up not completed"),
            }
        }
    })
    .await
}

/// Closed-loop in-band registrations (XEP-0077) against ejabberd, a new connection each.
async fn xmpp_sign_ups(addr: SocketAddr, a: &Args) -> anyhow::Result<SignUps> {
    // Fresh names each run: accounts persist in ejabberd's spool.
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let prefix = format!("s{stamp:x}p{}n", std::process::id());
    closed_loop("ejabberd", a, move |i| {
        let user = format!("{prefix}{i}");
        async move {
            let (mut c, _) = xmpp::Client::connect(addr, None).await?;
            let created = c.register(&user, "bench-password-1").await?;
            c.close().await;
            anyhow::ensure!(created, "account existed");
            Ok(())
        }
    })
    .await
}

async fn closed_loop<F, Fut>(system: &'static str, a: &Args, one: F) -> anyhow::Result<SignUps>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let until = Instant::now() + Duration::from_secs_f64(a.register_seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.register_clients.max(1) {
        let (one, counter, failed) = (one.clone(), counter.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = throughput::histogram();
            let mut done = 0u64;
            while Instant::now() < until {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match one(i).await {
                    Ok(()) => {
                        done += 1;
                        let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (done, hist)
        }));
    }
    let mut hist = throughput::histogram();
    let mut done = 0;
    for t in tasks {
        let (d, h) = t.await?;
        done += d;
        hist.add(h)?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(SignUps {
        system,
        completed_per_s: done as f64 / secs,
        failed: failed.load(Ordering::Relaxed),
        p50_ms: hist.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: hist.value_at_quantile(0.99) as f64 / 1000.0,
        load_average: load_average(),
    })
}

/// Hold `n` idle, logged-in XMPP sessions (SCRAM-SHA-1, bound, available) and measure what they
/// add to ejabberd's resident memory.
async fn xmpp_idle(addr: SocketAddr, n: usize) -> anyhow::Result<Idle> {
    let pid = Peer::Ejabberd.pid();
    // Accounts first, so the baseline is taken after the registrations' garbage settles.
    peer::ensure_xmpp_accounts(addr, n).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = pid.and_then(proc_rss_bytes);
    let resource = format!("idle{}", std::process::id());
    let mut held = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(64) {
        let logins =
            futures_util::future::join_all(chunk.iter().map(|&i| peer::xmpp_login(addr, i, &resource))).await;
        for c in logins {
            held.push(c?);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = pid.and_then(proc_rss_bytes);
    let per = before
        .zip(after)
        .map(|(b, a)| a.saturating_sub(b) as f64 / held.len().max(1) as f64);
    let sessions = held.len();
    futures_util::future::join_all(held.into_iter().map(|c| c.close())).await;
    Ok(Idle {
        system: "ejabberd",
        sessions,
        bytes_per_session: per,
        sessions_per_gib: per.map(|b| (1u64 << 30) as f64 / b),
    })
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut s: Vec<f64> = v.collect();
    if s.is_empty() {
        return 0.0;
    }
    s.sort_by(f64::total_cmp);
    if s.len() % 2 == 1 {
        s[s.len() / 2]
    } else {
        (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
    }
}

/// Median and range of `v`, for printing.
pub fn spread(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.2} [{lo:.2}–{hi:.2}]", median(v.iter().copied()))
}

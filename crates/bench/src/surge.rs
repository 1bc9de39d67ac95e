//! `surge`: sign-ups (code request + verification + first device) at rising offered load, up to
//! several times capacity, then back down. For each step: the server's answers counted (ok,
//! retry-after, error, timeout), the latency of the admitted sign-ups and of the refusals, and
//! the server's memory.
//!
//! The generator is open-loop: sign-ups are scheduled at the offered rate whether or not earlier
//! ones finished, and latency counts from the scheduled time, so a slow server cannot hide its
//! queue by slowing the generator down (no coordinated omission). Each sign-up is what a new
//! phone does: a fresh connection (from one of several loopback source addresses), a code
//! request, a verification, and close. At most `--concurrency` are open at once; a scheduled
//! sign-up that finds none free counts as `generator_limited` (reported, never hidden).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr};

use sirr_proto::*;

use crate::harness::{Endpoint, Target, call, open_ws};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Seconds per load step
    #[arg(long, default_value_t = 5.0)]
    pub step: f64,
    /// Offered load of each step as a multiple of the measured capacity
    #[arg(long, value_delimiter = ',', default_value = "0.5,1,2,5,10,1,0.5")]
    pub multiples: Vec<f64>,
    /// Seconds of closed-loop load used to measure capacity first
    #[arg(long, default_value_t = 5.0)]
    pub calibrate: f64,
    /// Sign-ups in progress at once, at most (each holds a connection)
    #[arg(long, default_value_t = 4000)]
    pub concurrency: usize,
    /// Clients signing up back to back while capacity is measured
    #[arg(long, default_value_t = 128)]
    pub calibrate_clients: usize,
    /// A sign-up not answered within this many milliseconds counts as a timeout
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// Write a plot of the surge over time (SVG) here
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Step {
    pub offered_per_s: f64,
    pub ok_per_s: f64,
    pub ok: u64,
    pub retry_after: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// Scheduled sign-ups the generator could not start (all `--concurrency` slots busy).
    pub generator_limited: u64,
    pub ok_p50_ms: f64,
    pub ok_p99_ms: f64,
    pub refused_p99_ms: f64,
    pub server_rss_mib: Option<f64>,
}

/// One second of the surge (counted by when the answer arrived; `offered` by when scheduled).
#[derive(Serialize, Debug, Clone, Default)]
pub struct Second {
    pub t: u64,
    pub offered: u64,
    pub ok: u64,
    pub retry_after: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub ok_p99_ms: Option<f64>,
    pub server_rss_mib: Option<f64>,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub capacity_per_s: f64,
    pub steps: Vec<Step>,
    pub timeline: Vec<Second>,
}

/// Per-second counts over the whole surge, shared by the sign-up tasks.
struct Timeline {
    origin: Instant,
    seconds: std::sync::Mutex<Vec<(Second, Histogram<u64>)>>,
}

impl Timeline {
    fn with(&self, at: Instant, f: impl FnOnce(&mut Second, &mut Histogram<u64>)) {
        let t = at.saturating_duration_since(self.origin).as_secs() as usize;
        if let Ok(mut v) = self.seconds.lock() {
            while v.len() <= t {
                let s = Second {
                    t: v.len() as u64,
                    ..Second::default()
                };
                v.push((s, crate::throughput::histogram()));
            }
            let (second, hist) = &mut v[t];
            f(second, hist);
        }
    }
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    retry: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
}

struct Hists {
    ok: Histogram<u64>,
    refused: Histogram<u64>,
}

pub enum Outcome {
    Ok,
    Refused,
    Error,
    Timeout,
}

/// One sign-up: connect, request a code, verify with the development code, close.
pub async fn sign_up(target: &Endpoint, source: IpAddr, phone: Phone, timeout: Duration) -> Outcome {
    let work = async {
        let mut ws = open_ws(target, Some(source)).await?;
        let first = call(&mut ws, 1, Request::RequestCode { phone: phone.clone() }).await?;
        let result = match first {
            Err(e) => Err(e),
            Ok(_) => {
                let reg = Request::Register {
                    phone,
                    code: "000000".into(),
                    pin: None,
                };
                call(&mut ws, 2, reg).await?
            }
        };
        let _ = ws.close(None).await;
        anyhow::Ok(result)
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Outcome::Timeout,
        Ok(Ok(Ok(_))) => Outcome::Ok,
        Ok(Ok(Err(e))) if e.retry_after_ms.is_some() => Outcome::Refused,
        Ok(_) => Outcome::Error,
    }
}

pub fn sources() -> Vec<IpAddr> {
    (1..=8).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))).collect()
}

pub async fn run(target: &Target, a: &Args) -> anyhow::Result<Report> {
    let next_number = Arc::new(AtomicU64::new(0));
    let timeout = Duration::from_millis(a.timeout_ms);

    // Capacity: `--calibrate-clients` clients sign up back to back.
    eprintln!("calibrating capacity for {:.0}s ...", a.calibrate);
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(a.calibrate);
    let mut tasks = Vec::new();
    let srcs = sources();
    for i in 0..a.calibrate_clients {
        let (done, next, target, src) = (
            done.clone(),
            next_number.clone(),
            target.endpoint(),
            srcs[i % srcs.len()],
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                if let Ok(p) = phone(&next)
                    && let Outcome::Ok = sign_up(&target, src, p, timeout).await
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let t0 = Instant::now();
    for t in tasks {
        t.await?;
    }
    let capacity = done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    eprintln!("  capacity ≈ {capacity:.0} sign-ups/s");

    let timeline = Arc::new(Timeline {
        origin: Instant::now(),
        seconds: std::sync::Mutex::new(Vec::new()),
    });
    let mut steps = Vec::new();
    for &m in &a.multiples {
        let rate = (capacity * m).max(1.0);
        eprintln!("step: {m}× capacity = {rate:.0} offered/s for {:.0}s", a.step);
        steps.push(
            step(
                target,
                &next_number,
                rate,
                a.step,
                timeout,
                a.concurrency,
                &timeline,
            )
            .await?,
        );
        // Let the last sign-ups finish so steps do not bleed into each other.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let timeline: Vec<Second> = timeline
        .seconds
        .lock()
        .map_err(|_| anyhow::anyhow!("timeline lock poisoned"))?
        .iter()
        .map(|(s, h)| Second {
            ok_p99_ms: (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0),
            ..s.clone()
        })
        .collect();
    if let Some(path) = &a.plot {
        let seconds: Vec<crate::plot::SurgeSecond> = timeline
            .iter()
            .map(|s| crate::plot::SurgeSecond {
                t: s.t as f64,
                offered: s.offered as f64,
                ok: s.ok as f64,
                retry_after: s.retry_after as f64,
                failed: (s.errors + s.timeouts) as f64,
                ok_p99_ms: s.ok_p99_ms,
            })
            .collect();
        let multiples: Vec<String> = a.multiples.iter().map(|m| format!("{m}")).collect();
        crate::plot::surge_timeline(
            path,
            &format!(
                "Sign-up surge: offered {}× capacity ({capacity:.0}/s), {:.0} s steps",
                multiples.join(" → "),
                a.step
            ),
            &seconds,
        )?;
    }
    Ok(Report {
        capacity_per_s: capacity,
        steps,
        timeline,
    })
}

pub fn phone(next: &AtomicU64) -> Result<Phone, PhoneError> {
    Phone::parse(&format!(
        "+1{:010}",
        7_000_000_000 + next.fetch_add(1, Ordering::Relaxed)
    ))
}

async fn step(
    target: &Target,
    next_number: &Arc<AtomicU64>,
    rate: f64,
    seconds: f64,
    timeout: Duration,
    concurrency: usize,
    timeline: &Arc<Timeline>,
) -> anyhow::Result<Step> {
    let counts = Arc::new(Counts::default());
    let hists = Arc::new(std::sync::Mutex::new(Hists {
        ok: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        refused: Histogram::new_with_bounds(1, 600_000_000, 3)?,
    }));
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let srcs = sources();
    let started = Instant::now();
    let total = (rate * seconds) as u64;
    let mut rss_max: Option<u64> = None;
    let mut limited = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let at = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        timeline.with(at, |s, _| s.offered += 1);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            limited += 1;
            continue;
        };
        let (counts, hists, tl, endpoint, src) = (
            counts.clone(),
            hists.clone(),
            timeline.clone(),
            target.endpoint(),
            srcs[i as usize % srcs.len()],
        );
        let Ok(p) = phone(next_number) else { continue };
        tasks.spawn(async move {
            let outcome = sign_up(&endpoint, src, p, timeout).await;
            let us = (at.elapsed().as_micros() as u64).max(1);
            drop(permit);
            tl.with(Instant::now(), |s, h| match &outcome {
                Outcome::Ok => {
                    s.ok += 1;
                    let _ = h.record(us);
                }
                Outcome::Refused => s.retry_after += 1,
                Outcome::Error => s.errors += 1,
                Outcome::Timeout => s.timeouts += 1,
            });
            let c = match outcome {
                Outcome::Ok => {
                    let _ = hists.lock().map(|mut h| h.ok.record(us));
                    &counts.ok
                }
                Outcome::Refused => {
                    let _ = hists.lock().map(|mut h| h.refused.record(us));
                    &counts.retry
                }
                Outcome::Error => &counts.errors,
                Outcome::Timeout => &counts.timeouts,
            };
            c.fetch_add(1, Ordering::Relaxed);
        });
        while tasks.try_join_next().is_some() {}
        if i % 1000 == 0 {
            let rss = target.rss_bytes();
            rss_max = rss_max.max(rss);
            if let Some(b) = rss {
                timeline.with(at, |s, _| s.server_rss_mib = Some(b as f64 / 1048576.0));
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let h = hists
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock poisoned"))?;
    let ms = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let ok = counts.ok.load(Ordering::Relaxed);
    Ok(Step {
        offered_per_s: rate,
        ok_per_s: ok as f64 / elapsed,
        ok,
        retry_after: counts.retry.load(Ordering::Relaxed),
        errors: counts.errors.load(Ordering::Relaxed),
        timeouts: counts.timeouts.load(Ordering::Relaxed),
        generator_limited: limited,
        ok_p50_ms: ms(&h.ok, 0.5),
        ok_p99_ms: ms(&h.ok, 0.99),
        refused_p99_ms: ms(&h.refused, 0.99),
        server_rss_mib: rss_max.map(|b| b as f64 / 1048576.0),
    })
}

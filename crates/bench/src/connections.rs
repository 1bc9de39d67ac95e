//! `connections`: how many idle authenticated connections the server holds, and its memory per
//! connection. Connections come from several loopback source addresses, so the count is not
//! capped by one address's ephemeral ports (~28,000 on Linux by default).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use sirr_proto::*;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Target, Ws, open_session, register_many};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Idle authenticated connections to open
    #[arg(long, default_value_t = 100_000)]
    pub count: usize,
    /// Loopback source addresses to spread them over (127.0.0.1, 127.0.0.2, ...)
    #[arg(long, default_value_t = 8)]
    pub sources: u8,
    /// Seconds to hold them before checking they are all alive
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub requested: usize,
    pub held: usize,
    pub failed: usize,
    pub registrations_per_s: f64,
    pub connects_per_s: f64,
    pub rss_before_bytes: Option<u64>,
    pub rss_after_bytes: Option<u64>,
    pub bytes_per_connection: Option<f64>,
    pub connections_per_gib: Option<f64>,
    pub alive_after_hold: usize,
}

pub async fn run(target: &Target, a: &Args) -> anyhow::Result<Report> {
    eprintln!("registering {} devices ...", a.count);
    let (devices, reg_rate) = register_many(&target.url, a.count, 5_560_000_000, 64).await?;
    eprintln!("  {reg_rate:.0} registrations/s");
    // Let the registration burst settle before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = target.rss_bytes();
    let started = Instant::now();
    let mut held: Vec<Ws> = Vec::with_capacity(a.count);
    let mut failed = 0;
    let sources: Vec<IpAddr> = (1..=a.sources.max(1))
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect();
    for (c, chunk) in devices.chunks(512).enumerate() {
        let opened = futures_util::future::join_all(
            chunk
                .iter()
                .enumerate()
                .map(|(i, d)| open_session(target, Some(sources[(c * 512 + i) % sources.len()]), d)),
        )
        .await;
        for s in opened {
            match s {
                Ok(ws) => held.push(ws),
                Err(e) => {
                    if failed == 0 {
                        eprintln!("  first failure: {e}");
                    }
                    failed += 1;
                }
            }
        }
        if c % 20 == 19 {
            eprintln!("  {} open", held.len());
        }
    }
    let connects_per_s = held.len() as f64 / started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    let rss_after = target.rss_bytes();
    // Every held connection must still answer.
    let mut alive = 0;
    for chunk in held.chunks_mut(1024) {
        let pings = chunk.iter_mut().map(|ws| async move {
            let ping = ClientFrame::Request {
                id: 99,
                body: Request::Ping,
            };
            ws.send(Message::Binary(encode(&ping).into())).await.ok()?;
            loop {
                match tokio::time::timeout(Duration::from_secs(10), ws.next())
                    .await
                    .ok()??
                {
                    Ok(Message::Binary(b)) => {
                        if let Ok(ServerFrame::Response {
                            id: 99,
                            result: Ok(Response::Pong),
                        }) = decode_server_frame(&b, 1 << 20)
                        {
                            return Some(());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
        });
        alive += futures_util::future::join_all(pings)
            .await
            .iter()
            .filter(|r| r.is_some())
            .count();
    }
    let per = rss_before
        .zip(rss_after)
        .map(|(b, a)| (a.saturating_sub(b)) as f64 / held.len().max(1) as f64);
    Ok(Report {
        requested: a.count,
        held: held.len(),
        failed,
        registrations_per_s: reg_rate,
        connects_per_s,
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_after,
        bytes_per_connection: per,
        connections_per_gib: rss_after.map(|r| held.len() as f64 / (r as f64 / (1u64 << 30) as f64)),
        alive_after_hold: alive,
    })
}

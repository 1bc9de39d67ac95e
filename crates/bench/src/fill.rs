//! `fill`: sends COUNT texts from a registered CLI home to a number, as fast as the server
//! accepts them, so that a client's receiving and rendering can be measured on a known backlog
//! (the web client's benchmarks in `web/e2e/bench.mjs` use it). Each text is `PREFIX N` with N
//! from 1, so the receiver can tell when the last one arrived.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sirr_client::{Client, ClientError};
use sirr_proto::{ErrorCode, Phone};

#[derive(clap::Args)]
pub struct Args {
    /// The sender's CLI home directory (registered with `sirr register`)
    #[arg(long)]
    pub home: PathBuf,
    /// The recipient's number (E.164)
    #[arg(long)]
    pub to: String,
    /// How many texts
    #[arg(long, default_value_t = 1_000)]
    pub count: u32,
    /// Each text is this, a space and its number
    #[arg(long, default_value = "fill")]
    pub prefix: String,
}

#[derive(Serialize)]
pub struct Report {
    pub sent: u32,
    /// Sends the server refused as too fast, then sent again after its `retry_after`.
    pub retries: u32,
    pub seconds: f64,
    pub per_s: f64,
}

pub async fn run(a: &Args) -> anyhow::Result<Report> {
    let to = Phone::parse(&a.to).context("--to")?;
    let mut client = Client::open(&a.home).await?;
    client.connect().await?;
    let started = Instant::now();
    let mut retries = 0u32;
    for n in 1..=a.count {
        let text = format!("{} {n}", a.prefix);
        loop {
            match client.send_text(&to, &text).await {
                Ok(_) => break,
                // Refused before anything was stored: wait as asked and send it again.
                Err(e) if matches!(e.code(), Some(ErrorCode::RateLimited | ErrorCode::Overloaded)) => {
                    retries += 1;
                    let ms = match &e {
                        ClientError::Server(body) => body.retry_after_ms.unwrap_or(100),
                        _ => 100,
                    };
                    tokio::time::sleep(Duration::from_millis(u64::from(ms.max(1)))).await;
                }
                Err(e) => return Err(e).with_context(|| format!("text {n}")),
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    client.disconnect().await;
    Ok(Report {
        sent: a.count,
        retries,
        seconds,
        per_s: f64::from(a.count) / seconds,
    })
}

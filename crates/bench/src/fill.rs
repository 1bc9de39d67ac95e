//! `fill`: sends COUNT texts from a registered CLI home to a number, as fast as the server
//! accepts them, so that a client's receiving and rendering can be measured on a known backlog
//! (the web client's benchmarks in `web/e2e/bench.mjs` use it). Each text is `PREFIX N` with N
//! from 1, so the receiver can tell when the last one arrived.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use sirr_client::Client;
use sirr_proto::Phone;

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
    pub seconds: f64,
    pub per_s: f64,
}

pub async fn run(a: &Args) -> anyhow::Result<Report> {
    let to = Phone::parse(&a.to).context("--to")?;
    let mut client = Client::open(&a.home).await?;
    client.connect().await?;
    let started = Instant::now();
    for n in 1..=a.count {
        client
            .send_text(&to, &format!("{} {n}", a.prefix))
            .await
            .with_context(|| format!("text {n}"))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    client.disconnect().await;
    Ok(Report {
        sent: a.count,
        seconds,
        per_s: f64::from(a.count) / seconds,
    })
}

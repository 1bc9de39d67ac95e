//! `sirr-bench`: load generator and benchmark scenarios against `sirrd`.
//!
//! Each scenario is one command, bounded in time, printing a table to stdout and (with `--json`)
//! writing its figures as JSON. By default it spawns its own `sirrd` (found next to this binary)
//! with durable storage and limits raised so they do not cap the measurement; `--server URL`
//! measures a server you started yourself (then memory and CPU figures are not available).

mod connections;
mod harness;
mod surge;
mod throughput;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sirr-bench", version, about = "Benchmarks for sirrd")]
struct Cli {
    /// Measure this server instead of spawning one (http://IP:PORT)
    #[arg(long, global = true)]
    server: Option<String>,
    /// The sirrd binary to spawn [default: the one next to sirr-bench]
    #[arg(long, global = true)]
    sirrd: Option<PathBuf>,
    /// Also write the figures to this JSON file
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Extra TOML appended to the spawned server's configuration
    #[arg(long, global = true, default_value = "")]
    server_config: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Devices in one-to-one pairs: delivered messages/s and latency percentiles
    Throughput(throughput::Args),
    /// Idle authenticated connections held, and server memory per connection
    Connections(connections::Args),
    /// Sign-ups at rising offered load up to 10x capacity: admitted, shed, errors, latency
    Surge(surge::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let target = harness::Target::obtain(cli.server.clone(), cli.sirrd.clone(), &cli.server_config)?;
        let json = match &cli.scenario {
            Scenario::Throughput(a) => {
                let r = throughput::run(&target, a).await?;
                println!("| devices | offered/s | delivered/s | sent/s | p50 ms | p99 ms | p99.9 ms | max ms | overloaded | server CPU s | bench CPU s |");
                println!("|---|---|---|---|---|---|---|---|---|---|---|");
                println!(
                    "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} |",
                    r.devices,
                    if r.offered_rate > 0.0 { format!("{:.0}", r.offered_rate) } else { "max".into() },
                    r.delivered_per_s,
                    r.sent_per_s,
                    r.p50_ms,
                    r.p99_ms,
                    r.p999_ms,
                    r.max_ms,
                    r.overloaded,
                    r.server_cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
                    r.bench_cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
                );
                serde_json::to_value(&r)?
            }
            Scenario::Connections(a) => {
                let r = connections::run(&target, a).await?;
                let mib = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.0}", b as f64 / 1048576.0));
                println!("| held | failed | alive after hold | RSS before MiB | RSS after MiB | bytes/conn | conns/GiB | connects/s |");
                println!("|---|---|---|---|---|---|---|---|");
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {:.0} |",
                    r.held,
                    r.failed,
                    r.alive_after_hold,
                    mib(r.rss_before_bytes),
                    mib(r.rss_after_bytes),
                    r.bytes_per_connection.map_or("-".into(), |b| format!("{b:.0}")),
                    r.connections_per_gib.map_or("-".into(), |c| format!("{c:.0}")),
                    r.connects_per_s,
                );
                serde_json::to_value(&r)?
            }
            Scenario::Surge(a) => {
                let r = surge::run(&target, a).await?;
                println!("capacity: {:.0} sign-ups/s (code request + verification + first device)", r.capacity_per_s);
                println!("| offered/s | ok/s | ok | retry-after | errors | timeouts | not started | ok p50 ms | ok p99 ms | refusal p99 ms | server RSS MiB |");
                println!("|---|---|---|---|---|---|---|---|---|---|---|");
                for s in &r.steps {
                    println!(
                        "| {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} |",
                        s.offered_per_s,
                        s.ok_per_s,
                        s.ok,
                        s.retry_after,
                        s.errors,
                        s.timeouts,
                        s.generator_limited,
                        s.ok_p50_ms,
                        s.ok_p99_ms,
                        s.refused_p99_ms,
                        s.server_rss_mib.map_or("-".into(), |m| format!("{m:.0}")),
                    );
                }
                serde_json::to_value(&r)?
            }
        };
        if let Some(path) = &cli.json {
            std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
        }
        anyhow::Ok(())
    })
}

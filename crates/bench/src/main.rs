//! `sirr-bench`: load generator and benchmark scenarios against `sirrd`.
//!
//! Each scenario is one command, bounded in time, printing a table to stdout and (with `--json`)
//! writing its figures as JSON. By default it spawns its own `sirrd` (found next to this binary)
//! with durable storage and limits raised so they do not cap the measurement; `--server URL`
//! measures a server you started yourself (then memory and CPU figures are not available).

mod compare;
mod connections;
mod fill;
mod groups;
mod harness;
mod peer;
mod plot;
mod resp;
mod sealed;
mod soak;
mod surge;
mod throughput;
mod xmpp;

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
    /// Devices in one-to-one pairs: delivered messages/s and latency percentiles (Sirr, or a peer
    /// with --peer)
    Throughput(throughput::Args),
    /// Idle authenticated connections held, and server memory per connection
    Connections(connections::Args),
    /// Sign-ups at rising offered load up to 10x capacity: admitted, shed, errors, latency
    Surge(surge::Args),
    /// Sirr, ejabberd and Redis side by side, alternating runs: throughput and latency ratios,
    /// sign-ups, idle session memory
    Compare(compare::Args),
    /// Fan-out to groups of 10, 100 and 1,000 members: copies/s, latency to the last member
    Groups(groups::Args),
    /// Mixed load (connect, send, drop, reconnect, sign up), then checks that every
    /// acknowledged message arrived exactly once; exits non-zero otherwise
    Soak(soak::Args),
    /// Send a backlog of texts from a CLI home to a number (for client-side benchmarks)
    Fill(fill::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let work = async {
        // Spawned (or reached) only by the scenarios that measure Sirr alone.
        let target = || harness::Target::obtain(cli.server.clone(), cli.sirrd.clone(), &cli.server_config);
        let mut failed = false;
        let json = match &cli.scenario {
            Scenario::Throughput(a) => {
                let r = match a.peer {
                    Some(p) => peer::throughput(p, a.peer_addr.unwrap_or(p.default_addr()), a).await?,
                    None if a.sealed => sealed::run(&target()?, a).await?,
                    None => throughput::run(&target()?, a).await?,
                };
                println!(
                    "| system | devices | offered/s | delivered/s | sent/s | p50 ms | p99 ms | p99.9 ms | max ms | overloaded | server CPU s | bench CPU s | load |"
                );
                println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
                println!(
                    "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} | {} | {} | {} |",
                    r.system,
                    r.devices,
                    if r.offered_rate > 0.0 {
                        format!("{:.0}", r.offered_rate)
                    } else {
                        "max".into()
                    },
                    r.delivered_per_s,
                    r.sent_per_s,
                    r.p50_ms,
                    r.p99_ms,
                    r.p999_ms,
                    r.max_ms,
                    r.overloaded,
                    r.server_cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
                    r.bench_cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
                    load(r.load_average),
                );
                serde_json::to_value(&r)?
            }
            Scenario::Connections(a) => {
                let r = connections::run(&target()?, a).await?;
                let mib = |b: Option<u64>| b.map_or("-".into(), |b| format!("{:.0}", b as f64 / 1048576.0));
                println!(
                    "| held | failed | alive after hold | RSS before MiB | RSS after MiB | bytes/conn | conns/GiB | connects/s |"
                );
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
                let r = surge::run(&target()?, a).await?;
                println!(
                    "capacity: {:.0} sign-ups/s (code request + verification + first device)",
                    r.capacity_per_s
                );
                println!(
                    "| offered/s | ok/s | ok | retry-after | errors | timeouts | not started | ok p50 ms | ok p99 ms | refusal p99 ms | server RSS MiB |"
                );
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
            Scenario::Groups(a) => {
                let r = groups::run(&target()?, a).await?;
                println!(
                    "| members | messages/s | copies/s | copy p50 ms | copy p99 ms | last member p50 ms | last member p99 ms | incomplete | server CPU s | bench CPU s | written B/copy | disk MiB | load |"
                );
                println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
                for s in &r.sizes {
                    println!(
                        "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} |",
                        s.members,
                        s.messages_per_s,
                        s.copies_per_s,
                        s.copy_p50_ms,
                        s.copy_p99_ms,
                        s.last_member_p50_ms,
                        s.last_member_p99_ms,
                        s.incomplete,
                        s.server_cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
                        s.bench_cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
                        s.write_bytes_per_copy.map_or("-".into(), |b| format!("{b:.0}")),
                        s.disk_bytes
                            .map_or("-".into(), |b| format!("{:.1}", b as f64 / (1 << 20) as f64)),
                        load(s.load_average),
                    );
                }
                serde_json::to_value(&r)?
            }
            Scenario::Fill(a) => {
                let r = fill::run(a).await?;
                println!(
                    "sent {} texts in {:.1} s ({:.0}/s; {} sent again after the server asked to slow down)",
                    r.sent, r.seconds, r.per_s, r.retries
                );
                serde_json::to_value(&r)?
            }
            Scenario::Soak(a) => {
                let r = soak::run(&target()?, a).await?;
                println!(
                    "| devices | seconds | sessions | sign-ups | acknowledged | delivered | lost | duplicated after ack | redelivered before ack | delivered unacknowledged | send errors | connect errors | drain failures | result |"
                );
                println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
                println!(
                    "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.devices,
                    r.seconds,
                    r.sessions,
                    r.sign_ups,
                    r.acknowledged,
                    r.delivered,
                    r.lost,
                    r.duplicated_after_ack,
                    r.redelivered_before_ack,
                    r.delivered_unacknowledged,
                    r.send_errors,
                    r.connect_errors,
                    r.drain_failures,
                    if r.passed { "pass" } else { "FAIL" },
                );
                failed = !r.passed;
                serde_json::to_value(&r)?
            }
            Scenario::Compare(a) => {
                let spawn = compare::Spawn {
                    sirrd: cli.sirrd.clone(),
                    config: cli.server_config.clone(),
                };
                let r = compare::run(&spawn, a).await?;
                println!(
                    "{} clients in pairs, {}-byte payloads, window {}; runs alternate systems",
                    r.devices, r.payload, r.window
                );
                println!(
                    "| offered/s | system | delivered/s | p50 ms | p99 ms | p99.9 ms | server CPU s | bench CPU s | load |"
                );
                println!("|---|---|---|---|---|---|---|---|---|");
                for x in &r.runs {
                    println!(
                        "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                        compare::rate_name(x.offered_rate),
                        x.system,
                        x.delivered_per_s,
                        x.p50_ms,
                        x.p99_ms,
                        x.p999_ms,
                        x.server_cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
                        x.bench_cpu_s.map_or("-".into(), |c| format!("{c:.1}")),
                        load(x.load_average),
                    );
                }
                println!();
                println!(
                    "| offered/s | peer | delivered Sirr/peer, median [min–max] | p99 peer/Sirr (× lower), median [min–max] |"
                );
                println!("|---|---|---|---|");
                for q in &r.ratios {
                    println!(
                        "| {} | {} | {} | {} |",
                        compare::rate_name(q.offered_rate),
                        q.peer,
                        compare::spread(&q.delivered),
                        compare::spread(&q.p99_lower),
                    );
                }
                if !r.sign_ups.is_empty() {
                    println!();
                    println!("| system | sign-ups/s | failed | p50 ms | p99 ms | load |");
                    println!("|---|---|---|---|---|---|");
                    for s in &r.sign_ups {
                        println!(
                            "| {} | {:.0} | {} | {:.1} | {:.1} | {} |",
                            s.system,
                            s.completed_per_s,
                            s.failed,
                            s.p50_ms,
                            s.p99_ms,
                            load(s.load_average)
                        );
                    }
                    println!("sign-ups Sirr/ejabberd: {}", compare::spread(&r.sign_up_ratio));
                }
                if !r.idle.is_empty() {
                    println!();
                    println!("| system | idle sessions | bytes/session | sessions/GiB |");
                    println!("|---|---|---|---|");
                    for i in &r.idle {
                        println!(
                            "| {} | {} | {} | {} |",
                            i.system,
                            i.sessions,
                            i.bytes_per_session.map_or("-".into(), |b| format!("{b:.0}")),
                            i.sessions_per_gib.map_or("-".into(), |b| format!("{b:.0}")),
                        );
                    }
                }
                serde_json::to_value(&r)?
            }
        };
        if let Some(path) = &cli.json {
            std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
        }
        if failed {
            anyhow::bail!("soak check failed: see the table above");
        }
        anyhow::Ok(())
    };
    runtime.block_on(async {
        // On SIGTERM or Ctrl-C the scenario is dropped, and with it the sirrd it spawned.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = work => r,
            _ = term.recv() => anyhow::bail!("terminated"),
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        }
    })
}

/// The machine's 1-minute load average, as printed beside every run.
fn load(l: Option<[f64; 3]>) -> String {
    l.map_or("-".into(), |l| format!("{:.2}", l[0]))
}

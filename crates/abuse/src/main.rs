//! `sirr-abuse`: simulate traffic, train the model, replay a log, measure the engine.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sirr_abuse::eval::{self, Figures};
use sirr_abuse::sim::{self, Kind, Labels, SimConfig, Variant};
use sirr_abuse::{Engine, EngineConfig, Event, EventReader, Model};

#[derive(Parser)]
#[command(
    name = "sirr-abuse",
    about = "Sirr's metadata-only abuse engine: simulate, train, replay, eval"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a simulated population: DIR/events.jsonl (sorted by t) and DIR/labels.json.
    Simulate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        population: Population,
    },
    /// Fit the model on simulated traffic of the given seeds and write it as JSON.
    Train {
        /// Comma-separated training seeds, e.g. 1,2,3,4,5.
        #[arg(long, value_delimiter = ',', required = true)]
        seeds: Vec<u64>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        population: Population,
    },
    /// Print one decision per line as JSON, in time order: what the online engine decides.
    Replay {
        #[arg(long)]
        events: PathBuf,
        /// Engine configuration (JSON, same fields as the server's `[abuse]` table).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print the goal figures of the engine on a labelled log.
    Eval {
        #[arg(long)]
        events: PathBuf,
        #[arg(long)]
        labels: PathBuf,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Sweep the ban threshold and write reach and false-positive plots (SVG) into this folder.
        #[arg(long)]
        sweep: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct Population {
    /// Ordinary accounts.
    #[arg(long, default_value_t = 3000)]
    accounts: usize,
    #[arg(long, default_value_t = 3)]
    days: u32,
    /// `shifted` draws every behaviour from other ranges (never used for training).
    #[arg(long, value_enum, default_value = "standard")]
    variant: VariantArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum VariantArg {
    Standard,
    Shifted,
}

impl Population {
    fn config(&self, seed: u64) -> SimConfig {
        let variant = match self.variant {
            VariantArg::Standard => Variant::Standard,
            VariantArg::Shifted => Variant::Shifted,
        };
        SimConfig {
            seed,
            accounts: self.accounts,
            days: self.days,
            variant,
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sirr-abuse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate {
            out,
            seed,
            population,
        } => simulate(&out, &population.config(seed)),
        Command::Train {
            seeds,
            out,
            population,
        } => train(&seeds, &out, &population),
        Command::Replay { events, config } => replay(&events, &load_config(config.as_deref())?),
        Command::Eval {
            events,
            labels,
            json,
            config,
            sweep,
        } => evaluate(
            &events,
            &labels,
            json.as_deref(),
            &load_config(config.as_deref())?,
            sweep.as_deref(),
        ),
    }
}

fn load_config(path: Option<&Path>) -> Result<EngineConfig> {
    let Some(path) = path else {
        return Ok(EngineConfig::default());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not an engine configuration", path.display()))
}

fn simulate(out: &Path, cfg: &SimConfig) -> Result<()> {
    let pop = sim::simulate(cfg);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("events.jsonl");
    let mut w = BufWriter::new(File::create(&path).with_context(|| format!("creating {}", path.display()))?);
    for e in &pop.events {
        writeln!(w, "{}", e.to_json())?;
    }
    w.flush()?;
    let labels = out.join("labels.json");
    std::fs::write(&labels, serde_json::to_string_pretty(&pop.labels)?)
        .with_context(|| format!("writing {}", labels.display()))?;
    eprintln!(
        "{} events, {} accounts -> {}",
        pop.events.len(),
        pop.labels.len(),
        out.display()
    );
    Ok(())
}

/// Abusers' accounts weigh this much more than ordinary ones in training.
const ABUSER_WEIGHT: f64 = 3.0;
/// Only an abuser's first scorings are learned from: detecting it early is what matters, and
/// its later scorings (after it has reached many people) are easy and would drown them.
const ABUSER_EARLY_SCORINGS: usize = 40;
/// Hard ordinary cases weigh this much more than other ordinary accounts.
const HARD_WEIGHT: f64 = 5.0;

/// Feature vectors of every scoring on the given seeds, labelled and weighted so that every
/// account has the same total weight (times [`ABUSER_WEIGHT`] or [`HARD_WEIGHT`]) however
/// often it was scored: the model then sees roughly the real mix of accounts, not of events.
fn samples(
    seeds: &[u64],
    population: &Population,
    model: &Model,
) -> Result<Vec<([f32; sirr_abuse::N_FEATURES], bool, f64)>> {
    // Record, but never act: every account is scored all the way through.
    let observe_only = EngineConfig {
        throttle_at: 2.0,
        challenge_at: 2.0,
        ban_at: 2.0,
        rules_enabled: false,
        ..EngineConfig::default()
    };
    let mut out = Vec::new();
    for &seed in seeds {
        let pop = sim::simulate(&population.config(seed));
        let mut engine = Engine::with_model(observe_only.clone(), model.clone())?;
        engine.record_features();
        for e in &pop.events {
            engine.observe(e).for_each(drop);
        }
        let recorded = engine.take_features();
        let kind_of = |account: &str| pop.labels.get(account).map_or(Kind::Ordinary, |l| l.kind);
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let recorded: Vec<_> = recorded
            .iter()
            .filter(|(account, _, _)| {
                let n = seen.entry(account.as_str()).or_default();
                *n += 1;
                !kind_of(account).is_abuser() || *n <= ABUSER_EARLY_SCORINGS
            })
            .collect();
        let mut per_account: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (account, _, _) in &recorded {
            *per_account.entry(account.as_str()).or_default() += 1;
        }
        for (account, _, x) in &recorded {
            let kind = kind_of(account);
            let factor = if kind.is_abuser() {
                ABUSER_WEIGHT
            } else if kind.is_hard() {
                HARD_WEIGHT
            } else {
                1.0
            };
            out.push((
                *x,
                kind.is_abuser(),
                factor / per_account[account.as_str()] as f64,
            ));
        }
    }
    Ok(out)
}

fn train(seeds: &[u64], out: &Path, population: &Population) -> Result<()> {
    // Start from a fixed model, never from the shipped one: training is then reproducible.
    let mut model = Model::untrained();
    let what = format!(
        "seeds {:?}, {} ordinary accounts, {} days, two passes",
        seeds, population.accounts, population.days
    );
    // Pass one weighs reports by the reporters' age only; pass two also by the score pass one gives
    // them.
    for pass in 1..=2 {
        let started = Instant::now();
        let data = samples(seeds, population, &model)?;
        model = Model::fit(&data, 1e-3, what.clone());
        eprintln!(
            "pass {pass}: {} samples, {:.1}s",
            data.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let mut text = serde_json::to_string_pretty(&model)?;
    text.push('\n');
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    for (name, w) in model.features.iter().zip(&model.weights) {
        eprintln!("{name:<28} {w:>8.3}");
    }
    Ok(())
}

fn open(path: &Path) -> Result<BufReader<File>> {
    Ok(BufReader::new(
        File::open(path).with_context(|| format!("opening {}", path.display()))?,
    ))
}

fn replay(events: &Path, config: &EngineConfig) -> Result<()> {
    let mut engine = Engine::new(config.clone())?;
    let stdout = std::io::stdout();
    let mut w = BufWriter::new(stdout.lock());
    for event in EventReader::new(open(events)?) {
        let event = event.with_context(|| events.display().to_string())?;
        for d in engine.observe(&event) {
            serde_json::to_writer(&mut w, &d)?;
            w.write_all(b"\n")?;
        }
    }
    w.flush()?;
    Ok(())
}

fn read_all(reader: impl BufRead, path: &Path) -> Result<Vec<Event>> {
    EventReader::new(reader)
        .map(|e| e.with_context(|| path.display().to_string()))
        .collect()
}

fn evaluate(
    events: &Path,
    labels: &Path,
    json: Option<&Path>,
    config: &EngineConfig,
    sweep: Option<&Path>,
) -> Result<()> {
    let parse_start = Instant::now();
    let log = read_all(open(events)?, events)?;
    let parse_s = parse_start.elapsed().as_secs_f64();
    let labels: Labels =
        serde_json::from_reader(open(labels)?).with_context(|| format!("reading {}", labels.display()))?;
    // Engine alone, on one core, best of three.
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let mut engine = Engine::new(config.clone())?;
        let started = Instant::now();
        let mut n = 0usize;
        for e in &log {
            n += engine.observe(e).count();
        }
        std::hint::black_box(n);
        best = best.min(started.elapsed().as_secs_f64());
    }
    let eps = log.len() as f64 / best;
    let figures = eval::evaluate(&log, &labels, Engine::new(config.clone())?).with_speed(eps);
    print!("{}", figures.table());
    println!(
        "engine: {:.2} M events/s; parsing JSON lines: {:.2} M events/s; {} accounts in state",
        eps / 1e6,
        log.len() as f64 / parse_s / 1e6,
        labels.len()
    );
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = sweep {
        sweep_plots(&log, &labels, config, dir)?;
    }
    Ok(())
}

fn sweep_plots(log: &[Event], labels: &Labels, config: &EngineConfig, dir: &Path) -> Result<()> {
    use plotters::prelude::*;
    if !labels.values().any(|l| l.kind.is_abuser()) {
        bail!("the labels name no abusive account");
    }
    std::fs::create_dir_all(dir)?;
    let thresholds = [
        0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999,
    ];
    let mut rows: Vec<(f64, Figures)> = Vec::new();
    for &th in &thresholds {
        let cfg = EngineConfig {
            ban_at: th,
            challenge_at: config.challenge_at.min(th),
            throttle_at: config.throttle_at.min(th),
            ..config.clone()
        };
        let f = eval::evaluate(log, labels, Engine::new(cfg)?);
        println!(
            "ban_at {th:<6} banned {:>6.2}%  reach p50 {:>4.0} p90 {:>4.0}  ordinary banned {:>6.3}%  hard banned {}",
            f.abusers_banned_pct, f.reach_median, f.reach_p90, f.ordinary_banned_pct, f.hard_banned
        );
        rows.push((th, f));
    }
    let reach_path = dir.join("reach_vs_threshold.svg");
    {
        let root = SVGBackend::new(&reach_path, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let top = rows.iter().map(|(_, f)| f.reach_p90).fold(60.0f64, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Strangers reached before ban vs ban threshold",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(0.5f64..1.0f64, 0f64..top)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("ban_at")
            .y_desc("strangers")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for (name, color, pick) in [
            (
                "median",
                BLUE,
                (|f: &Figures| f.reach_median) as fn(&Figures) -> f64,
            ),
            ("p90", RED, |f: &Figures| f.reach_p90),
        ] {
            let pts: Vec<(f64, f64)> = rows.iter().map(|(t, f)| (*t, pick(f))).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color))
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let fp_path = dir.join("false_positives_vs_threshold.svg");
    {
        let root = SVGBackend::new(&fp_path, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let top = rows
            .iter()
            .map(|(_, f)| f.ordinary_banned_pct)
            .fold(0.1f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Ordinary accounts banned (%) vs ban threshold",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5f64..1.0f64, 0f64..top)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .x_desc("ban_at")
            .y_desc("% ordinary banned")
            .draw()
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let pts: Vec<(f64, f64)> = rows.iter().map(|(t, f)| (*t, f.ordinary_banned_pct)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), RED))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label("ordinary banned %");
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, RED.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let goal = vec![(0.5, 0.05), (1.0, 0.05)];
        chart
            .draw_series(LineSeries::new(goal, BLACK.stroke_width(1)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label("goal 0.05%");
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    eprintln!("plots: {}, {}", reach_path.display(), fp_path.display());
    Ok(())
}

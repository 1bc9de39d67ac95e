//! `sirrd`: run the Sirr server.

use clap::Parser;
use sirr_server::config::{Config, Flags, LogFormat};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "sirrd",
    version,
    about = "The Sirr server: end-to-end encrypted messaging relay"
)]
struct Cli {
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Operator commands; each disclosure is recorded in the account's ledger
    #[command(subcommand)]
    Admin(Admin),
    /// Print what this server keeps about people, from its privacy manifest
    PrivacyPolicy {
        /// markdown, html, or transparency (what could be handed over if compelled)
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "html", "transparency"])]
        format: String,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("sirrd: error: {e:#}");
        std::process::exit(1);
    }
}

#[derive(clap::Subcommand)]
enum Admin {
    /// Show what can be produced about the account of a number (recorded in its ledger first)
    Lookup {
        phone: String,
        /// Why (a legal request's reference, ...): recorded for the account to see
        #[arg(long)]
        reason: String,
    },
    /// Review the abuse engine's decisions: list, show ACCOUNT|+E164, unban ACCOUNT|+E164
    #[command(subcommand)]
    Abuse(AbuseAdmin),
}

#[derive(clap::Subcommand)]
enum AbuseAdmin {
    /// Accounts that are throttled, challenged or banned, with the reasons
    List,
    /// One account's decisions, appeals and metadata (recorded in its ledger)
    Show { account: String },
    /// Lift the decision about an account
    Unban {
        account: String,
        #[arg(long)]
        reason: String,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Admin(Admin::Lookup { phone, reason })) = &cli.command {
        let phone = sirr_proto::Phone::parse(phone)?;
        let data = cli.flags.data.clone().unwrap_or_else(|| "sirr-data".into());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        print!(
            "{}",
            runtime.block_on(sirr_server::admin::lookup(&data, &phone, reason))?
        );
        return Ok(());
    }
    if let Some(Command::Admin(Admin::Abuse(cmd))) = &cli.command {
        let data = cli.flags.data.clone().unwrap_or_else(|| "sirr-data".into());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let out = runtime.block_on(async {
            match cmd {
                AbuseAdmin::List => sirr_server::admin::abuse_list(&data).await,
                AbuseAdmin::Show { account } => sirr_server::admin::abuse_show(&data, account).await,
                AbuseAdmin::Unban { account, reason } => {
                    sirr_server::admin::abuse_unban(&data, account, reason).await
                }
            }
        })?;
        print!("{out}");
        return Ok(());
    }
    if let Some(Command::PrivacyPolicy { format }) = &cli.command {
        let m = sirr_server::privacy::Manifest::load()?;
        let page = match format.as_str() {
            "html" => m.html(),
            "transparency" => m.transparency(),
            _ => m.markdown(),
        };
        print!("{page}");
        return Ok(());
    }
    let config = Config::load(&cli.flags)?;
    let filter = EnvFilter::try_from_env("SIRR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(sirr_server::run(config, shutdown_signal()))?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

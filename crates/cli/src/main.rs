//! `sirr`: the scriptable command-line client.
//!
//! Output is stable for scripts: `--json` prints one JSON object per line; human output goes to
//! stdout, diagnostics to stderr, and any failure exits non-zero with a one-line reason.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sirr_client::state::State;
use sirr_client::{Chat, Client, Platform};
use sirr_proto::{DeviceId, Phone, Purpose};

#[derive(Parser)]
#[command(
    name = "sirr",
    version,
    about = "Sirr: private messaging from the command line"
)]
struct Cli {
    /// This device's home directory (credentials, local messages)
    #[arg(long, global = true, env = "SIRR_HOME")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register this home directory as a phone number's device. If the number already has an
    /// account, it starts anew with this device: the old devices are signed out and contacts
    /// see a new safety number (with the account's registration lock on, that needs its PIN).
    Register {
        /// Server base URL, e.g. http://127.0.0.1:7700
        #[arg(long)]
        server: String,
        /// Phone number in E.164 form, e.g. +15550000001
        #[arg(long)]
        phone: String,
        /// Verification code; without it a code is requested (and asked for on a terminal)
        #[arg(long)]
        code: Option<String>,
        /// The registration-lock PIN of the number's account, if it has one (or set
        /// `$SIRR_PIN`, which other users of this machine cannot see in the process list)
        #[arg(long)]
        pin: Option<String>,
        /// A name for this device
        #[arg(long, default_value = "sirr-cli")]
        name: String,
        /// PEM file of the CA that signed the server's certificate (private deployments)
        #[arg(long)]
        ca_cert: Option<PathBuf>,
    },
    /// Send a text message
    Send {
        /// Recipient phone number (E.164)
        to: String,
        /// The message
        text: String,
    },
    /// Print messages that arrived since the last recv
    Recv {
        /// Wait up to this many seconds for a first message
        #[arg(long, default_value_t = 0.0)]
        wait: f64,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Show this device's identity
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// List this account's devices (same as `device list`)
    Devices {
        #[arg(long)]
        json: bool,
    },
    /// Manage this account's devices
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Your account: `account delete --yes` deletes it at the server and on this device.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Lock this device's keys with a passphrase (`set`, reading it from
    /// `$SIRR_NEW_PASSPHRASE` or the first line of stdin) or stop using one (`remove`). A locked
    /// home needs `$SIRR_PASSPHRASE` for every command.
    Passphrase {
        #[arg(value_parser = ["set", "remove"])]
        action: String,
    },
    /// Group chats: end-to-end encrypted to every member's devices.
    #[command(subcommand)]
    Group(GroupCommand),
    /// The safety number of your conversation with a contact: compare it with theirs (in
    /// person or on a call); if both show the same digits, no one is in the middle.
    Safety { phone: String },
    /// Optional uses of your data: each is off until you turn it on (`consent list`,
    /// `consent set read-receipts on`). Changes apply at once, on all your devices.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// The day a contact last connected, if they allow it and have written to you
    LastSeen { phone: String },
    /// Stop seeing someone's messages on this device (and tell the server, as an abuse signal)
    Block { phone: String },
    /// Report someone's last messages to you as abuse: they are revealed to the operator, who
    /// can check (message franking) that this sender really sent them
    Report {
        phone: String,
        /// How many of their latest messages
        #[arg(long, default_value_t = 5)]
        last: usize,
    },
    /// Disappearing messages in a chat: `timer 1h +E164` or `timer 7d --group NAME`;
    /// `timer off ...` stops. Every member's devices delete messages that long after storing
    /// them, and the server drops undelivered copies after as long.
    Timer {
        /// Seconds, or 30m, 1h, 7d; or `off`
        duration: String,
        /// The other person's number (or give --group)
        phone: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConsentCommand {
    /// Every optional use of your data and whether it is on
    List {
        #[arg(long)]
        json: bool,
    },
    /// Turn one on or off: read-receipts, last-seen, profile-photo, share-number-with-businesses
    Set {
        purpose: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Every disclosure of your data to anyone but you, verified as a hash chain
    Disclosures {
        /// Only verify; print the number of entries
        #[arg(long)]
        verify: bool,
        #[arg(long)]
        json: bool,
    },
    /// Everything the server holds about your account: FILE (JSON) and FILE.html (readable)
    Export {
        #[arg(long)]
        out: PathBuf,
        /// The readable page's language: en, ar or ms (default: from `LANG` if it starts with
        /// ar or ms, else en)
        #[arg(long, value_parser = ["en", "ar", "ms"])]
        lang: Option<String>,
    },
    /// Ask for a ban of this account to be reviewed, in your own words
    Appeal { text: String },
    /// The registration lock: `lock set` (the PIN from `$SIRR_NEW_PIN` or the first line of
    /// stdin), `lock clear`, `lock status`. While it is on, registering your number on a new
    /// device needs the PIN; 10 wrong guesses lock the number until the account has been
    /// inactive for 7 days.
    Lock {
        #[arg(value_parser = ["set", "clear", "status"])]
        action: String,
    },
    /// Delete the account at the server — every device, key and undelivered message — and this
    /// device's local state. Irreversible.
    Delete {
        /// Confirm: nothing is deleted without it
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Create a group with these people; prints its id.
    Create {
        name: String,
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Send a text to the group.
    Send { name: String, text: String },
    /// Add someone (all their devices) to the group.
    Add { name: String, phone: String },
    /// Remove someone from the group; they cannot read what is sent after.
    Remove { name: String, phone: String },
    /// Leave the group.
    Leave { name: String },
    /// Rename the group for every member.
    Rename { name: String, new_name: String },
    /// The groups and chats this device is in.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// List this account's devices
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a device: its credential stops working and its queue is dropped
    Remove { id: u32 },
    /// Name this device (the server stores the name sealed: only your devices can read it)
    Rename { name: String },
    /// Make this (unregistered) home directory a new device of an existing account: prints a
    /// code to approve on one of the account's devices, then waits for the approval.
    Link {
        #[arg(long)]
        server: String,
        #[arg(long, default_value = "sirr-cli")]
        name: String,
        #[arg(long)]
        ca_cert: Option<PathBuf>,
    },
    /// Approve a new device from the code it shows: it joins this account and every
    /// conversation, and sees every new message.
    Approve { code: String },
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIRR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sirr: error: cannot start: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("sirr: error: {e:#}");
        std::process::exit(1);
    }
}

fn home_dir(home: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(h) = home {
        return Ok(h);
    }
    let base = std::env::var_os("HOME").context("no --home given and $HOME is not set")?;
    Ok(PathBuf::from(base).join(".sirr"))
}

/// Open the home directory, unlocking it with `$SIRR_PASSPHRASE` if that is set.
async fn open(home: &std::path::Path) -> anyhow::Result<Client> {
    let passphrase = std::env::var("SIRR_PASSPHRASE").ok();
    Ok(Client::open_with(home, passphrase.as_deref()).await?)
}

fn phone(s: &str) -> anyhow::Result<Phone> {
    Phone::parse(s).with_context(|| format!("invalid phone number {s:?}"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let home = home_dir(cli.home)?;
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Register {
            server,
            phone: number,
            code,
            pin,
            name,
            ca_cert,
        } => {
            let pin = pin.or_else(|| std::env::var("SIRR_PIN").ok());
            let number = phone(&number)?;
            let ca = match &ca_cert {
                Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
                None => None,
            };
            let code = match code {
                Some(c) => c,
                None => {
                    let ttl =
                        Client::request_code(&Platform::native(), &server, &number, ca.as_deref()).await?;
                    if !std::io::stdin().is_terminal() {
                        writeln!(out, "A verification code was sent to {number} (valid {ttl} s).")?;
                        writeln!(out, "Run again with --code CODE to finish registering.")?;
                        return Ok(());
                    }
                    eprint!("A code was sent to {number}. Enter it: ");
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim().to_owned()
                }
            };
            let client = Client::register(
                Platform::native(),
                State::open(&home)?,
                &server,
                number,
                &code,
                pin.as_deref(),
                &name,
                ca.as_deref(),
            )
            .await?;
            let id = client.identity();
            writeln!(
                out,
                "Registered {} as device {} of account {}.",
                id.phone, id.device, id.account
            )?;
        }
        Command::Send { to, text } => {
            let to = phone(&to)?;
            let mut client = open(&home).await?;
            client.connect().await?;
            let id = client.send_text(&to, &text).await?;
            client.disconnect().await;
            writeln!(out, "sent {id}")?;
        }
        Command::Recv { wait, json } => {
            if !(0.0..=86_400.0).contains(&wait) {
                bail!("--wait must be between 0 and 86400 seconds");
            }
            let mut client = open(&home).await?;
            client.connect().await?;
            client.receive(Duration::from_secs_f64(wait)).await?;
            let shown = client.take_unread().await?;
            // Shown means read: senders hear of it only if read receipts are on.
            client.send_read_receipts(&shown).await?;
            client.disconnect().await;
            for m in shown {
                if json {
                    let v = serde_json::json!({
                        "from": m.from,
                        "to": m.to,
                        "text": m.text,
                        "conversation": m.conversation,
                        "group": m.group,
                        "device": m.from_device,
                        "sent_at": m.sent_at,
                        "received_at": m.received_at,
                        "message_id": m.message_id,
                        "direction": m.direction,
                        "verified": m.verified,
                        "expires_at": m.expires_at,
                    });
                    writeln!(out, "{v}")?;
                } else {
                    if m.direction == "notice" {
                        writeln!(out, "[{}] ! {}", utc(m.received_at), printable(&m.text))?;
                        continue;
                    }
                    if m.direction == "read" {
                        writeln!(out, "[{}] {} read {}", utc(m.sent_at), m.from, m.text)?;
                        continue;
                    }
                    let warn = if m.verified { "" } else { " [UNVERIFIED SENDER]" };
                    let arrow = match (&m.group, m.direction.as_str()) {
                        (Some(g), _) => format!(" in {}", printable(g)),
                        (None, "out") => format!(" -> {}", m.to),
                        _ => String::new(),
                    };
                    writeln!(
                        out,
                        "[{}] {}{}{}: {}",
                        utc(m.sent_at),
                        m.from,
                        arrow,
                        warn,
                        printable(&m.text)
                    )?;
                }
            }
        }
        Command::Whoami { json } => {
            let id = open(&home).await?.identity();
            if json {
                writeln!(out, "{}", serde_json::to_string(&id)?)?;
            } else {
                writeln!(
                    out,
                    "phone:   {}\naccount: {}\ndevice:  {}\nserver:  {}",
                    id.phone, id.account, id.device, id.server
                )?;
            }
        }
        Command::Devices { json } | Command::Device(DeviceCommand::List { json }) => {
            let mut client = open(&home).await?;
            client.connect().await?;
            let me = client.identity().device;
            let devices = client.devices().await?;
            client.disconnect().await;
            for d in devices {
                if json {
                    let v = serde_json::json!({"id": d.id.0, "name": d.name, "created_day": d.created_day, "this": d.id.0 == me});
                    writeln!(out, "{v}")?;
                } else {
                    let this = if d.id.0 == me { "  (this device)" } else { "" };
                    writeln!(
                        out,
                        "{:>3}  {}  registered {}{}",
                        d.id.0,
                        d.name.as_deref().unwrap_or("(unnamed)"),
                        utc(d.created_day as u64 * 86_400_000).get(..10).unwrap_or(""),
                        this
                    )?;
                }
            }
        }
        Command::Device(DeviceCommand::Remove { id }) => {
            let mut client = open(&home).await?;
            client.connect().await?;
            client.remove_device(DeviceId(id)).await?;
            client.disconnect().await;
            writeln!(out, "removed device {id}")?;
        }
        Command::Device(DeviceCommand::Rename { name }) => {
            let mut client = open(&home).await?;
            client.connect().await?;
            client.set_device_name(&name).await?;
            client.disconnect().await;
            writeln!(out, "renamed this device to {name:?}")?;
        }
        Command::Device(DeviceCommand::Link {
            server,
            name,
            ca_cert,
        }) => {
            let ca = match &ca_cert {
                Some(p) => Some(std::fs::read(p).with_context(|| format!("reading {}", p.display()))?),
                None => None,
            };
            let pending = Client::start_link(
                Platform::native(),
                State::open(&home)?,
                &server,
                &name,
                ca.as_deref(),
            )
            .await?;
            writeln!(
                out,
                "On a device of your account, run:\n  sirr device approve {}",
                pending.code()
            )?;
            writeln!(out, "Waiting for approval...")?;
            out.flush()?;
            let mut client = pending.finish().await?;
            client.connect().await?;
            // Take the invitations to the account's conversations, if they are already there.
            client.receive(Duration::from_secs(2)).await?;
            client.disconnect().await;
            let id = client.identity();
            writeln!(
                out,
                "Linked: {} device {} of account {}.",
                id.phone, id.device, id.account
            )?;
        }
        Command::Device(DeviceCommand::Approve { code }) => {
            let mut client = open(&home).await?;
            client.connect().await?;
            client.receive(Duration::ZERO).await?;
            let device = client.approve_link(&code).await?;
            client.disconnect().await;
            writeln!(out, "approved device {}", device.0)?;
        }
        Command::Group(cmd) => {
            let mut client = open(&home).await?;
            client.connect().await?;
            // Catch up first, so the operation starts from the group's latest state.
            client.receive(Duration::ZERO).await?;
            match cmd {
                GroupCommand::Create { name, members } => {
                    let phones = members
                        .iter()
                        .map(|p| phone(p))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let id = client.group_create(&name, &phones).await?;
                    writeln!(out, "{id}")?;
                }
                GroupCommand::Send { name, text } => {
                    let id = client.group_send(&name, &text).await?;
                    writeln!(out, "sent {id}")?;
                }
                GroupCommand::Add { name, phone: p } => {
                    client.group_add(&name, &phone(&p)?).await?;
                    writeln!(out, "added {p} to {name}")?;
                }
                GroupCommand::Remove { name, phone: p } => {
                    client.group_remove(&name, &phone(&p)?).await?;
                    writeln!(out, "removed {p} from {name}")?;
                }
                GroupCommand::Rename { name, new_name } => {
                    client.group_rename(&name, &new_name).await?;
                    writeln!(out, "renamed {name} to {new_name}")?;
                }
                GroupCommand::Leave { name } => {
                    client.group_leave(&name).await?;
                    writeln!(out, "left {name}")?;
                }
                GroupCommand::List { json } => {
                    for (row, epoch, devices) in client.conversations().await? {
                        if json {
                            let v = serde_json::json!({
                                "id": row.id.to_string(),
                                "group": row.name,
                                "peer": row.peer,
                                "members": row.members.iter().map(|m| m.phone.to_string()).collect::<Vec<_>>(),
                                "devices": devices,
                                "epoch": epoch,
                            });
                            writeln!(out, "{v}")?;
                        } else if let Some(name) = &row.name {
                            let members: Vec<String> =
                                row.members.iter().map(|m| m.phone.to_string()).collect();
                            writeln!(
                                out,
                                "{}  {}  ({} devices): {}",
                                row.id,
                                printable(name),
                                devices,
                                members.join(" ")
                            )?;
                        }
                    }
                }
            }
            client.disconnect().await;
        }
        Command::Account(AccountCommand::Disclosures { verify, json }) => {
            let mut client = open(&home).await?;
            client.connect().await?;
            let entries = client.disclosures().await?;
            client.disconnect().await;
            if verify {
                writeln!(out, "the disclosure ledger verifies: {} entries", entries.len())?;
            } else if entries.is_empty() {
                writeln!(out, "your data was never disclosed to anyone")?;
            }
            for e in entries.iter().filter(|_| !verify) {
                if json {
                    let v = serde_json::json!({"seq": e.seq, "at_ms": e.at_ms, "recipient": e.recipient, "what": e.what});
                    writeln!(out, "{v}")?;
                } else {
                    writeln!(
                        out,
                        "{}. [{}] to {}: {}",
                        e.seq,
                        utc(e.at_ms),
                        printable(&e.recipient),
                        printable(&e.what)
                    )?;
                }
            }
        }
        Command::Account(AccountCommand::Export { out: path, lang }) => {
            let lang = match lang {
                Some(code) => code.parse()?,
                None => sirr_client::export::Lang::from_locale(std::env::var("LANG").ok().as_deref()),
            };
            let mut client = open(&home).await?;
            client.connect().await?;
            let export = client.export_account().await?;
            let names: Vec<(u32, String)> = client
                .devices()
                .await?
                .into_iter()
                .filter_map(|d| Some((d.id.0, d.name?)))
                .collect();
            client.disconnect().await;
            std::fs::write(&path, serde_json::to_string_pretty(&export)?)
                .with_context(|| format!("writing {}", path.display()))?;
            let html = path.with_extension("html");
            let generated_at_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            let me = client.identity();
            let local = sirr_client::export::Local {
                phone: &me.phone,
                device_names: &names,
                lang,
                generated_at_ms,
            };
            std::fs::write(&html, sirr_client::export::html(&export, &local))
                .with_context(|| format!("writing {}", html.display()))?;
            writeln!(out, "wrote {} and {}", path.display(), html.display())?;
        }
        Command::Account(AccountCommand::Appeal { text }) => {
            let client = open(&home).await?;
            client.appeal(&text).await?;
            writeln!(out, "appeal sent; an operator will review the ban")?;
        }
        Command::Account(AccountCommand::Delete { yes }) => {
            if !yes {
                bail!(
                    "this deletes your account and all its devices for good; run again with --yes to confirm"
                );
            }
            let mut client = open(&home).await?;
            client.connect().await?;
            let phone = client.identity().phone;
            client.delete_account().await?;
            writeln!(out, "deleted the account of {phone} and this device's data")?;
        }
        Command::Account(AccountCommand::Lock { action }) => {
            let mut client = open(&home).await?;
            client.connect().await?;
            let enabled = match action.as_str() {
                "set" => {
                    let pin = match std::env::var("SIRR_NEW_PIN") {
                        Ok(p) => p,
                        Err(_) => {
                            let mut line = String::new();
                            std::io::stdin().lock().read_line(&mut line)?;
                            line.trim_end_matches(['\r', '\n']).to_owned()
                        }
                    };
                    client.set_registration_lock(Some(&pin)).await?
                }
                "clear" => client.set_registration_lock(None).await?,
                _ => client.registration_lock().await?,
            };
            client.disconnect().await;
            if enabled {
                writeln!(
                    out,
                    "registration lock: on (registering this number anew needs the PIN)"
                )?;
            } else {
                writeln!(out, "registration lock: off")?;
            }
        }
        Command::Passphrase { action } => {
            let mut client = open(&home).await?;
            if action == "set" {
                let new = match std::env::var("SIRR_NEW_PASSPHRASE") {
                    Ok(p) => p,
                    Err(_) => {
                        let mut line = String::new();
                        std::io::stdin().lock().read_line(&mut line)?;
                        line.trim_end_matches(['\r', '\n']).to_owned()
                    }
                };
                client.set_passphrase(Some(&new)).await?;
                writeln!(out, "this device's keys are now locked with your passphrase")?;
            } else {
                client.set_passphrase(None).await?;
                writeln!(out, "this device's keys are no longer locked with a passphrase")?;
            }
        }
        Command::Safety { phone: p } => {
            let p = phone(&p)?;
            let mut client = open(&home).await?;
            client.connect().await?;
            client.receive(Duration::ZERO).await?;
            let number = client.safety_number(&p).await?;
            client.disconnect().await;
            writeln!(out, "{number}")?;
        }
        Command::Consent(cmd) => {
            let mut client = open(&home).await?;
            client.connect().await?;
            let (region, consents) = match cmd {
                ConsentCommand::List { json } => {
                    let (region, consents) = client.consents().await?;
                    if json {
                        for c in &consents {
                            let v = serde_json::json!({
                                "purpose": c.purpose.name(),
                                "granted": c.granted,
                                "offered": c.offered,
                                "changed_at": c.changed_at_ms,
                                "region": region,
                            });
                            writeln!(out, "{v}")?;
                        }
                        client.disconnect().await;
                        return Ok(());
                    }
                    (region, consents)
                }
                ConsentCommand::Set { purpose, state } => {
                    let p = Purpose::from_name(&purpose).with_context(|| {
                        let names: Vec<_> = Purpose::ALL.iter().map(|p| p.name()).collect();
                        format!("unknown use of data {purpose:?}; one of: {}", names.join(", "))
                    })?;
                    client.set_consent(p, state == "on").await?;
                    client.consents().await?
                }
            };
            client.disconnect().await;
            writeln!(out, "region: {region}")?;
            for c in consents {
                let state = match (c.offered, c.granted) {
                    (false, _) => "not offered here",
                    (true, true) => "on",
                    (true, false) => "off",
                };
                let since = c
                    .changed_at_ms
                    .map(|t| format!("  (changed {})", utc(t)))
                    .unwrap_or_default();
                writeln!(out, "{:<30} {state}{since}", c.purpose.name())?;
            }
        }
        Command::Block { phone: p } => {
            let p = phone(&p)?;
            let mut client = open(&home).await?;
            client.connect().await?;
            client.block(&p).await?;
            client.disconnect().await;
            writeln!(out, "blocked {p}")?;
        }
        Command::Report { phone: p, last } => {
            let p = phone(&p)?;
            let mut client = open(&home).await?;
            client.connect().await?;
            client.receive(Duration::ZERO).await?;
            let (sent, verified) = client.report(&p, last).await?;
            client.disconnect().await;
            writeln!(
                out,
                "reported {sent} message(s) from {p}; the server verified {verified} as sent by them"
            )?;
        }
        Command::LastSeen { phone: p } => {
            let p = phone(&p)?;
            let mut client = open(&home).await?;
            client.connect().await?;
            let day = client.last_seen(&p).await?;
            client.disconnect().await;
            match day {
                Some(d) => writeln!(out, "{}", utc(u64::from(d) * 86_400_000).get(..10).unwrap_or(""))?,
                None => writeln!(out, "unknown")?,
            }
        }
        Command::Timer {
            phone: p,
            group,
            duration,
        } => {
            let chat = match (p, group) {
                (Some(p), None) => Chat::Direct(phone(&p)?),
                (None, Some(g)) => Chat::Group(g),
                _ => bail!("name either a phone number or --group NAME"),
            };
            let seconds = parse_duration(&duration)?;
            let mut client = open(&home).await?;
            client.connect().await?;
            client.receive(Duration::ZERO).await?;
            client.set_timer(&chat, seconds).await?;
            client.disconnect().await;
            match seconds {
                Some(s) => writeln!(out, "messages now disappear after {s} s")?,
                None => writeln!(out, "disappearing messages off")?,
            }
        }
    }
    Ok(())
}

/// `off`, or seconds with an optional unit: `90`, `30s`, `15m`, `1h`, `7d`.
fn parse_duration(s: &str) -> anyhow::Result<Option<u32>> {
    if s == "off" {
        return Ok(None);
    }
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => bail!("invalid duration {s:?}: use seconds, 30m, 1h, 7d or off"),
    };
    let n: u32 = digits
        .parse()
        .with_context(|| format!("invalid duration {s:?}: use seconds, 30m, 1h, 7d or off"))?;
    match n.checked_mul(scale) {
        Some(0) | None => bail!("invalid duration {s:?}: between 1 second and 136 years"),
        Some(v) => Ok(Some(v)),
    }
}

/// Message text made safe for a terminal: control characters (newlines, escape sequences) are
/// shown escaped, so a sender cannot forge extra lines or repaint the screen.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM:SS` in UTC for milliseconds since the Unix epoch.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(
            super::printable("hi\n[2026-01-01 00:00:00] +1555: fake"),
            "hi\\n[2026-01-01 00:00:00] +1555: fake"
        );
        assert_eq!(super::printable("\u{1b}[2J ünï"), "\\u{1b}[2J ünï");
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_795_000_000_000), "2026-11-18 11:06:40");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00");
    }
}

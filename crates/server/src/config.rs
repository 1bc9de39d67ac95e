//! The one configuration struct, and how it is assembled: built-in defaults, then a TOML file,
//! then `SIRR_*` environment variables, then command-line flags, each overriding the previous.
//!
//! Nested keys use `__` in the environment: `SIRR_LIMITS__SEND__BURST=1000`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use sirr_proto::Purpose;

/// Everything `sirrd` can be told. Every field has a safe default; see [`Config::default`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:7700`: reachable from this machine only.
    pub listen: SocketAddr,
    /// Address of the operator's listener, which alone serves `/metrics` (and `/health`).
    /// Default `127.0.0.1:7701`: metrics say how busy the server is and when, which is not
    /// for clients; expose it only to the monitoring network. Must differ from `listen`.
    pub admin_listen: SocketAddr,
    /// Directory for the database and the server key. Created if missing.
    pub data: PathBuf,
    /// Development mode: the verification code `000000` is accepted for every number and codes
    /// are written to the log. Never use it with real users.
    pub dev: bool,
    /// PEM certificate chain; with `tls_key`, serve TLS (wss://).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// The built web client (`web/dist`, made by `scripts/build-web`), served at `/` on
    /// `listen` beside the WebSocket. Default none: no web routes at all. A directory that is
    /// missing or has no `index.html` stops the start.
    pub web_dir: Option<PathBuf>,
    pub delivery: DeliveryConfig,
    pub verification: VerificationConfig,
    pub limits: LimitsConfig,
    pub storage: StorageConfig,
    pub privacy: PrivacyConfig,
    pub abuse: AbuseConfig,
    pub sealed_tokens: SealedTokensConfig,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Largest payload accepted, in bytes (default 256 KiB).
    pub max_payload: usize,
    /// Days an undelivered message is kept before it expires (default 30).
    pub retention_days: u32,
    /// Pushes a device may have unacknowledged before the server waits (default 256).
    pub push_window: usize,
    /// Requests one connection may have in progress before the server stops reading from it.
    pub max_inflight: usize,
    /// WebSocket connections the server holds at most; past it new ones get 503 + Retry-After.
    pub max_connections: usize,
    /// Seconds a new connection has to authenticate or register before it is closed.
    pub handshake_timeout_secs: u64,
    /// Seconds a sealed-sender session may stay without a request (and with none in progress)
    /// before it is closed (default 120). It has no account to bound it, so idleness must; the
    /// client opens a new one when it next sends sealed.
    pub sealed_idle_secs: u64,
    /// Seconds between runs of the retention job (expired and disappearing messages, codes,
    /// KeyPackages, idle rate-limit state). Default 60.
    pub housekeeping_secs: u64,
    /// Days a conversation may go without a commit or a message before the server forgets it
    /// (default 400). The server does not know who is in a conversation, so it cannot remove
    /// one with its last member's account; idleness is the only signal it has.
    pub conversation_idle_days: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct VerificationConfig {
    /// Where to POST `{"phone","code","message"}` as JSON for an SMS gateway to deliver.
    /// Required unless `dev` is set.
    pub webhook_url: Option<String>,
    /// Seconds a code stays valid (default 600).
    pub code_ttl_secs: u64,
    /// Wrong codes tolerated before the code is void (default 5).
    pub max_attempts: u32,
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub burst: u32,
    pub per_second: f64,
}

impl Rate {
    pub const fn new(burst: u32, per_second: f64) -> Self {
        Self { burst, per_second }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Verification codes requested per phone number.
    pub code_per_phone: Rate,
    /// Verification codes requested per number prefix (`prefix_digits` digits): number blocks.
    pub code_per_prefix: Rate,
    /// Verification codes sent in all, whatever the number, prefix or address: the ceiling on
    /// what an SMS-pumping fraud (codes requested for many premium numbers from many
    /// addresses) can cost. Size it for the real sign-up rate; refusals are counted in
    /// `sirr_codes_refused_total{reason="global"}`.
    pub code_global: Rate,
    /// Digits of the number (after `+`) that form a prefix.
    pub prefix_digits: usize,
    /// Registration requests (codes, verifications, failed logins) per client IP.
    pub registration_per_ip: Rate,
    /// Messages sent per account.
    pub send: Rate,
    /// Sealed-sender messages per client IP (the server does not know their sender).
    pub sealed_send: Rate,
    /// Phone numbers looked up per account (contact discovery).
    pub lookup: Rate,
    /// Abuse reports per account (each may reveal up to 50 messages and write to the reported
    /// account's disclosure ledger).
    pub report: Rate,
    /// Abuse reports per client IP.
    pub report_per_ip: Rate,
    /// KeyPackages claimed per account (one per device of the account claimed from): claims
    /// reveal who starts talking to whom, and each uses up another device's key.
    pub claim: Rate,
    /// Accounts blocked per account (default 50 at once, then one a minute). A block feeds the
    /// abuse engine, which keeps state per account named.
    pub block: Rate,
    /// Consent changes per account (default 20 at once, then one a minute); each is a row of the
    /// consent history.
    pub consent: Rate,
    /// Data exports per account (default 3 at once, then one every 10 minutes): each reads every
    /// row about the account and builds its JSON in memory.
    pub export: Rate,
    /// Appeals per banned account (default 3 at once, then one an hour); at most
    /// `appeals_kept` are stored.
    pub appeal: Rate,
    /// Appeals stored per account awaiting review (default 10); more are refused.
    pub appeals_kept: u32,
    /// WebSocket connections open at once per client IP address (IPv6: per /64), of any kind
    /// (default 1,000; NATs put many people behind one address). Past it the upgrade gets
    /// 503 + Retry-After, so one address cannot hold the `delivery.max_connections` slots.
    pub connections_per_ip: usize,
    /// One-time KeyPackages kept per device; uploads beyond it replace the oldest.
    pub key_packages_per_device: usize,
    /// Registration requests (code requests and verifications) in progress at once; past it new
    /// ones are refused at once with "retry after" instead of queueing (surge protection).
    pub registrations_in_flight: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `full` (fsync each group commit; survives power loss) or `normal` (survives a killed
    /// process, not a power cut).
    pub durability: Durability,
    /// Writes that may wait for the disk before new sends get "retry after".
    pub write_queue: usize,
    /// Most writes in one transaction.
    pub max_batch: usize,
}

/// The abuse engine: decisions about accounts from metadata alone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AbuseConfig {
    /// Observe traffic and decide (default on). Off, stored decisions still hold.
    pub enabled: bool,
    /// Thresholds and rules (see `sirr_abuse::EngineConfig`; e.g. `abuse.engine.ban_at`).
    pub engine: sirr_abuse::EngineConfig,
    /// Messages a throttled account may send.
    pub throttled_send: Rate,
    /// Leading zero bits of the proof of work a challenged account must find (default 18:
    /// about 2^18 SHA-256 hashes, each extra bit doubles it).
    pub challenge_bits: u8,
    /// Seconds a solved challenge lets a challenged account send (default 600).
    pub challenge_pass_secs: u64,
    /// Days after the server accepted a message during which a report can verify it (default
    /// 90). A verified message's commitment is remembered (as a keyed hash) for as long, so a
    /// message counts once however often it is reported; older ones count as unverified.
    pub report_window_days: u32,
}

impl Default for AbuseConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            engine: sirr_abuse::EngineConfig::default(),
            throttled_send: Rate::new(5, 0.1),
            challenge_bits: 18,
            challenge_pass_secs: 600,
            report_window_days: 90,
        }
    }
}

/// Anonymous tokens that pay for sealed sends (see `sealed_tokens.rs`): how many an account
/// may hold, and how long they live, bound what a banned or throttled account can still send
/// sealed after the decision.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SealedTokensConfig {
    /// Tokens issued per account (one pays for one sealed copy to one account). Default 500
    /// an hour, all at once if need be.
    pub issue_per_account: Rate,
    /// Tokens issued per client IP (IPv6 per /64), for every account behind it together.
    /// Default 20,000 an hour.
    pub issue_per_ip: Rate,
    /// Most tokens in one request (default 100).
    pub batch: u32,
    /// Seconds a token key issues before it is replaced (default 900); the previous key still
    /// verifies, so a token lives at most twice this long.
    pub key_secs: u64,
    /// Most tokens one key issues (default 1,000,000): bounds each key's spent set in memory.
    pub max_per_key: u64,
}

impl Default for SealedTokensConfig {
    fn default() -> Self {
        Self {
            issue_per_account: Rate::new(500, 500.0 / 3600.0),
            issue_per_ip: Rate::new(20_000, 20_000.0 / 3600.0),
            batch: 100,
            key_secs: 900,
            max_per_key: 1_000_000,
        }
    }
}

/// Rules that differ by jurisdiction. Every optional use of data is off until the user turns it
/// on, everywhere; a region can make the rules stricter still, in configuration alone.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Which entry of `regions` this server applies (default `default`; `eu` is built in).
    pub region: String,
    /// Named rule sets. The built-in `default` and `eu` can be changed, and others added.
    pub regions: BTreeMap<String, RegionRules>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegionRules {
    /// The optional uses of data offered at all (names as in `sirr consent list`); the others
    /// stay off and cannot be turned on.
    pub offered: Vec<String>,
    /// A granted consent lapses (counts as off) this many days after it was given, until the
    /// user gives it again; 0 means it does not lapse.
    pub consent_lapses_after_days: u32,
    /// Undelivered messages are kept at most this many days, whatever `delivery.retention_days`
    /// says.
    pub max_retention_days: u32,
}

impl PrivacyConfig {
    /// The rules in force. [`Config::validate`] has checked that the region exists.
    pub fn rules(&self) -> &RegionRules {
        static FALLBACK: std::sync::OnceLock<RegionRules> = std::sync::OnceLock::new();
        self.regions
            .get(&self.region)
            .unwrap_or_else(|| FALLBACK.get_or_init(RegionRules::strictest))
    }
}

impl RegionRules {
    /// Nothing optional offered, shortest retention: what an unknown region gets.
    fn strictest() -> Self {
        Self {
            offered: Vec::new(),
            consent_lapses_after_days: 1,
            max_retention_days: 1,
        }
    }
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        let all = || {
            Purpose::ALL
                .iter()
                .map(|p| p.name().to_owned())
                .collect::<Vec<_>>()
        };
        let mut regions = BTreeMap::new();
        regions.insert(
            "default".to_owned(),
            RegionRules {
                offered: all(),
                consent_lapses_after_days: 0,
                max_retention_days: 30,
            },
        );
        // Stricter: consents are asked again every year, undelivered messages go after 14 days.
        regions.insert(
            "eu".to_owned(),
            RegionRules {
                offered: all(),
                consent_lapses_after_days: 365,
                max_retention_days: 14,
            },
        );
        Self {
            region: "default".to_owned(),
            regions,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    Full,
    Normal,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 7701)),
            data: PathBuf::from("./sirr-data"),
            dev: false,
            tls_cert: None,
            tls_key: None,
            log_format: LogFormat::Text,
            web_dir: None,
            delivery: DeliveryConfig::default(),
            verification: VerificationConfig::default(),
            limits: LimitsConfig::default(),
            storage: StorageConfig::default(),
            privacy: PrivacyConfig::default(),
            abuse: AbuseConfig::default(),
            sealed_tokens: SealedTokensConfig::default(),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_payload: 256 * 1024,
            retention_days: 30,
            push_window: 256,
            max_inflight: 256,
            max_connections: 200_000,
            handshake_timeout_secs: 30,
            sealed_idle_secs: 120,
            housekeeping_secs: 60,
            conversation_idle_days: 400,
        }
    }
}

impl Default for VerificationConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            code_ttl_secs: 600,
            max_attempts: 5,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            code_per_phone: Rate::new(3, 1.0 / 300.0),
            code_per_prefix: Rate::new(100, 1.0),
            code_global: Rate::new(1_000, 5.0),
            prefix_digits: 6,
            registration_per_ip: Rate::new(30, 0.5),
            send: Rate::new(200, 20.0),
            sealed_send: Rate::new(2_000, 200.0),
            lookup: Rate::new(2_000, 1.0),
            claim: Rate::new(2_000, 2.0),
            block: Rate::new(50, 1.0 / 60.0),
            consent: Rate::new(20, 1.0 / 60.0),
            export: Rate::new(3, 1.0 / 600.0),
            appeal: Rate::new(3, 1.0 / 3600.0),
            appeals_kept: 10,
            connections_per_ip: 1_000,
            report: Rate::new(20, 1.0 / 60.0),
            report_per_ip: Rate::new(100, 1.0 / 6.0),
            key_packages_per_device: 200,
            registrations_in_flight: 256,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            write_queue: 16_384,
            max_batch: 4_096,
        }
    }
}

/// Flags that override the file and the environment. Only flags actually given are applied.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// Address to listen on [default: 127.0.0.1:7700]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Address of the admin listener (metrics) [default: 127.0.0.1:7701]
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Data directory [default: ./sirr-data]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// TOML configuration file
    #[arg(long, env = "SIRR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Development mode: accept code 000000 for every number. Never in production.
    #[arg(long)]
    pub dev: bool,
    /// PEM certificate chain for TLS
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the built web client from this directory (e.g. web/dist) [default: none]
    #[arg(long)]
    pub web_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The fields of [`Config`], as they appear in TOML and (upper-cased) in the environment.
const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "data",
    "dev",
    "tls_cert",
    "tls_key",
    "log_format",
    "web_dir",
    "delivery",
    "verification",
    "limits",
    "storage",
    "privacy",
    "abuse",
    "sealed_tokens",
];

impl Config {
    /// Assemble the configuration: defaults < TOML file < `SIRR_*` environment < flags.
    pub fn load(flags: &Flags) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &flags.config {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only variables naming a field of `Config` are configuration; other `SIRR_*` variables
        // (the client's `SIRR_HOME`, `SIRR_LOG`, test knobs) are left alone. A typo inside a
        // section (`SIRR_LIMITS__SNED`) is still an error.
        fig = fig.merge(
            Env::prefixed("SIRR_")
                .filter(|key| {
                    let top = key.as_str().split("__").next().unwrap_or("").to_ascii_lowercase();
                    TOP_LEVEL_KEYS.contains(&top.as_str())
                })
                .split("__"),
        );
        if let Some(v) = flags.listen {
            fig = fig.merge(("listen", v));
        }
        if let Some(v) = flags.admin_listen {
            fig = fig.merge(("admin_listen", v));
        }
        if let Some(v) = &flags.data {
            fig = fig.merge(("data", v));
        }
        if flags.dev {
            fig = fig.merge(("dev", true));
        }
        if let Some(v) = &flags.tls_cert {
            fig = fig.merge(("tls_cert", v));
        }
        if let Some(v) = &flags.tls_key {
            fig = fig.merge(("tls_key", v));
        }
        if let Some(v) = &flags.web_dir {
            fig = fig.merge(("web_dir", v));
        }
        let config: Config = fig.extract().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |s: &str| Err(ConfigError::Invalid(s.to_owned()));
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("tls_cert and tls_key go together");
        }
        if !self.dev && self.verification.webhook_url.is_none() {
            return bad("no way to send verification codes: set verification.webhook_url \
                 (SIRR_VERIFICATION__WEBHOOK_URL) or run with --dev for development");
        }
        if self.limits.key_packages_per_device == 0 || self.limits.key_packages_per_device > 10_000 {
            return bad("limits.key_packages_per_device must be between 1 and 10000");
        }
        if self.limits.connections_per_ip == 0 {
            return bad("limits.connections_per_ip must be at least 1");
        }
        if self.limits.appeals_kept == 0 {
            return bad("limits.appeals_kept must be at least 1");
        }
        if self.delivery.sealed_idle_secs == 0 {
            return bad("delivery.sealed_idle_secs must be at least 1");
        }
        if self.limits.registrations_in_flight == 0 {
            return bad("limits.registrations_in_flight must be at least 1");
        }
        if self.delivery.housekeeping_secs == 0 || self.delivery.housekeeping_secs > 86_400 {
            return bad("delivery.housekeeping_secs must be between 1 and 86400");
        }
        if self.delivery.conversation_idle_days < self.retention_days() {
            // A conversation must outlive the messages queued in it.
            return bad("delivery.conversation_idle_days must be at least the message retention");
        }
        if self.admin_listen == self.listen && self.listen.port() != 0 {
            return bad("admin_listen must differ from listen: metrics are not served to clients");
        }
        if self.delivery.max_payload == 0 || self.delivery.max_payload > 64 * 1024 * 1024 {
            return bad("delivery.max_payload must be between 1 byte and 64 MiB");
        }
        for (name, r) in [
            ("limits.code_per_phone", self.limits.code_per_phone),
            ("limits.code_per_prefix", self.limits.code_per_prefix),
            ("limits.code_global", self.limits.code_global),
            ("limits.registration_per_ip", self.limits.registration_per_ip),
            ("limits.send", self.limits.send),
            ("limits.sealed_send", self.limits.sealed_send),
            ("abuse.throttled_send", self.abuse.throttled_send),
            (
                "sealed_tokens.issue_per_account",
                self.sealed_tokens.issue_per_account,
            ),
            ("sealed_tokens.issue_per_ip", self.sealed_tokens.issue_per_ip),
            ("limits.lookup", self.limits.lookup),
            ("limits.claim", self.limits.claim),
            ("limits.block", self.limits.block),
            ("limits.consent", self.limits.consent),
            ("limits.export", self.limits.export),
            ("limits.appeal", self.limits.appeal),
        ] {
            if r.burst == 0 || r.per_second.is_nan() || r.per_second <= 0.0 {
                return Err(ConfigError::Invalid(format!(
                    "{name}: burst and per_second must be positive"
                )));
            }
        }
        if self.abuse.report_window_days == 0 || self.abuse.report_window_days > 3_650 {
            return bad("abuse.report_window_days must be between 1 and 3650");
        }
        let t = &self.sealed_tokens;
        if t.batch == 0 || t.batch as usize > sirr_crypto::tokens::MAX_BATCH {
            return bad("sealed_tokens.batch must be between 1 and 1000");
        }
        if t.key_secs == 0 || t.key_secs > 86_400 || t.max_per_key < u64::from(t.batch) {
            return bad("sealed_tokens.key_secs must be 1 to 86400 and max_per_key at least batch");
        }
        if self.abuse.challenge_bits == 0 || self.abuse.challenge_bits > 32 {
            return bad("abuse.challenge_bits must be between 1 and 32");
        }
        if let Err(e) = sirr_abuse::Engine::new(self.abuse.engine.clone()) {
            return Err(ConfigError::Invalid(format!("abuse.engine: {e}")));
        }
        let Some(rules) = self.privacy.regions.get(&self.privacy.region) else {
            return Err(ConfigError::Invalid(format!(
                "privacy.region {:?} is not one of privacy.regions ({})",
                self.privacy.region,
                self.privacy
                    .regions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if let Some(unknown) = rules.offered.iter().find(|n| Purpose::from_name(n).is_none()) {
            return Err(ConfigError::Invalid(format!(
                "privacy.regions.{}.offered: unknown use of data {unknown:?}",
                self.privacy.region
            )));
        }
        if rules.max_retention_days == 0 {
            return bad("privacy.regions.*.max_retention_days must be at least 1");
        }
        Ok(())
    }

    /// Days an undelivered message is kept: the delivery setting, capped by the region's rules.
    pub fn retention_days(&self) -> u32 {
        self.delivery
            .retention_days
            .min(self.privacy.rules().max_retention_days)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its (large) error type
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "sirr.toml",
                "listen = \"127.0.0.1:9000\"\ndev = true\n[limits.send]\nburst = 5\nper_second = 1.0\n",
            )?;
            jail.set_env("SIRR_LISTEN", "127.0.0.1:9001");
            jail.set_env("SIRR_DELIVERY__RETENTION_DAYS", "7");
            jail.set_env("SIRR_SOMETHING_ELSE", "not configuration");
            let flags = Flags {
                config: Some("sirr.toml".into()),
                data: Some("/tmp/x".into()),
                ..Flags::default()
            };
            let c = Config::load(&flags).map_err(|e| e.to_string())?;
            assert_eq!(c.listen.port(), 9001, "env beats file");
            assert_eq!(c.data, PathBuf::from("/tmp/x"), "flag beats default");
            assert!(c.dev, "file beats default");
            assert_eq!(c.limits.send.burst, 5);
            assert_eq!(c.delivery.retention_days, 7);
            assert_eq!(c.delivery.max_payload, 256 * 1024, "untouched default");
            assert_eq!(c.web_dir, None, "no web client unless asked for");
            jail.set_env("SIRR_WEB_DIR", "/srv/sirr-web");
            let c = Config::load(&flags).map_err(|e| e.to_string())?;
            assert_eq!(
                c.web_dir,
                Some(PathBuf::from("/srv/sirr-web")),
                "env sets web_dir"
            );
            let with_flag = Flags {
                web_dir: Some("web/dist".into()),
                ..flags.clone()
            };
            let c = Config::load(&with_flag).map_err(|e| e.to_string())?;
            assert_eq!(c.web_dir, Some(PathBuf::from("web/dist")), "flag beats env");
            let flags = Flags {
                listen: Some("127.0.0.1:9002".parse().unwrap()),
                ..flags
            };
            assert_eq!(
                Config::load(&flags).map_err(|e| e.to_string())?.listen.port(),
                9002
            );
            Ok(())
        });
    }

    #[test]
    fn refuses_to_run_without_a_code_sender_outside_dev() {
        figment::Jail::expect_with(|_| {
            let err = Config::load(&Flags::default()).unwrap_err().to_string();
            assert!(err.contains("webhook_url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn top_level_keys_match_the_struct() {
        let v = serde_json::to_value(Config::default()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = TOP_LEVEL_KEYS.to_vec();
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected);
    }

    #[test]
    fn unknown_keys_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("sirr.toml", "dev = true\nlisten_addr = \"x\"\n")?;
            let flags = Flags {
                config: Some("sirr.toml".into()),
                ..Flags::default()
            };
            assert!(Config::load(&flags).is_err());
            Ok(())
        });
    }
}

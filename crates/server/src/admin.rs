//! Operator commands that touch people's data. Each one that discloses anything about an
//! account appends to that account's disclosure ledger first, so the account sees it.

use std::path::Path;
use std::sync::Arc;

use sirr_proto::Phone;
use sirr_store::sqlite::{SqliteOptions, SqliteStore};
use sirr_store::{AccountStore, ExportValue, QueueListener, QueuedMessage, Store};

use crate::keys::ServerKey;
use crate::privacy::Manifest;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Store(#[from] sirr_store::StoreError),
    #[error(transparent)]
    Manifest(#[from] crate::privacy::ManifestError),
}

struct Nobody;
impl QueueListener for Nobody {
    fn queued(&self, _: sirr_store::DeviceKey, _: &QueuedMessage) {}
}

/// What the operator can produce about the account of `phone` (the manifest's producible
/// fields), recorded in the account's ledger with `reason` before it is shown.
pub async fn lookup(data: &Path, phone: &Phone, reason: &str) -> Result<String, AdminError> {
    if reason.trim().len() < 5 {
        return Err(AdminError::Invalid(
            "give the reason for this lookup with --reason".into(),
        ));
    }
    let (key, store) = open_data(data)?;
    let Some((account, _)) = store.account_by_phone(key.phone_key(phone)).await? else {
        store.close().await?;
        return Err(AdminError::Invalid(format!("{phone} has no account")));
    };
    let manifest = Manifest::load()?;
    let tables = store.export_account(account).await?;
    let mut fields = Vec::new();
    let mut report = format!("account {account}\n");
    for (name, (columns, rows)) in &tables {
        let Some(declared) = manifest.tables.get(name) else {
            continue;
        };
        for row in rows {
            for (col, v) in columns.iter().zip(row) {
                if !declared.columns.get(col).is_some_and(|f| f.producible) {
                    continue;
                }
                let shown = match v {
                    ExportValue::Integer(i) => i.to_string(),
                    ExportValue::Text(t) => t.clone(),
                    ExportValue::Blob(b) => hex::encode(b),
                    ExportValue::Ciphertext { bytes } => format!("{bytes} bytes of ciphertext"),
                    ExportValue::Null => "(none)".into(),
                };
                report.push_str(&format!("{name}.{col}: {shown}\n"));
                let f = format!("{name}.{col}");
                if !fields.contains(&f) {
                    fields.push(f);
                }
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    store
        .append_disclosure(
            account,
            now,
            "the server's operator".into(),
            format!(
                "operator lookup of {} ; reason: {}",
                fields.join(", "),
                reason.trim()
            ),
        )
        .await?;
    store.close().await?;
    Ok(report)
}

fn open_data(data: &Path) -> Result<(ServerKey, SqliteStore), AdminError> {
    if !data.join("sirr.db").exists() {
        return Err(AdminError::Invalid(format!(
            "no Sirr database in {}",
            data.display()
        )));
    }
    let key = ServerKey::load_or_create(data).map_err(|e| AdminError::Invalid(format!("server key: {e}")))?;
    let store = SqliteStore::open(&data.join("sirr.db"), SqliteOptions::default(), Arc::new(Nobody))?;
    Ok((key, store))
}

/// An account named by its id (hex) or its number.
async fn resolve(
    key: &ServerKey,
    store: &SqliteStore,
    who: &str,
) -> Result<sirr_proto::AccountId, AdminError> {
    if who.starts_with('+') {
        let phone = Phone::parse(who).map_err(|e| AdminError::Invalid(e.to_string()))?;
        return store
            .account_by_phone(key.phone_key(&phone))
            .await?
            .map(|(a, _)| a)
            .ok_or_else(|| AdminError::Invalid(format!("{who} has no account")));
    }
    who.parse()
        .map_err(|_| AdminError::Invalid(format!("{who:?} is neither an account id nor a +E164 number")))
}

fn now() -> u64 {
    crate::service::now_ms()
}

fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    format!(
        "day {days} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Accounts whose latest decision is not `allow`: what was decided, when, why, and whether
/// they appealed. Metadata only: the server holds no content to show.
pub async fn abuse_list(data: &Path) -> Result<String, AdminError> {
    let (_, store) = open_data(data)?;
    let mut out = String::new();
    for (account, r) in store.latest_abuse(0).await? {
        if r.action == sirr_store::AbuseAction::Allow {
            continue;
        }
        let appeals = store.appeals(account).await?.len();
        out.push_str(&format!(
            "{account}  {:<9}  {}  by {}  appeals: {appeals}  reasons: {}\n",
            r.action,
            when(r.at_ms),
            r.by,
            r.reasons.join(", ")
        ));
    }
    store.close().await?;
    if out.is_empty() {
        out.push_str("no account is throttled, challenged or banned\n");
    }
    Ok(out)
}

/// One account's decisions, appeals and account metadata, for a review. Recorded in the
/// account's disclosure ledger first.
pub async fn abuse_show(data: &Path, who: &str) -> Result<String, AdminError> {
    let (key, store) = open_data(data)?;
    let account = resolve(&key, &store, who).await?;
    store
        .append_disclosure(
            account,
            now(),
            "the server's operator".into(),
            "operator review of the abuse decisions about this account (decisions, appeals, account age, last connection day, device count)".into(),
        )
        .await?;
    let tables = store.export_account(account).await?;
    let field = |table: &str, col: &str| -> String {
        tables
            .get(table)
            .and_then(|(cols, rows)| {
                let i = cols.iter().position(|c| c == col)?;
                rows.first().map(|r| match &r[i] {
                    ExportValue::Integer(v) => v.to_string(),
                    ExportValue::Text(t) => t.clone(),
                    _ => "(none)".into(),
                })
            })
            .unwrap_or_else(|| "(none)".into())
    };
    let devices = tables.get("devices").map_or(0, |(_, rows)| rows.len());
    let mut out = format!(
        "account {account}\ncreated day: {}\nlast connection day: {}\ndevices: {devices}\n\ndecisions:\n",
        field("accounts", "created_day"),
        field("accounts", "last_seen_day"),
    );
    for r in store.abuse_history(account).await? {
        out.push_str(&format!(
            "  {}  {:<9}  by {:<8}  {}\n",
            when(r.at_ms),
            r.action,
            r.by,
            r.reasons.join(", ")
        ));
    }
    out.push_str("appeals:\n");
    for a in store.appeals(account).await? {
        out.push_str(&format!("  {}  {:?}\n", when(a.at_ms), a.text));
    }
    store.close().await?;
    Ok(out)
}

/// Lift a ban (or any decision): recorded as the operator's decision with `reason`; a running
/// server applies it at its next housekeeping run.
pub async fn abuse_unban(data: &Path, who: &str, reason: &str) -> Result<String, AdminError> {
    if reason.trim().len() < 5 {
        return Err(AdminError::Invalid(
            "give the reason for lifting the ban with --reason".into(),
        ));
    }
    let (key, store) = open_data(data)?;
    let account = resolve(&key, &store, who).await?;
    let latest = store.abuse_history(account).await?.pop();
    if latest
        .as_ref()
        .is_none_or(|r| r.action == sirr_store::AbuseAction::Allow)
    {
        store.close().await?;
        return Err(AdminError::Invalid(format!(
            "{account} is not throttled, challenged or banned"
        )));
    }
    store
        .record_abuse(
            account,
            sirr_store::AbuseRecord {
                id: 0,
                at_ms: now(),
                action: sirr_store::AbuseAction::Allow,
                reasons: vec![format!("operator review: {}", reason.trim())],
                by: "operator".into(),
            },
            false,
        )
        .await?;
    store.close().await?;
    Ok(format!(
        "{account} is allowed again; a running sirrd applies it within delivery.housekeeping_secs\n"
    ))
}

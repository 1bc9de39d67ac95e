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
    if !data.join("sirr.db").exists() {
        return Err(AdminError::Invalid(format!(
            "no Sirr database in {}",
            data.display()
        )));
    }
    let key = ServerKey::load_or_create(data).map_err(|e| AdminError::Invalid(format!("server key: {e}")))?;
    let store = SqliteStore::open(&data.join("sirr.db"), SqliteOptions::default(), Arc::new(Nobody))?;
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

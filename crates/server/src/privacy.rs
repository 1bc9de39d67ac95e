//! The privacy manifest (`privacy.toml` at the repository root), compiled into `sirrd`.
//!
//! It declares every column the server stores and every field it handles in memory only, with
//! purpose, legal basis, retention and who can see it. Two promises rest on it:
//! - it is **complete**: [`Manifest::check_schema`] compares it with the tables a freshly
//!   migrated database really has, both ways, and the test suite fails on any difference;
//! - it is **what people read**: `sirrd privacy-policy` renders it ([`Manifest::markdown`],
//!   [`Manifest::html`]), and `docs/TRANSPARENCY.md` is [`Manifest::transparency`]'s output.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

/// The manifest as shipped with this build.
pub const MANIFEST: &str = include_str!("../../../privacy.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub version: u32,
    pub tables: BTreeMap<String, Table>,
    pub memory: BTreeMap<String, Field>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub about: String,
    pub columns: BTreeMap<String, Field>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub what: String,
    pub purpose: String,
    pub basis: Basis,
    pub retention: String,
    pub personal: bool,
    /// Whether the operator could produce it, legibly, for one account if compelled.
    pub producible: bool,
    pub disclosed: String,
}

/// The legal basis of a processing (GDPR article 6(1)).
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    Contract,
    LegitimateInterest,
    Consent,
    LegalObligation,
}

impl Basis {
    fn plain(self) -> &'static str {
        match self {
            Basis::Contract => "needed to provide the service you asked for",
            Basis::LegitimateInterest => "needed to keep the service safe (legitimate interest)",
            Basis::Consent => "only if you turned it on",
            Basis::LegalObligation => "required by law",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("privacy manifest does not parse: {0}")]
    Parse(String),
    #[error("the privacy manifest and the database disagree:\n{0}")]
    Mismatch(String),
}

impl Manifest {
    pub fn load() -> Result<Manifest, ManifestError> {
        toml::from_str(MANIFEST).map_err(|e| ManifestError::Parse(e.to_string()))
    }

    /// Compare with the real schema (table → columns): every column must be declared, and every
    /// declaration must name a real column.
    pub fn check_schema(&self, schema: &BTreeMap<String, Vec<String>>) -> Result<(), ManifestError> {
        let mut problems = String::new();
        for (table, columns) in schema {
            let declared = self.tables.get(table);
            for c in columns {
                if declared.is_none_or(|t| !t.columns.contains_key(c)) {
                    let _ = writeln!(problems, "- column {table}.{c} is stored but not declared");
                }
            }
        }
        for (table, t) in &self.tables {
            for c in t.columns.keys() {
                if !schema.get(table).is_some_and(|cols| cols.contains(c)) {
                    let _ = writeln!(
                        problems,
                        "- {table}.{c} is declared but the database has no such column"
                    );
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::Mismatch(problems))
        }
    }

    fn fields(&self) -> impl Iterator<Item = (String, &Field)> {
        let stored = self
            .tables
            .iter()
            .flat_map(|(t, table)| table.columns.iter().map(move |(c, f)| (format!("{t}.{c}"), f)));
        let memory = self.memory.iter().map(|(n, f)| (format!("(in memory) {n}"), f));
        stored.chain(memory)
    }

    /// The policy as Markdown, for people who are not lawyers.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# What this Sirr server keeps about you\n");
        let _ = writeln!(
            out,
            "Your messages are end-to-end encrypted: the server stores them only until your devices \
             fetch them, and cannot read them. This page lists everything else it keeps, why, and \
             for how long. It is generated from the server's privacy manifest (version {}), which \
             the server's tests check against its database, column by column.\n",
            self.version
        );
        for (name, table) in &self.tables {
            let _ = writeln!(out, "## {name}\n\n{}\n", table.about);
            for (col, f) in &table.columns {
                field_md(&mut out, col, f);
            }
        }
        let _ = writeln!(out, "## Handled in memory only (never written to disk)\n");
        for (name, f) in &self.memory {
            field_md(&mut out, name, f);
        }
        out
    }

    /// The same page as standalone HTML.
    pub fn html(&self) -> String {
        let mut out = String::from(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>What this Sirr server keeps about you</title></head><body>\n",
        );
        for line in self.markdown().lines() {
            if let Some(h) = line.strip_prefix("## ") {
                let _ = writeln!(out, "<h2>{}</h2>", esc(h));
            } else if let Some(h) = line.strip_prefix("# ") {
                let _ = writeln!(out, "<h1>{}</h1>", esc(h));
            } else if let Some(item) = line.strip_prefix("- ") {
                let _ = writeln!(out, "<li>{}</li>", esc(item).replace("**", ""));
            } else if !line.is_empty() {
                let _ = writeln!(out, "<p>{}</p>", esc(line).replace("**", ""));
            }
        }
        out.push_str("</body></html>\n");
        out
    }

    /// What the operator could hand over about one account if compelled: the fields marked
    /// producible, and, for contrast, what it could not.
    pub fn transparency(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# What we could hand over\n\n<!-- Generated by `sirrd privacy-policy --format transparency` \
             from privacy.toml; a test keeps it in sync. -->\n\n\
             If compelled by a valid legal order about one account, the operator of a Sirr server \
             could produce the following, and nothing else. Message content is end-to-end \
             encrypted and undelivered messages are deleted after delivery or 30 days, so none can \
             be produced. (For comparison, the most private messengers publish that they can \
             produce only an account's creation time and last connection time.)\n"
        );
        let _ = writeln!(out, "## Could be produced\n");
        for (name, f) in self.fields().filter(|(_, f)| f.producible) {
            let _ = writeln!(out, "- `{name}`: {} (kept: {}).", f.what, lower(&f.retention));
        }
        let _ = writeln!(out, "\n## Could not be produced\n");
        for (name, f) in self.fields().filter(|(_, f)| !f.producible) {
            let _ = writeln!(out, "- `{name}`: {}.", f.what);
        }
        out
    }
}

/// Columns whose bytes are end-to-end encrypted: exported as their size, not their bytes.
const CIPHERTEXT: &[(&str, &str)] = &[("payloads", "payload")];

/// The data export of one account: every manifest table with its rows about the account, each
/// value with what it is. Fails if storage returned a table or column the manifest does not
/// declare (which the schema test also catches), so nothing is exported unexplained.
pub fn export(
    manifest: &Manifest,
    account: sirr_proto::AccountId,
    tables: &BTreeMap<String, sirr_store::ExportTable>,
    now_ms: u64,
) -> Result<serde_json::Value, ManifestError> {
    use serde_json::{Value, json};
    let mut out_tables = serde_json::Map::new();
    for (name, table) in &manifest.tables {
        let Some((columns, rows)) = tables.get(name) else {
            return Err(ManifestError::Mismatch(format!(
                "- table {name} is missing from the export"
            )));
        };
        let mut out_rows = Vec::new();
        for row in rows {
            let mut obj = serde_json::Map::new();
            for (col, v) in columns.iter().zip(row) {
                let field = table.columns.get(col).ok_or_else(|| {
                    ManifestError::Mismatch(format!("- column {name}.{col} is exported but not declared"))
                })?;
                let value = match v {
                    sirr_store::ExportValue::Ciphertext { bytes } => {
                        json!(format!("{bytes} bytes of end-to-end encrypted ciphertext"))
                    }
                    sirr_store::ExportValue::Blob(b)
                        if CIPHERTEXT.contains(&(name.as_str(), col.as_str())) =>
                    {
                        json!(format!("{} bytes of end-to-end encrypted ciphertext", b.len()))
                    }
                    sirr_store::ExportValue::Blob(b) => json!(hex::encode(b)),
                    sirr_store::ExportValue::Integer(i) => json!(i),
                    sirr_store::ExportValue::Text(t) => json!(t),
                    sirr_store::ExportValue::Null => Value::Null,
                };
                obj.insert(col.clone(), json!({ "value": value, "what": field.what }));
            }
            out_rows.push(Value::Object(obj));
        }
        out_tables.insert(name.clone(), json!({ "about": table.about, "rows": out_rows }));
    }
    let memory: serde_json::Map<String, Value> = manifest
        .memory
        .iter()
        .map(|(n, f)| (n.clone(), json!({ "what": f.what, "retention": f.retention })))
        .collect();
    Ok(json!({
        "format": "sirr-account-export-v1",
        "manifest_version": manifest.version,
        "account": account.to_string(),
        "exported_at_ms": now_ms,
        "tables": out_tables,
        "handled_in_memory_only": memory,
        "disclosures": [],
    }))
}

fn lower(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn field_md(out: &mut String, name: &str, f: &Field) {
    let _ = writeln!(out, "- **{}** (`{name}`)", f.what);
    let _ = writeln!(out, "  - Why: {}; {}.", f.purpose, f.basis.plain());
    let _ = writeln!(out, "  - Kept: {}.", f.retention);
    let shared = if f.disclosed == "never" {
        "never shared with anyone".to_owned()
    } else {
        format!("shared: {}", lower(&f.disclosed))
    };
    let _ = writeln!(
        out,
        "  - {}{}.",
        upper(&shared),
        if f.personal { "" } else { "; not personal data" }
    );
}

fn upper(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_parses_and_every_field_says_everything() {
        let m = Manifest::load().unwrap();
        for (name, f) in m.fields() {
            for (what, v) in [
                ("what", &f.what),
                ("purpose", &f.purpose),
                ("retention", &f.retention),
            ] {
                assert!(!v.trim().is_empty(), "{name}: empty {what}");
            }
        }
    }

    #[test]
    fn a_missing_or_invented_column_is_reported() {
        let m = Manifest::load().unwrap();
        let mut schema: BTreeMap<String, Vec<String>> = m
            .tables
            .iter()
            .map(|(t, table)| (t.clone(), table.columns.keys().cloned().collect()))
            .collect();
        assert!(m.check_schema(&schema).is_ok());
        schema.get_mut("accounts").unwrap().push("last_ip".into());
        let e = m.check_schema(&schema).unwrap_err().to_string();
        assert!(e.contains("accounts.last_ip is stored but not declared"), "{e}");
        schema
            .get_mut("accounts")
            .unwrap()
            .retain(|c| c != "last_ip" && c != "created_day");
        let e = m.check_schema(&schema).unwrap_err().to_string();
        assert!(e.contains("accounts.created_day is declared"), "{e}");
    }

    #[tokio::test]
    async fn every_stored_column_is_declared_and_every_declaration_is_stored() {
        use sirr_store::{QueueListener, QueuedMessage, Store};
        struct Nobody;
        impl QueueListener for Nobody {
            fn queued(&self, _: sirr_store::DeviceKey, _: &QueuedMessage) {}
        }
        let dir = tempfile::tempdir().unwrap();
        let store = sirr_store::sqlite::SqliteStore::open(
            &dir.path().join("sirr.db"),
            Default::default(),
            std::sync::Arc::new(Nobody),
        )
        .unwrap();
        let schema = store.schema().await.unwrap();
        assert!(schema.len() >= 8, "{schema:?}");
        if let Err(e) = Manifest::load().unwrap().check_schema(&schema) {
            panic!("{e}");
        }
    }

    #[test]
    fn the_policy_renders_every_field() {
        let m = Manifest::load().unwrap();
        let md = m.markdown();
        let html = m.html();
        for (_, f) in m.fields() {
            assert!(md.contains(&f.what), "{}", f.what);
            assert!(html.contains(&esc(&f.what)), "{}", f.what);
        }
        assert!(html.starts_with("<!doctype html>"));
    }

    #[test]
    fn transparency_md_is_generated_from_the_manifest() {
        let m = Manifest::load().unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/TRANSPARENCY.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == m.transparency(),
            "docs/TRANSPARENCY.md is stale: run `sirrd privacy-policy --format transparency > docs/TRANSPARENCY.md`"
        );
    }
}

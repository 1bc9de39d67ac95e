//! The readable side of a data export: the server's JSON rendered as one HTML page a person
//! can read, in their language.
//!
//! [`html`] is pure (no IO, no clock, no network): the CLI calls it today and the web client
//! will call it too. The page promises:
//! - a summary first, then every table the server sent, row by row, each field labelled in
//!   plain words and described by the manifest's own text; every top-level part of the export
//!   has an element whose `id` is its key, and a part this build does not know is shown as raw
//!   JSON rather than dropped;
//! - times (`*_ms`, `server_ts`, `expires_at`, milliseconds since 1970) as `<time>` elements
//!   with an ISO-8601 UTC `datetime` and a date in the page's language; day numbers (`*_day`,
//!   days since 1970) as dates; never the raw number;
//! - long hex or base64 values folded (a prefix, the full value in a `<details>`);
//! - numbers and phone numbers kept left-to-right on a right-to-left page;
//! - one self-contained file: inline CSS, no script, no external request, every string from
//!   the export or the device escaped.

mod i18n;

use std::fmt::Write as _;

use serde_json::Value;

use i18n::Strings;
pub use i18n::{Lang, UnknownLang};

/// What the reader's own device knows and the server does not, and how to write the page.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// This account's phone number: the server holds only a keyed hash of it.
    pub phone: &'a str,
    /// (device number, name) for each device name this device opened from its sealed form: the
    /// server holds only the sealed bytes, which the page shows next to the name they open to,
    /// so the reader sees both what is held and what it means.
    pub device_names: &'a [(u32, String)],
    pub lang: Lang,
    /// When the page is made, in milliseconds since 1970 (the caller's clock).
    pub generated_at_ms: u64,
}

/// The export's top-level keys this page lays out itself; any other is shown as raw JSON.
const KNOWN: &[&str] = &[
    "format",
    "manifest_version",
    "account",
    "exported_at_ms",
    "tables",
    "handled_in_memory_only",
    "disclosures",
];

/// The order the page shows tables in, and each table's columns in: what a person looks for
/// first (their account, devices, consents, disclosures, standing) before the machinery. A table
/// or column not listed follows the listed ones, in the order the export has it.
const ORDER: &[(&str, &[&str])] = &[
    (
        "accounts",
        &[
            "id",
            "created_day",
            "last_seen_day",
            "next_device",
            "phone_key",
            "access_key_hash",
            "reglock_hash",
            "reglock_failures",
        ],
    ),
    (
        "devices",
        &[
            "device",
            "created_day",
            "sealed_name",
            "secret_hash",
            "key",
            "account",
        ],
    ),
    ("consents", &["seq", "at_ms", "purpose", "granted", "account"]),
    (
        "disclosures",
        &[
            "seq",
            "at_ms",
            "recipient",
            "what",
            "prev_hash",
            "hash",
            "account",
        ],
    ),
    (
        "abuse_decisions",
        &["id", "at_ms", "action", "by", "reasons", "account"],
    ),
    ("appeals", &["id", "at_ms", "text", "account"]),
    ("queue", &["seq", "device", "payload_id"]),
    (
        "payloads",
        &[
            "id",
            "message_id",
            "server_ts",
            "expires_at",
            "sender_account",
            "sender_device",
            "payload",
            "franking",
        ],
    ),
    (
        "key_packages",
        &["id", "device", "last_resort", "expires_at", "bytes"],
    ),
    ("device_lists", &["version", "list", "account"]),
    ("conversations", &["id", "epoch", "used_day", "member_hash"]),
    (
        "verifications",
        &["phone_key", "expires_at", "attempts", "code_hash"],
    ),
    ("reported_messages", &["hash", "expires_at"]),
];

/// Where `name` goes in `order` (unlisted names last, keeping their own order under a stable
/// sort).
fn rank(order: impl IntoIterator<Item = &'static str>, name: &str) -> usize {
    order.into_iter().position(|n| n == name).unwrap_or(usize::MAX)
}

/// Values longer than this (hex, base64) are folded.
const FOLD_OVER: usize = 24;
/// How much of a folded value stays visible.
const FOLD_PREFIX: usize = 16;

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:64rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5;color:#111}\
table{border-collapse:collapse;margin:.5rem 0}\
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:start;vertical-align:top}\
thead th,.summary th{background:#f3f3f3}\
.scroll{overflow-x:auto}\
code,.full{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em}\
.full{display:block;user-select:all;word-break:break-all;white-space:pre-wrap;\
background:#f6f6f6;padding:.25rem;margin-top:.25rem}\
details summary{cursor:pointer}\
.about,.what,.note{color:#444}\
.none{color:#777}\
ul{margin:0;padding-inline-start:1.2rem}";

/// Render an account export (as returned by the server) as a standalone HTML page.
pub fn html(export: &Value, local: &Local<'_>) -> String {
    let lang = local.lang;
    let s = lang.strings();
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"{}\" dir=\"{}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n<p>{}</p>\n",
        lang.code(),
        lang.dir(),
        esc(s.title),
        esc(s.heading),
        esc(s.intro),
    );
    if !s.english_note.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(s.english_note));
    }
    summary(&mut out, export, local);
    tables(&mut out, export, local);
    listed_disclosures(&mut out, export, lang);
    memory(&mut out, export, s);
    about(&mut out, export, local);
    other(&mut out, export, s);
    out.push_str("</body></html>\n");
    out
}

/// The rows of one exported table (empty if the table is absent).
fn rows<'v>(export: &'v Value, table: &str) -> &'v [Value] {
    export["tables"][table]["rows"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// One field's value in a row.
fn field<'v>(row: &'v Value, column: &str) -> &'v Value {
    &row[column]["value"]
}

fn has_table(export: &Value, table: &str) -> bool {
    export["tables"].get(table).is_some()
}

fn summary(out: &mut String, export: &Value, local: &Local<'_>) {
    let (lang, s) = (local.lang, local.lang.strings());
    let _ = writeln!(
        out,
        "<section id=\"summary\"><h2>{}</h2>\n<table class=\"summary\">",
        esc(s.summary)
    );
    let row = |out: &mut String, id: &str, label: &str, value: &str| {
        let id = if id.is_empty() {
            String::new()
        } else {
            format!(" id=\"{}\"", esc(id))
        };
        let _ = writeln!(
            out,
            "<tr{id}><th scope=\"row\">{}</th><td>{value}</td></tr>",
            esc(label)
        );
    };
    row(
        out,
        "",
        s.phone,
        &format!("<bdi dir=\"ltr\">{}</bdi>", esc(local.phone)),
    );
    row(
        out,
        "account",
        s.account,
        &value_html("", "", &export["account"], lang),
    );
    let account = rows(export, "accounts").first().unwrap_or(&Value::Null);
    if account.is_object() {
        row(
            out,
            "",
            s.created,
            &value_html("accounts", "created_day", field(account, "created_day"), lang),
        );
        row(
            out,
            "",
            s.last_seen,
            &value_html("accounts", "last_seen_day", field(account, "last_seen_day"), lang),
        );
        if account.get("reglock_hash").is_some() {
            let on = !field(account, "reglock_hash").is_null();
            row(out, "", s.reglock, esc(if on { s.on } else { s.off }).as_str());
        }
    }

    let devices = rows(export, "devices");
    let mut list = format!("{}<ul>", num(devices.len()));
    for d in devices {
        let number = field(d, "device").as_u64();
        let name = number.and_then(|n| {
            local
                .device_names
                .iter()
                .find(|(id, _)| u64::from(*id) == n)
                .map(|(_, name)| name.as_str())
        });
        let _ = write!(
            list,
            "<li>{} {}: {} ({} {})</li>",
            esc(s.device),
            number.map(num).unwrap_or_else(|| none(s)),
            name.map(|n| format!("<bdi>{}</bdi>", esc(n)))
                .unwrap_or_else(|| format!("<span class=\"none\">{}</span>", esc(s.no_name))),
            esc(s.added),
            value_html("devices", "created_day", field(d, "created_day"), lang),
        );
    }
    list.push_str("</ul>");
    row(out, "", s.devices, &list);

    row(
        out,
        "",
        s.conversations,
        &num(rows(export, "conversations").len()),
    );
    // The queue holds rows for this account's devices and for copies of what it sent to others;
    // the devices table's storage keys tell them apart.
    let keys: Vec<&Value> = devices.iter().map(|d| field(d, "key")).collect();
    let waiting = rows(export, "queue")
        .iter()
        .filter(|q| keys.contains(&field(q, "device")))
        .count();
    row(out, "", s.queued, &num(waiting));
    let sent = rows(export, "payloads")
        .iter()
        .filter(|p| field(p, "sender_account") == &export["account"])
        .count();
    row(out, "", s.sent_waiting, &num(sent));

    // Consents: the latest change per purpose is in force; none means off.
    let mut changes: Vec<&Value> = rows(export, "consents").iter().collect();
    changes.sort_by_key(|c| field(c, "seq").as_u64());
    let mut purposes: Vec<&str> = sirr_proto::Purpose::ALL.iter().map(|p| p.name()).collect();
    for c in &changes {
        if let Some(p) = field(c, "purpose").as_str()
            && !purposes.contains(&p)
        {
            purposes.push(p);
        }
    }
    let mut list = String::from("<ul>");
    for p in purposes {
        let latest = changes
            .iter()
            .rev()
            .find(|c| field(c, "purpose").as_str() == Some(p));
        let state = match latest {
            None => esc(s.never_changed),
            Some(c) => {
                let on = field(c, "granted").as_i64().is_some_and(|g| g != 0);
                format!(
                    "{} {} {}",
                    esc(if on { s.on } else { s.off }),
                    esc(s.since),
                    value_html("consents", "at_ms", field(c, "at_ms"), lang)
                )
            }
        };
        let _ = write!(list, "<li>{}: {state}</li>", esc(lang.term(p).unwrap_or(p)));
    }
    list.push_str("</ul>");
    row(out, "", s.consents, &list);

    row(out, "", s.disclosures, &num(rows(export, "disclosures").len()));
    if has_table(export, "abuse_decisions") {
        let latest = rows(export, "abuse_decisions")
            .iter()
            .max_by_key(|d| (field(d, "at_ms").as_u64(), field(d, "id").as_u64()));
        let standing = match latest {
            None => esc(s.no_decision),
            Some(d) => format!(
                "{} ({}, {})",
                value_html("abuse_decisions", "action", field(d, "action"), lang),
                value_html("abuse_decisions", "at_ms", field(d, "at_ms"), lang),
                value_html("abuse_decisions", "by", field(d, "by"), lang),
            ),
        };
        row(out, "", s.abuse, &standing);
    }
    let appeals = rows(export, "appeals");
    if !appeals.is_empty() {
        let last = appeals.iter().filter_map(|a| field(a, "at_ms").as_u64()).max();
        let when = last
            .map(|ms| format!(" ({})", time_html(ms, s)))
            .unwrap_or_default();
        row(out, "", s.appeals, &format!("{}{when}", num(appeals.len())));
    }
    out.push_str("</table></section>\n");
}

fn tables(out: &mut String, export: &Value, local: &Local<'_>) {
    let (lang, s) = (local.lang, local.lang.strings());
    let _ = writeln!(out, "<section id=\"tables\"><h2>{}</h2>", esc(s.details));
    let Some(tables) = export["tables"].as_object() else {
        out.push_str("</section>\n");
        return;
    };
    let mut tables: Vec<(&String, &Value)> = tables.iter().collect();
    tables.sort_by_key(|(name, _)| rank(ORDER.iter().map(|(t, _)| *t), name));
    for (name, t) in tables {
        let _ = writeln!(
            out,
            "<section id=\"table-{}\"><h3>{}</h3>",
            esc(name),
            esc(lang.table(name).unwrap_or(name))
        );
        if let Some(about) = t["about"].as_str() {
            let _ = writeln!(
                out,
                "<p class=\"about\" lang=\"en\" dir=\"ltr\">{}</p>",
                esc(about)
            );
        }
        let rows = t["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
        if rows.is_empty() {
            let _ = writeln!(out, "<p>{}</p>", esc(s.nothing_held));
        }
        // Every column any row has, in the order first seen.
        let mut columns: Vec<&str> = Vec::new();
        for row in rows {
            for col in row.as_object().into_iter().flat_map(|o| o.keys()) {
                if !columns.contains(&col.as_str()) {
                    columns.push(col);
                }
            }
        }
        let listed = ORDER.iter().find(|(t, _)| t == name).map_or(&[][..], |(_, c)| *c);
        columns.sort_by_key(|c| rank(listed.iter().copied(), c));
        if !rows.is_empty() {
            out.push_str("<div class=\"scroll\"><table><thead><tr>");
            for col in &columns {
                let _ = write!(
                    out,
                    "<th scope=\"col\" data-column=\"{}\">{}</th>",
                    esc(col),
                    esc(&label(lang, name, col))
                );
            }
            out.push_str("</tr></thead><tbody>\n");
            for row in rows {
                out.push_str("<tr>");
                for col in &columns {
                    let v = field(row, col);
                    let mut cell = value_html(name, col, v, lang);
                    if name == "devices" && *col == "sealed_name" && !v.is_null() {
                        let device = field(row, "device").as_u64();
                        if let Some((_, opened)) = local
                            .device_names
                            .iter()
                            .find(|(d, _)| Some(u64::from(*d)) == device)
                        {
                            let _ =
                                write!(cell, "<div>{} &quot;{}&quot;</div>", esc(s.opens_as), esc(opened));
                        }
                    }
                    let _ = write!(out, "<td>{cell}</td>");
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</tbody></table></div>\n");
            let _ = write!(
                out,
                "<details class=\"fields\"><summary>{}</summary><dl>",
                esc(s.fields)
            );
            for col in &columns {
                let what = rows
                    .iter()
                    .find_map(|r| r[*col]["what"].as_str())
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    "<dt>{} <code dir=\"ltr\">{}</code></dt><dd class=\"what\" lang=\"en\" dir=\"ltr\">{}</dd>",
                    esc(&label(lang, name, col)),
                    esc(col),
                    esc(what)
                );
            }
            out.push_str("</dl></details>\n");
        }
        out.push_str("</section>\n");
    }
    out.push_str("</section>\n");
}

/// The export's own list of disclosures (flat objects), laid out like the ledger table.
fn listed_disclosures(out: &mut String, export: &Value, lang: Lang) {
    let Some(v) = export.get("disclosures") else {
        return;
    };
    let s = lang.strings();
    let _ = writeln!(
        out,
        "<section id=\"disclosures\"><h2>{}</h2>",
        esc(s.listed_disclosures)
    );
    match v.as_array() {
        Some(entries) if entries.is_empty() => {
            let _ = writeln!(out, "<p>{}</p>", esc(s.nothing_held));
        }
        Some(entries) => {
            out.push_str("<div class=\"scroll\"><table>\n");
            for e in entries {
                out.push_str("<tr>");
                for (k, v) in e.as_object().into_iter().flatten() {
                    let _ = write!(
                        out,
                        "<th scope=\"row\">{}</th><td>{}</td>",
                        esc(&label(lang, "disclosures", k)),
                        value_html("disclosures", k, v, lang)
                    );
                }
                if !e.is_object() {
                    let _ = write!(out, "<td>{}</td>", value_html("", "", e, lang));
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</table></div>\n");
        }
        None => raw(out, v),
    }
    out.push_str("</section>\n");
}

fn memory(out: &mut String, export: &Value, s: &Strings) {
    let Some(mem) = export.get("handled_in_memory_only") else {
        return;
    };
    let _ = writeln!(
        out,
        "<section id=\"handled_in_memory_only\"><h2>{}</h2>\n<div class=\"scroll\"><table>\
         <thead><tr><th scope=\"col\">{}</th><th scope=\"col\">{}</th><th scope=\"col\">{}</th></tr></thead><tbody>",
        esc(s.memory),
        esc(s.field),
        esc(s.what),
        esc(s.kept)
    );
    for (name, f) in mem.as_object().into_iter().flatten() {
        let _ = writeln!(
            out,
            "<tr><td><code dir=\"ltr\">{}</code></td><td lang=\"en\" dir=\"ltr\">{}</td><td lang=\"en\" dir=\"ltr\">{}</td></tr>",
            esc(name),
            esc(&show(&f["what"])),
            esc(&show(&f["retention"]))
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn about(out: &mut String, export: &Value, local: &Local<'_>) {
    let (lang, s) = (local.lang, local.lang.strings());
    let _ = writeln!(
        out,
        "<section id=\"about-export\"><h2>{}</h2>\n<table class=\"summary\">",
        esc(s.about_export)
    );
    let mut row = |id: &str, label: &str, value: String| {
        let _ = writeln!(
            out,
            "<tr id=\"{}\"><th scope=\"row\">{}</th><td>{value}</td></tr>",
            esc(id),
            esc(label)
        );
    };
    for (key, label) in [
        ("format", s.format),
        ("manifest_version", s.manifest_version),
        ("exported_at_ms", s.exported_at),
    ] {
        if let Some(v) = export.get(key) {
            row(key, label, value_html("", key, v, lang));
        }
    }
    row("generated", s.generated_at, time_html(local.generated_at_ms, s));
    out.push_str("</table></section>\n");
}

/// Top-level parts this build does not know, shown as they came rather than dropped.
fn other(out: &mut String, export: &Value, s: &Strings) {
    let unknown: Vec<(&String, &Value)> = export
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .collect();
    if unknown.is_empty() {
        return;
    }
    let _ = writeln!(out, "<section id=\"other\"><h2>{}</h2>", esc(s.other));
    for (k, v) in unknown {
        let _ = writeln!(
            out,
            "<div id=\"{}\"><h3><code dir=\"ltr\">{}</code></h3>",
            esc(k),
            esc(k)
        );
        raw(out, v);
        out.push_str("</div>\n");
    }
    out.push_str("</section>\n");
}

fn raw(out: &mut String, v: &Value) {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    let _ = writeln!(out, "<pre class=\"full\" dir=\"ltr\">{}</pre>", esc(&text));
}

/// A column's label in plain words; an unknown column is named by its key.
fn label(lang: Lang, table: &str, column: &str) -> String {
    lang.column(table, column)
        .map(str::to_owned)
        .unwrap_or_else(|| column.replace('_', " "))
}

/// How a column's value is to be read.
enum Kind {
    /// Milliseconds since 1970.
    Millis,
    /// Days since 1970.
    Day,
    /// 0 or 1.
    Flag,
    /// A stored word with a plain-words translation (purpose, action, who decided).
    Term,
    /// A JSON array of signal names, as text.
    Names,
    Plain,
}

fn kind(table: &str, column: &str) -> Kind {
    match (table, column) {
        (_, c) if c.ends_with("_ms") || c == "server_ts" || c == "expires_at" => Kind::Millis,
        (_, c) if c.ends_with("_day") => Kind::Day,
        ("key_packages", "last_resort") | ("consents", "granted") => Kind::Flag,
        ("consents", "purpose") | ("abuse_decisions", "action" | "by") => Kind::Term,
        ("abuse_decisions", "reasons") => Kind::Names,
        _ => Kind::Plain,
    }
}

/// One value, escaped and formatted for reading.
fn value_html(table: &str, column: &str, v: &Value, lang: Lang) -> String {
    let s = lang.strings();
    if v.is_null() {
        return none(s);
    }
    match kind(table, column) {
        Kind::Millis => {
            if let Some(ms) = v.as_u64() {
                return time_html(ms, s);
            }
        }
        Kind::Day => {
            if let Some(day) = v.as_i64() {
                return date_html(day, s);
            }
        }
        Kind::Flag => match v.as_i64() {
            Some(0) => return esc(s.no),
            Some(_) => return esc(s.yes),
            None => {}
        },
        Kind::Term => {
            if let Some(word) = v.as_str().and_then(|w| lang.term(w)) {
                return esc(word);
            }
        }
        Kind::Names => {
            if let Some(names) = v
                .as_str()
                .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
            {
                if names.is_empty() {
                    return none(s);
                }
                let list: Vec<String> = names
                    .iter()
                    .map(|n| format!("<code dir=\"ltr\">{}</code>", esc(n)))
                    .collect();
                return list.join(s.list_sep);
            }
        }
        Kind::Plain => {}
    }
    match v {
        Value::Number(n) => format!("<bdi dir=\"ltr\">{}</bdi>", esc(&n.to_string())),
        Value::String(t) => text_html(t, s),
        Value::Bool(b) => esc(if *b { s.yes } else { s.no }),
        other => {
            let text = other.to_string();
            format!("<code dir=\"ltr\">{}</code>", esc(&text))
        }
    }
}

fn text_html(t: &str, s: &Strings) -> String {
    if let Some(n) = t
        .strip_suffix(" bytes of end-to-end encrypted ciphertext")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return esc(s.ciphertext).replace("{n}", &format!("<bdi dir=\"ltr\">{n}</bdi>"));
    }
    let token = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b));
    if token && t.chars().count() > FOLD_OVER {
        let prefix: String = t.chars().take(FOLD_PREFIX).collect();
        return format!(
            "<details class=\"long\" dir=\"ltr\"><summary><code>{}…</code> <span class=\"none\">({})</span></summary>\
             <code class=\"full\">{}</code></details>",
            esc(&prefix),
            esc(s.full_value),
            esc(t)
        );
    }
    if token {
        return format!("<code dir=\"ltr\">{}</code>", esc(t));
    }
    format!("<bdi>{}</bdi>", esc(t))
}

fn none(s: &Strings) -> String {
    format!("<span class=\"none\">{}</span>", esc(s.none))
}

fn num(n: impl std::fmt::Display) -> String {
    format!("<bdi dir=\"ltr\">{n}</bdi>")
}

/// An instant as `<time datetime="2026-12-04T19:10:00Z">4 Dec 2026, 19:10 UTC</time>`.
fn time_html(ms: u64, s: &Strings) -> String {
    let secs = ms / 1000;
    let Ok(days) = i64::try_from(secs / 86_400) else {
        return num(ms);
    };
    let rem = secs % 86_400;
    let (y, m, d) = civil(days);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    format!(
        "<time datetime=\"{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z\">{}{}<bdi dir=\"ltr\">{hh:02}:{mm:02} UTC</bdi></time>",
        date_text(y, m, d, s),
        s.date_time_sep
    )
}

/// A day number as `<time datetime="2026-12-04">4 Dec 2026</time>`.
fn date_html(day: i64, s: &Strings) -> String {
    let (y, m, d) = civil(day);
    format!(
        "<time datetime=\"{y:04}-{m:02}-{d:02}\">{}</time>",
        date_text(y, m, d, s)
    )
}

fn date_text(y: i64, m: u32, d: u32, s: &Strings) -> String {
    let month = s.months[(m as usize).saturating_sub(1).min(11)];
    format!("{d} {} {y}", esc(month))
}

/// The proleptic Gregorian (year, month, day) of a day number (Howard Hinnant's
/// civil-from-days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2026-11-18 11:06:40 UTC.
    const NOV_18: u64 = 1_795_000_000_000;

    fn f(value: Value) -> Value {
        json!({ "value": value, "what": "described by the manifest" })
    }

    fn sample() -> Value {
        json!({
            "format": "sirr-account-export-v1",
            "manifest_version": 3,
            "account": "ab".repeat(16),
            "exported_at_ms": NOV_18,
            "tables": {
                "accounts": { "about": "One row per account.", "rows": [{
                    "id": f(json!("ab".repeat(16))),
                    "created_day": f(json!(20_000)),
                    "last_seen_day": f(json!(20_775)),
                    "reglock_hash": f(Value::Null),
                }]},
                "devices": { "about": "Devices.", "rows": [{
                    "key": f(json!(7)),
                    "device": f(json!(1)),
                    "sealed_name": f(json!("5eed".repeat(12))),
                    "created_day": f(json!(20_000)),
                }]},
                "queue": { "about": "Queue.", "rows": [
                    { "seq": f(json!(1)), "device": f(json!(7)), "payload_id": f(json!(9)) },
                    { "seq": f(json!(2)), "device": f(json!(99)), "payload_id": f(json!(10)) },
                ]},
                "payloads": { "about": "Payloads.", "rows": [{
                    "id": f(json!(9)),
                    "sender_account": f(Value::Null),
                    "server_ts": f(json!(NOV_18 + 60_000)),
                    "payload": f(json!("120 bytes of end-to-end encrypted ciphertext")),
                }]},
                "consents": { "about": "Consents.", "rows": [
                    { "seq": f(json!(1)), "purpose": f(json!("last-seen")), "granted": f(json!(1)), "at_ms": f(json!(NOV_18 - 86_400_000)) },
                    { "seq": f(json!(2)), "purpose": f(json!("last-seen")), "granted": f(json!(0)), "at_ms": f(json!(NOV_18)) },
                ]},
                "conversations": { "about": "Conversations.", "rows": [] },
                "abuse_decisions": { "about": "Decisions.", "rows": [] },
            },
            "handled_in_memory_only": { "ip_address": { "what": "The IP address", "retention": "Never stored" } },
            "disclosures": [],
        })
    }

    fn page(export: &Value, lang: Lang, names: &[(u32, String)]) -> String {
        html(
            export,
            &Local {
                phone: "+15550000001",
                device_names: names,
                lang,
                generated_at_ms: NOV_18 + 3_600_000,
            },
        )
    }

    #[test]
    fn a_known_instant_reads_as_its_date_in_each_language() {
        let iso = "<time datetime=\"2026-11-18T11:06:40Z\">";
        for (lang, date) in [
            (Lang::En, "18 Nov 2026, "),
            (Lang::Ar, "18 نوفمبر 2026، "),
            (Lang::Ms, "18 November 2026, "),
        ] {
            let t = time_html(NOV_18, lang.strings());
            assert_eq!(
                t,
                format!("{iso}{date}<bdi dir=\"ltr\">11:06 UTC</bdi></time>"),
                "{lang:?}"
            );
            let p = page(&sample(), lang, &[]);
            assert!(p.contains(&t), "{lang:?}: the export time is on the page");
            assert!(!p.contains(&NOV_18.to_string()), "{lang:?}: no raw milliseconds");
        }
        assert_eq!(
            time_html(951_782_400_000, Lang::En.strings()),
            "<time datetime=\"2000-02-29T00:00:00Z\">29 Feb 2000, <bdi dir=\"ltr\">00:00 UTC</bdi></time>"
        );
    }

    #[test]
    fn a_day_number_reads_as_its_date() {
        assert_eq!(
            date_html(20_000, Lang::En.strings()),
            "<time datetime=\"2024-10-04\">4 Oct 2024</time>"
        );
        assert_eq!(
            date_html(0, Lang::Ms.strings()),
            "<time datetime=\"1970-01-01\">1 Januari 1970</time>"
        );
        assert_eq!(
            date_html(20_791, Lang::Ar.strings()),
            "<time datetime=\"2026-12-04\">4 ديسمبر 2026</time>"
        );
        let p = page(&sample(), Lang::En, &[]);
        assert!(p.contains("<time datetime=\"2024-10-04\">4 Oct 2024</time>"));
        assert!(!p.contains("20000") && !p.contains("20775"), "no raw day numbers");
    }

    #[test]
    fn a_long_hex_is_folded_with_the_full_value_kept() {
        let hex = "0123456789abcdef".repeat(4);
        let h = value_html("devices", "secret_hash", &json!(hex), Lang::En);
        assert!(h.starts_with("<details"), "{h}");
        assert!(h.contains("<summary><code>0123456789abcdef…</code>"), "{h}");
        assert!(h.contains(&format!("<code class=\"full\">{hex}</code>")), "{h}");
        // Short values and prose are not folded.
        assert_eq!(
            value_html("", "", &json!("abc123"), Lang::En),
            "<code dir=\"ltr\">abc123</code>"
        );
        let prose = "a long sentence of plain words that is not a token at all";
        assert_eq!(
            value_html("appeals", "text", &json!(prose), Lang::En),
            format!("<bdi>{prose}</bdi>")
        );
    }

    #[test]
    fn a_script_in_a_device_name_is_escaped() {
        let names = [(1, "<script>alert('x')</script>".to_owned())];
        let p = page(&sample(), Lang::En, &names);
        assert!(!p.contains("<script"), "{p}");
        assert!(p.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(p.contains("opens on your devices as &quot;&lt;script&gt;"));
        let mut e = sample();
        e["tables"]["accounts"]["about"] = json!("<img src=x onerror=alert(1)>");
        e["surprise"] = json!({ "<b>": "</pre><script>" });
        let p = page(&e, Lang::En, &[]);
        assert!(!p.contains("<img") && !p.contains("<script") && !p.contains("<b>"));
    }

    #[test]
    fn the_arabic_page_is_right_to_left_with_the_phone_left_to_right() {
        let p = page(&sample(), Lang::Ar, &[]);
        assert!(p.contains("<html lang=\"ar\" dir=\"rtl\">"));
        assert!(p.contains("<bdi dir=\"ltr\">+15550000001</bdi>"));
        assert!(p.contains("رقم الهاتف"));
        let en = page(&sample(), Lang::En, &[]);
        assert!(en.contains("<html lang=\"en\" dir=\"ltr\">"));
        assert!(page(&sample(), Lang::Ms, &[]).contains("<html lang=\"ms\" dir=\"ltr\">"));
    }

    #[test]
    fn the_summary_comes_first_and_counts_what_is_held() {
        let names = [(1, "laptop".to_owned())];
        let p = page(&sample(), Lang::En, &names);
        let summary = p.find("id=\"summary\"").unwrap();
        assert!(summary < p.find("id=\"tables\"").unwrap());
        let s = &p[summary..p.find("id=\"tables\"").unwrap()];
        assert!(
            s.contains("Device <bdi dir=\"ltr\">1</bdi>: <bdi>laptop</bdi>"),
            "{s}"
        );
        // One of the two queue rows is for her device (storage key 7).
        assert!(
            s.contains("Messages waiting for your devices</th><td><bdi dir=\"ltr\">1</bdi>"),
            "{s}"
        );
        // The later change is in force.
        assert!(
            s.contains("Last seen: Off since <time datetime=\"2026-11-18T11:06:40Z\">"),
            "{s}"
        );
        assert!(s.contains("Read receipts: Off (never changed)"), "{s}");
        assert!(s.contains("Registration lock</th><td>Off"), "{s}");
        assert!(s.contains("No decision about your account"), "{s}");
        assert!(!s.contains("Appeals"), "no appeals, no line");
        assert!(p.contains("120</bdi> bytes of end-to-end encrypted ciphertext"));
    }

    #[test]
    fn tables_and_columns_come_in_reading_order() {
        let p = page(&sample(), Lang::En, &[]);
        let at = |needle: &str| p.find(needle).unwrap_or_else(|| panic!("{needle}"));
        // The export has them alphabetically; the page puts the account first.
        assert!(at("id=\"table-accounts\"") < at("id=\"table-abuse_decisions\""));
        assert!(at("id=\"table-devices\"") < at("id=\"table-consents\""));
        assert!(at("id=\"table-consents\"") < at("id=\"table-queue\""));
        let accounts = &p[at("id=\"table-accounts\"")..];
        let col = |c: &str| accounts.find(&format!("data-column=\"{c}\"")).unwrap();
        assert!(col("id") < col("created_day") && col("created_day") < col("reglock_hash"));
    }

    #[test]
    fn every_part_and_field_of_the_export_is_on_the_page() {
        let mut e = sample();
        e["surprise"] = json!({ "new": "part" });
        let p = page(&e, Lang::Ms, &[]);
        for key in e.as_object().unwrap().keys() {
            assert!(p.contains(&format!("id=\"{key}\"")), "{key}");
        }
        for (name, t) in e["tables"].as_object().unwrap() {
            assert!(p.contains(&format!("id=\"table-{name}\"")), "{name}");
            for row in t["rows"].as_array().unwrap() {
                for col in row.as_object().unwrap().keys() {
                    assert!(p.contains(&format!("data-column=\"{col}\"")), "{name}.{col}");
                }
            }
        }
        assert!(
            p.contains("&quot;new&quot;: &quot;part&quot;"),
            "an unknown part is shown raw"
        );
        assert!(p.contains("Tiada apa-apa disimpan."), "an empty table says so");
    }
}

//! The readable side of a data export: the server's JSON rendered as one HTML page.

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

/// Render an account export (as returned by the server) as a standalone HTML report.
/// `device_names` are the names this device opened from their sealed form (device number,
/// name): the server holds only the sealed bytes, which the report shows next to the name
/// they open to, so the reader sees both what is held and what it means.
pub fn html(export: &Value, device_names: &[(u32, String)]) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Your Sirr data</title></head><body>\n",
    );
    out.push_str(&format!(
        "<h1>Everything the server holds about account {}</h1>\n<p>Exported at {} ms since 1970. \
         Your messages are not here: they are end-to-end encrypted and the server keeps them only \
         until your devices fetch them.</p>\n",
        esc(&show(&export["account"])),
        esc(&show(&export["exported_at_ms"]))
    ));
    if let Some(tables) = export["tables"].as_object() {
        for (name, t) in tables {
            out.push_str(&format!(
                "<h2>{}</h2>\n<p>{}</p>\n",
                esc(name),
                esc(&show(&t["about"]))
            ));
            let rows = t["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
            if rows.is_empty() {
                out.push_str("<p>Nothing held.</p>\n");
            }
            for row in rows {
                out.push_str("<table border=\"1\">\n");
                if let Some(fields) = row.as_object() {
                    for (col, f) in fields {
                        let mut value = show(&f["value"]);
                        if name == "devices" && col == "sealed_name" && !f["value"].is_null() {
                            let device = fields.get("device").and_then(|d| d["value"].as_u64());
                            if let Some((_, opened)) =
                                device_names.iter().find(|(d, _)| Some(u64::from(*d)) == device)
                            {
                                value.push_str(&format!(" (opens on your devices as \"{opened}\")"));
                            }
                        }
                        out.push_str(&format!(
                            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>\n",
                            esc(col),
                            esc(&value),
                            esc(&show(&f["what"]))
                        ));
                    }
                }
                out.push_str("</table><br>\n");
            }
        }
    }
    out.push_str("<h2>Handled in memory only</h2>\n<ul>\n");
    if let Some(mem) = export["handled_in_memory_only"].as_object() {
        for (name, f) in mem {
            out.push_str(&format!(
                "<li><b>{}</b>: {} ({})</li>\n",
                esc(name),
                esc(&show(&f["what"])),
                esc(&show(&f["retention"]))
            ));
        }
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}

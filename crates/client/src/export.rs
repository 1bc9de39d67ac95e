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
pub fn html(export: &Value) -> String {
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
                        out.push_str(&format!(
                            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>\n",
                            esc(col),
                            esc(&show(&f["value"])),
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

//! Least metadata: deleting an account removes every row tied to it, and no trace of it stays
//! in the database files (free pages, write-ahead log).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

type Snapshot = BTreeMap<String, Vec<String>>;

/// Every row of every table, rendered and sorted, read through a separate connection.
fn snapshot(data: &Path) -> Snapshot {
    let conn = rusqlite::Connection::open_with_flags(
        data.join("sirr.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = BTreeMap::new();
    for t in tables {
        let mut s = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
        let n = s.column_count();
        let mut rows: Vec<String> = s
            .query_map([], |r| {
                Ok((0..n)
                    .map(|i| match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                        other => format!("{other:?}"),
                    })
                    .collect::<Vec<_>>()
                    .join("|"))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        rows.sort();
        out.insert(t, rows);
    }
    out
}

#[test]
fn deleting_an_account_leaves_no_row_and_no_trace_on_disk() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, alice2, bob) = (
        dir.path().join("alice"),
        dir.path().join("alice2"),
        dir.path().join("bob"),
    );
    register(&server, &bob, "+15550400002");
    let before = snapshot(&server.data);

    // Alice arrives, with a distinctive device name, links a second device, and writes to bob
    // in a chat and a group; bob reads nothing, so her messages wait in his queue.
    let name = "alices-unmistakable-laptop";
    sirr_ok(
        &alice,
        &[
            "register",
            "--server",
            &server.url,
            "--phone",
            "+15550400001",
            "--code",
            "000000",
            "--name",
            name,
        ],
    );
    link_ok(&server, &alice2, &alice);
    sirr_ok(&alice, &["send", "+15550400002", "hello bob"]);
    // A long one too: its ciphertext spills into overflow pages, which a plain delete frees
    // without overwriting.
    sirr_ok(&alice, &["send", "+15550400002", &"long ".repeat(8_000)]);
    sirr_ok(&alice, &["group", "create", "pair", "+15550400002"]);
    sirr_ok(&alice, &["group", "send", "pair", "in the group"]);
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(&alice, &["whoami", "--json"])).unwrap();
    let account: sirr_proto::AccountId = who["account"].as_str().unwrap().parse().unwrap();
    let during = snapshot(&server.data);
    let sent: Vec<Vec<u8>> = {
        let conn = rusqlite::Connection::open_with_flags(
            server.data.join("sirr.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let mut s = conn
            .prepare("SELECT payload FROM queue WHERE sender_account = ?")
            .unwrap();
        s.query_map([&account.0[..]], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(sent.len() >= 3, "alice's messages wait for bob");
    assert!(during["devices"].iter().any(|r| r.contains(name)));

    // The needles, and a positive control: before the deletion the files do hold them.
    let mut needles: Vec<(&str, Vec<u8>)> = vec![
        ("account id", account.0.to_vec()),
        ("device name", name.as_bytes().to_vec()),
    ];
    for p in &sent {
        // Its first, middle and last bytes: a long payload spans several pages.
        for at in [40, p.len() / 2, p.len() - 40] {
            needles.push(("a message she sent", p[at..at + 24].to_vec()));
        }
    }
    let held = |needle: &[u8]| {
        files_under(&server.data)
            .iter()
            .any(|f| contains(&std::fs::read(f).unwrap(), needle))
    };
    for (what, needle) in &needles {
        assert!(
            held(needle),
            "control: her {what} is in the files before the deletion"
        );
    }
    needles.push(("phone number", b"15550400001".to_vec()));

    let out = sirr(&alice, &["account", "delete"]);
    assert!(!out.status.success(), "nothing is deleted without --yes");
    sirr_ok(&alice, &["account", "delete", "--yes"]);
    assert!(
        !alice.join("credentials.json").exists(),
        "the local state went too"
    );
    let out = sirr(&alice2, &["recv"]);
    assert!(!out.status.success(), "her other device's credential is gone");

    // Every table is as it was before she registered, except bob's one-time keys she used.
    let after = snapshot(&server.data);
    for (table, rows) in &after {
        if table == "key_packages" {
            assert!(
                rows.iter().all(|r| before[table].contains(r)),
                "only bob's keys remain"
            );
            continue;
        }
        assert_eq!(
            rows, &before[table],
            "table {table} differs from before alice registered"
        );
    }

    // And no trace of her in the files: her account id, device name, number or ciphertext.
    let files = files_under(&server.data);
    assert!(files.iter().any(|f| f.ends_with("sirr.db")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for (what, needle) in &needles {
            assert!(
                !contains(&bytes, needle),
                "her {what} is still in {}",
                f.display()
            );
        }
    }
    // Bob is unaffected, and the number can start afresh.
    sirr_ok(&bob, &["recv"]);
    register(&server, &dir.path().join("alice-again"), "+15550400001");
}

#[test]
fn the_export_holds_every_declared_field_about_the_account() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    register(&server, &bob, "+15550400012");
    sirr_ok(
        &alice,
        &[
            "register",
            "--server",
            &server.url,
            "--phone",
            "+15550400011",
            "--code",
            "000000",
            "--name",
            "alice-phone",
        ],
    );
    sirr_ok(
        &alice,
        &["send", "+15550400012", "the text itself is never in an export"],
    );
    let file = dir.path().join("export.json");
    let printed = sirr_ok(&alice, &["account", "export", "--out", file.to_str().unwrap()]);
    assert!(printed.contains("export.html"));
    let export: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(&alice, &["whoami", "--json"])).unwrap();
    assert_eq!(export["account"], who["account"]);

    // Field for field: every table and column of the manifest, nothing else.
    let manifest: toml::Value = toml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../privacy.toml")).unwrap(),
    )
    .unwrap();
    let declared = manifest["tables"].as_table().unwrap();
    let tables = export["tables"].as_object().unwrap();
    assert_eq!(
        tables.keys().collect::<Vec<_>>(),
        declared.keys().collect::<Vec<_>>(),
        "the export has exactly the manifest's tables"
    );
    let mut rows_seen = 0;
    for (name, t) in tables {
        let columns: Vec<&String> = declared[name]["columns"].as_table().unwrap().keys().collect();
        for row in t["rows"].as_array().unwrap() {
            rows_seen += 1;
            let mut got: Vec<&String> = row.as_object().unwrap().keys().collect();
            got.sort();
            assert_eq!(got, columns, "{name}: the exported fields are the declared ones");
            for (_, f) in row.as_object().unwrap() {
                assert!(!f["what"].as_str().unwrap().is_empty());
            }
        }
    }
    let count = |t: &str| tables[t]["rows"].as_array().unwrap().len();
    assert_eq!(count("accounts"), 1);
    assert_eq!(count("devices"), 1);
    assert_eq!(count("device_lists"), 1);
    assert!(count("key_packages") > 0 && count("queue") > 0 && count("conversation_members") == 1);
    assert!(rows_seen >= 6);
    // Bob's data is not in Alice's export; her message shows only as a size.
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("the text itself"));
    assert!(text.contains("bytes of end-to-end encrypted ciphertext"));
    let bob_who: serde_json::Value = serde_json::from_str(&sirr_ok(&bob, &["whoami", "--json"])).unwrap();
    let bob_id = bob_who["account"].as_str().unwrap();
    for t in ["accounts", "devices", "device_lists", "key_packages"] {
        assert!(!tables[t].to_string().contains(bob_id), "{t} leaks bob");
    }
    let html = std::fs::read_to_string(dir.path().join("export.html")).unwrap();
    assert!(html.contains("alice-phone") && html.starts_with("<!doctype html>"));
}

#[test]
fn an_operator_lookup_lands_in_the_ledger_and_tampering_is_detected() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let alice = dir.path().join("alice");
    register(&server, &alice, "+15550400021");
    assert!(sirr_ok(&alice, &["account", "disclosures"]).contains("never disclosed"));

    let admin = |reason: &str| {
        std::process::Command::new(bin("sirrd"))
            .args([
                "--data",
                server.data.to_str().unwrap(),
                "admin",
                "lookup",
                "+15550400021",
                "--reason",
                reason,
            ])
            .output()
            .unwrap()
    };
    let out = admin("");
    assert!(!out.status.success(), "no lookup without a reason");
    let out = admin("court order 2026/1234");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("accounts.created_day"), "{shown}");
    assert!(
        !shown.contains("phone_key"),
        "only producible fields are shown: {shown}"
    );
    admin("second request, same case");

    let listed = sirr_ok(&alice, &["account", "disclosures"]);
    assert!(
        listed.contains("1. ") && listed.contains("court order 2026/1234"),
        "{listed}"
    );
    assert!(
        listed.contains("2. ") && listed.contains("the server's operator"),
        "{listed}"
    );
    assert!(sirr_ok(&alice, &["account", "disclosures", "--verify"]).contains("verifies: 2 entries"));

    // The operator rewrites what the first entry said: the chain breaks.
    let db = rusqlite::Connection::open(server.data.join("sirr.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute(
        "UPDATE disclosures SET what = 'nothing happened' WHERE seq = 1",
        [],
    )
    .unwrap();
    let out = sirr(&alice, &["account", "disclosures", "--verify"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not verify at entry 1"), "{err}");

    // Rewriting it consistently (recomputing every hash) is caught too: this device had seen
    // the old head.
    let rows: Vec<(i64, i64, String, String)> = db
        .prepare("SELECT seq, at_ms, recipient, what FROM disclosures ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev = [0u8; 32];
    for (seq, at, recipient, what) in rows {
        let hash = sirr_proto::disclosure_hash(&prev, seq as u64, at as u64, &recipient, &what);
        db.execute(
            "UPDATE disclosures SET prev_hash = ?, hash = ? WHERE seq = ?",
            rusqlite::params![&prev[..], &hash[..], seq],
        )
        .unwrap();
        prev = hash;
    }
    let out = sirr(&alice, &["account", "disclosures", "--verify"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rewritten or removed"));
}

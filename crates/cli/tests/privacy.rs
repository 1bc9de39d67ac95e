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

/// One blob column of the server's database, for the rows `sql` selects about `account`.
fn blobs(server: &Server, sql: &str, account: &sirr_proto::AccountId) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open_with_flags(
        server.data.join("sirr.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut s = conn.prepare(sql).unwrap();
    s.query_map([&account.0[..]], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
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
    // One row in each table that only grows with an account's life, so "as before" below
    // checks something: a consent, a disclosure (bob reports her first message, which puts a
    // verified entry in her ledger), and an operator's decision and an appeal (written as
    // sirrd's own code writes them; a real appeal needs a ban, which would stop the deletion).
    sirr_ok(&alice, &["consent", "set", "read-receipts", "on"]);
    sirr_ok(&alice, &["send", "+15550400002", "a first word"]);
    sirr_ok(&bob, &["recv"]);
    sirr_ok(&bob, &["report", "+15550400001", "--last", "1"]);
    let ledger = sirr_ok(&alice, &["account", "disclosures", "--verify"]);
    assert!(
        ledger.contains(": 1 entries"),
        "the report is in her ledger: {ledger}"
    );
    sirr_ok(&alice, &["send", "+15550400002", "hello bob"]);
    // A long one too: its ciphertext spills into overflow pages, which a plain delete frees
    // without overwriting.
    sirr_ok(&alice, &["send", "+15550400002", &"long ".repeat(8_000)]);
    sirr_ok(&alice, &["group", "create", "pair", "+15550400002"]);
    sirr_ok(&alice, &["group", "send", "pair", "in the group"]);
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(&alice, &["whoami", "--json"])).unwrap();
    let account: sirr_proto::AccountId = who["account"].as_str().unwrap().parse().unwrap();
    {
        let db = rusqlite::Connection::open(server.data.join("sirr.db")).unwrap();
        db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        db.execute(
            "INSERT INTO abuse_decisions (account, at_ms, action, reasons, by) VALUES (?, 1, 'allow', '[]', 'operator')",
            [&account.0[..]],
        )
        .unwrap();
        db.execute(
            "INSERT INTO appeals (account, at_ms, text) VALUES (?, 1, 'it was not me')",
            [&account.0[..]],
        )
        .unwrap();
    }
    let during = snapshot(&server.data);
    for table in [
        "consents",
        "disclosures",
        "abuse_decisions",
        "appeals",
        "reported_messages",
    ] {
        assert!(
            during[table].len() > before[table].len(),
            "control: {table} holds a row of hers before the deletion"
        );
    }
    let sent = blobs(
        &server,
        "SELECT payload FROM payloads WHERE sender_account = ?",
        &account,
    );
    assert!(sent.len() >= 3, "alice's messages wait for bob");
    // Her device names are stored sealed: the server's files never held them in the clear.
    let sealed_names = blobs(
        &server,
        "SELECT sealed_name FROM devices WHERE account = ? AND sealed_name IS NOT NULL",
        &account,
    );
    assert_eq!(sealed_names.len(), 2, "both her devices named themselves");
    assert!(!during["devices"].iter().any(|r| r.contains(name)));
    let devices = sirr_ok(&alice2, &["device", "list"]);
    assert!(
        devices.contains(name),
        "her other device opens the name: {devices}"
    );

    // The needles, and a positive control: before the deletion the files do hold them.
    let mut needles: Vec<(&str, Vec<u8>)> = vec![("account id", account.0.to_vec())];
    for n in &sealed_names {
        needles.push(("sealed device name", n.clone()));
    }
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
    needles.push(("device name", name.as_bytes().to_vec()));

    let out = sirr(&alice, &["account", "delete"]);
    assert!(!out.status.success(), "nothing is deleted without --yes");
    sirr_ok(&alice, &["account", "delete", "--yes"]);
    assert!(
        !alice.join("credentials.json").exists(),
        "the local state went too"
    );
    let out = sirr(&alice2, &["recv"]);
    assert!(!out.status.success(), "her other device's credential is gone");

    // Every table is as it was before she registered, except bob's one-time keys she used,
    // and the conversations she had with bob, which are bob's too: an id, an epoch, a token
    // hash and a day, none of which names her (the needles below check the bytes).
    let after = snapshot(&server.data);
    for (table, rows) in &after {
        if table == "key_packages" {
            assert!(
                rows.iter().all(|r| before[table].contains(r)),
                "only bob's keys remain"
            );
            continue;
        }
        if table == "conversations" {
            assert_eq!(rows, &during[table], "bob's conversations stay as they were");
            continue;
        }
        if table == "reported_messages" {
            // A keyed hash of the reported message's commitment and an expiry: it names
            // nobody, and must outlive the account so the message cannot be counted twice.
            assert_eq!(rows, &during[table], "the reported message stays counted");
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
    sirr_ok(&alice, &["consent", "set", "last-seen", "on"]);
    sirr_ok(&alice, &["consent", "set", "last-seen", "off"]);
    let file = dir.path().join("export.json");
    let printed = sirr_ok(
        &alice,
        &[
            "account",
            "export",
            "--out",
            file.to_str().unwrap(),
            "--lang",
            "en",
        ],
    );
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
    assert!(count("key_packages") > 0 && count("queue") > 0);
    assert_eq!(
        count("conversations"),
        0,
        "the server cannot tell which conversations she is in"
    );
    assert_eq!(count("consents"), 2, "both consent changes, with their times");
    assert!(rows_seen >= 8);
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
    assert!(html.starts_with("<!doctype html>"));
    // The server holds her device name sealed, so its export cannot show it; her own device
    // opens it for the readable report.
    assert!(tables["devices"]["rows"][0]["sealed_name"]["value"].is_string());
    assert!(!text.contains("alice-phone"), "not in what the server sent");
    assert!(html.contains("opens on your devices as &quot;alice-phone&quot;"));

    // A page a person can read: the summary first, with what only her device knows.
    let summary = html.find("<section id=\"summary\">").expect("a summary");
    assert!(
        summary < html.find("<section id=\"tables\">").unwrap(),
        "the summary comes first"
    );
    assert!(
        html.contains("<bdi dir=\"ltr\">+15550400011</bdi>"),
        "her number, left to right"
    );
    assert!(html.contains("Device <bdi dir=\"ltr\">1</bdi>: <bdi>alice-phone</bdi>"));
    assert!(html.contains("Last seen: Off since <time datetime="));
    // Every top-level part and every table is on the page.
    for key in export.as_object().unwrap().keys() {
        assert!(
            html.contains(&format!("id=\"{key}\"")),
            "{key} is not on the page"
        );
    }
    for name in tables.keys() {
        assert!(
            html.contains(&format!("id=\"table-{name}\"")),
            "table {name} is not on the page"
        );
    }
    // Times read as dates, never as milliseconds.
    let mut instants = vec![export["exported_at_ms"].as_u64().unwrap()];
    for (table, col) in [
        ("consents", "at_ms"),
        ("payloads", "server_ts"),
        ("key_packages", "expires_at"),
    ] {
        for row in tables[table]["rows"].as_array().unwrap() {
            instants.extend(row[col]["value"].as_u64());
        }
    }
    assert!(instants.len() >= 5, "{instants:?}");
    for ms in instants {
        assert!(!html.contains(&ms.to_string()), "{ms} is shown raw");
    }
    let created = tables["accounts"]["rows"][0]["created_day"]["value"]
        .as_i64()
        .unwrap();
    assert!(created > 19_000, "a day number: {created}");
    assert!(html.contains("<time datetime=\""), "times are <time> elements");

    // In Arabic the page runs right to left, the number still left to right.
    let ar = dir.path().join("export-ar.json");
    sirr_ok(
        &alice,
        &["account", "export", "--out", ar.to_str().unwrap(), "--lang", "ar"],
    );
    let html = std::fs::read_to_string(dir.path().join("export-ar.html")).unwrap();
    assert!(html.contains("<html lang=\"ar\" dir=\"rtl\">"));
    assert!(html.contains("<bdi dir=\"ltr\">+15550400011</bdi>"));
    assert!(html.contains("رقم الهاتف"));
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

fn consent_list(home: &Path) -> Vec<serde_json::Value> {
    sirr_ok(home, &["consent", "list", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sent_id(out: &str) -> String {
    out.trim()
        .strip_prefix("sent ")
        .expect("send prints the message id")
        .to_owned()
}

/// Alice, bob and carol, registered as +1555050nnnn from `first` on.
fn three_people(server: &Server, dir: &Path, first: u32) -> [std::path::PathBuf; 3] {
    let homes = ["alice", "bob", "carol"].map(|n| dir.join(n));
    for (i, home) in homes.iter().enumerate() {
        register(server, home, &format!("+1555050{:04}", first + i as u32));
    }
    homes
}

#[test]
fn consents_start_off_and_withdrawing_one_takes_effect_at_once() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let [alice, bob, carol] = three_people(&server, dir.path(), 1);

    // Off until turned on: every optional use, on a fresh account.
    let fresh = consent_list(&bob);
    assert_eq!(fresh.len(), 4);
    for c in &fresh {
        assert_eq!(c["granted"], false, "{c}");
        assert_eq!(c["changed_at"], serde_json::Value::Null);
        assert_eq!(c["region"], "default");
    }

    // Alice writes to bob; carol knows alice's number but alice never wrote to her.
    sirr_ok(&alice, &["send", "+15550500002", "hello bob"]);
    recv_json(&bob, "5");
    let last_seen = |home: &Path| sirr_ok(home, &["last-seen", "+15550500001"]).trim().to_owned();
    assert_eq!(last_seen(&bob), "unknown", "not without alice's consent");
    sirr_ok(&alice, &["consent", "set", "last-seen", "on"]);
    let day = last_seen(&bob);
    assert!(
        day.len() == 10 && day.as_bytes()[4] == b'-' && day.starts_with("20"),
        "a day, nothing finer: {day:?}"
    );
    assert_eq!(
        last_seen(&carol),
        "unknown",
        "only to people she wrote to (who hold her profile key)"
    );
    sirr_ok(&alice, &["consent", "set", "last-seen", "off"]);
    assert_eq!(last_seen(&bob), "unknown", "withdrawn: at once");

    // Read receipts: bob turns them on, reads, alice hears of it; bob turns them off, and the
    // next message he reads sends nothing.
    sirr_ok(&bob, &["consent", "set", "read-receipts", "on"]);
    let first = sent_id(&sirr_ok(&alice, &["send", "+15550500002", "read me"]));
    let got = recv_json(&bob, "5");
    assert!(got.iter().any(|m| m["text"] == "read me"));
    let receipts: Vec<_> = recv_json(&alice, "5")
        .into_iter()
        .filter(|m| m["direction"] == "read")
        .collect();
    assert_eq!(receipts.len(), 1, "one receipt for what bob read");
    assert_eq!(receipts[0]["from"], "+15550500002");
    assert!(receipts[0]["text"].as_str().unwrap().contains(&first));

    sirr_ok(&bob, &["consent", "set", "read-receipts", "off"]);
    sirr_ok(&alice, &["send", "+15550500002", "and this one"]);
    // Bob's receipt went by itself: it did not hand alice his profile key (only what he
    // writes does), so she still writes to him identified.
    let to_bob = queued_senders(&server, &account_of(&bob));
    assert!(
        !to_bob.is_empty() && to_bob.iter().all(Option::is_some),
        "{to_bob:?}"
    );
    assert!(recv_json(&bob, "5").iter().any(|m| m["text"] == "and this one"));
    let after: Vec<_> = recv_json(&alice, "2")
        .into_iter()
        .filter(|m| m["direction"] == "read")
        .collect();
    assert!(after.is_empty(), "no receipt once withdrawn: {after:?}");

    // The record: when each changed, and what is in force now.
    let now = consent_list(&bob);
    let rr = now.iter().find(|c| c["purpose"] == "read-receipts").unwrap();
    assert_eq!(rr["granted"], false);
    assert!(rr["changed_at"].as_u64().unwrap() > 1_700_000_000_000);
    let bad = sirr(&bob, &["consent", "set", "telepathy", "on"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown use of data"));
}

#[test]
fn a_region_applies_stricter_rules_from_configuration_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sirrd.toml");
    std::fs::write(
        &config,
        "[privacy]\nregion = \"eu\"\n[privacy.regions.eu]\noffered = [\"read-receipts\", \"last-seen\"]\n",
    )
    .unwrap();
    let server = Server::start(&["--dev", "--config", config.to_str().unwrap()], &[]);
    let alice = dir.path().join("alice");
    register(&server, &alice, "+15550500011");
    let list = consent_list(&alice);
    assert!(list.iter().all(|c| c["region"] == "eu"));
    let photo = list.iter().find(|c| c["purpose"] == "profile-photo").unwrap();
    assert_eq!(photo["offered"], false);
    let out = sirr(&alice, &["consent", "set", "profile-photo", "on"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not offered"));
    sirr_ok(&alice, &["consent", "set", "read-receipts", "on"]);
    let rr = consent_list(&alice);
    assert_eq!(
        rr.iter().find(|c| c["purpose"] == "read-receipts").unwrap()["granted"],
        true
    );

    // A region that is not configured is refused at start-up, with the reason.
    let mut child = std::process::Command::new(bin("sirrd"))
        .args(["--dev", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("other"))
        .env("SIRR_PRIVACY__REGION", "atlantis")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("sirrd started with an unknown region");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("atlantis"), "{stderr}");
}

#[test]
fn disappearing_messages_go_from_every_device_and_from_the_server() {
    let server = Server::start(&["--dev"], &[("SIRR_DELIVERY__HOUSEKEEPING_SECS", "1")]);
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    register(&server, &alice, "+15550500021");
    register(&server, &bob, "+15550500022");
    sirr_ok(&alice, &["send", "+15550500022", "before the timer"]);
    recv_json(&bob, "5");

    let bad = sirr(&alice, &["timer", "0", "+15550500022"]);
    assert!(!bad.status.success(), "a zero timer is refused");
    sirr_ok(&alice, &["timer", "3s", "+15550500022"]);
    let notices = recv_json(&bob, "5");
    assert!(
        notices
            .iter()
            .any(|m| m["direction"] == "notice" && m["text"].as_str().unwrap().contains("disappear 3 s")),
        "bob is told: {notices:?}"
    );

    // Delivered and shown, then gone from both phones' files.
    let canary = format!("vanishing-{:x}", std::process::id() as u64 * 7919);
    sirr_ok(&alice, &["send", "+15550500022", &canary]);
    let got = recv_json(&bob, "5");
    let m = got
        .iter()
        .find(|m| m["text"] == canary.as_str())
        .expect("delivered");
    assert!(m["expires_at"].as_u64().is_some());
    let in_files = |home: &Path| {
        files_under(home)
            .iter()
            .any(|f| contains(&std::fs::read(f).unwrap(), canary.as_bytes()))
    };
    assert!(in_files(&bob), "control: stored before its time");
    std::thread::sleep(std::time::Duration::from_millis(3_500));
    sirr_ok(&bob, &["whoami"]);
    sirr_ok(&alice, &["whoami"]);
    assert!(!in_files(&bob), "gone from the recipient's files");
    assert!(!in_files(&alice), "gone from the sender's files");
    // The message before the timer stays.
    assert!(
        files_under(&bob)
            .iter()
            .any(|f| contains(&std::fs::read(f).unwrap(), b"before the timer"))
    );

    // Undelivered: bob is away longer than the timer; the server never hands it over and
    // drops it.
    sirr_ok(&alice, &["send", "+15550500022", "too late"]);
    let queued = || {
        let conn = rusqlite::Connection::open_with_flags(
            server.data.join("sirr.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM queue q JOIN payloads p ON p.id = q.payload_id WHERE p.expires_at IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    };
    assert!(queued() >= 1, "waiting for bob, with its expiry");
    std::thread::sleep(std::time::Duration::from_millis(5_000));
    assert_eq!(queued(), 0, "dropped by the retention job");
    let late = recv_json(&bob, "1");
    assert!(late.iter().all(|m| m["text"] != "too late"), "{late:?}");

    // Turning it off: new messages stay.
    sirr_ok(&alice, &["timer", "off", "+15550500022"]);
    sirr_ok(&alice, &["send", "+15550500022", "kept"]);
    let kept = recv_json(&bob, "5");
    let k = kept.iter().find(|m| m["text"] == "kept").unwrap();
    assert_eq!(k["expires_at"], serde_json::Value::Null);
}

/// The sender columns of what waits in the queue for `phone`'s devices.
fn queued_senders(server: &Server, account: &str) -> Vec<Option<Vec<u8>>> {
    let account: sirr_proto::AccountId = account.parse().unwrap();
    let conn = rusqlite::Connection::open_with_flags(
        server.data.join("sirr.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut s = conn
        .prepare(
            "SELECT p.sender_account FROM queue q JOIN payloads p ON p.id = q.payload_id
             WHERE q.device IN (SELECT key FROM devices WHERE account = ?)",
        )
        .unwrap();
    s.query_map([&account.0[..]], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn account_of(home: &Path) -> String {
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(home, &["whoami", "--json"])).unwrap();
    who["account"].as_str().unwrap().to_owned()
}

#[test]
fn contacts_write_with_sealed_sender_strangers_do_not() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, bob2) = (
        dir.path().join("alice"),
        dir.path().join("bob"),
        dir.path().join("bob2"),
    );
    register(&server, &alice, "+15550500031");
    register(&server, &bob, "+15550500032");
    link_ok(&server, &bob2, &bob);
    let (alice_id, bob_id) = (account_of(&alice), account_of(&bob));
    recv_json(&bob2, "1");

    // Alice writes first: bob has never given her his profile key, so the server sees her.
    sirr_ok(&alice, &["send", "+15550500032", "hello stranger"]);
    let senders = queued_senders(&server, &bob_id);
    assert!(!senders.is_empty());
    assert!(
        senders.iter().all(|s| s.is_some()),
        "a first message to a stranger is identified"
    );
    assert!(recv_json(&bob, "5").iter().any(|m| m["text"] == "hello stranger"));
    recv_json(&bob2, "5");

    // Bob answers: alice's message carried her profile key, so his reply is sealed. His own
    // second device gets its copy identified (the server sees bob write to himself).
    sirr_ok(&bob, &["send", "+15550500031", "hello alice"]);
    let to_alice = queued_senders(&server, &alice_id);
    assert_eq!(
        to_alice,
        vec![None],
        "the server does not know who wrote to alice"
    );
    let got = recv_json(&alice, "5");
    let m = got
        .iter()
        .find(|m| m["text"] == "hello alice")
        .expect("delivered");
    assert_eq!(m["from"], "+15550500032");
    assert_eq!(m["verified"], true, "the sender is proved inside the ciphertext");
    assert!(
        recv_json(&bob2, "5")
            .iter()
            .any(|m| m["text"] == "hello alice" && m["direction"] == "out"),
        "bob's other device keeps in sync"
    );

    // And now alice holds bob's key too: her next message is sealed as well.
    sirr_ok(&alice, &["send", "+15550500032", "sealed both ways"]);
    let to_bob = queued_senders(&server, &bob_id);
    assert!(
        !to_bob.is_empty() && to_bob.iter().all(Option::is_none),
        "{to_bob:?}"
    );
    assert!(
        recv_json(&bob, "5")
            .iter()
            .any(|m| m["text"] == "sealed both ways")
    );

    // At the protocol level: no token, a wrong token, or the wrong kind of session is refused.
    let bob_account: sirr_proto::AccountId = bob_id.parse().unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sirr_proto::*;
        let conn = sirr_client::Connection::connect(&server.url, None).await.unwrap();
        let send = |key: [u8; 16]| Request::SendSealed {
            message_id: MessageId([7; 16]),
            to: vec![SealedRecipient {
                account: bob_account,
                devices: vec![DeviceId(1), DeviceId(2)],
                access_key: key,
            }],
            payload: vec![1; 32],
            epoch: None,
            ttl_secs: None,
            franking: None,
            tokens: Vec::new(),
        };
        let e = conn.request(send([0; 16])).await.unwrap_err();
        assert!(
            e.to_string().contains("Hello first"),
            "not before SealedSession: {e}"
        );
        assert_eq!(
            conn.request(Request::SealedSession).await.unwrap(),
            Response::Done
        );
        let e = conn.request(send([0; 16])).await.unwrap_err();
        assert!(e.to_string().contains("not authorised"), "{e}");
        let sirr_client::ClientError::Server(body) = e else {
            panic!("a refusal")
        };
        let named: Vec<AccountId> = body.devices.iter().map(|r| r.account).collect();
        assert_eq!(named, vec![bob_account], "the refusal names whose token failed");
        let e = conn
            .request(Request::LastSeen {
                account: bob_account,
                access_key: None,
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("only sends sealed"), "{e}");
    });
}

#[test]
fn group_members_write_sealed_to_everyone_who_has_spoken() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let [alice, bob, carol] = three_people(&server, dir.path(), 41);
    let (alice_id, bob_id, carol_id) = (account_of(&alice), account_of(&bob), account_of(&carol));

    // Alice makes the group and writes in it: she knows no one's profile key yet, so the
    // server sees her.
    sirr_ok(
        &alice,
        &["group", "create", "trio", "+15550500042", "+15550500043"],
    );
    sirr_ok(&alice, &["group", "send", "trio", "welcome"]);
    let to_bob = queued_senders(&server, &bob_id);
    assert!(
        !to_bob.is_empty() && to_bob.iter().all(Option::is_some),
        "{to_bob:?}"
    );
    recv_json(&bob, "3");
    recv_json(&carol, "3");

    // Bob holds alice's key now (what she writes carries it), not carol's.
    sirr_ok(&bob, &["group", "send", "trio", "from bob"]);
    let (to_alice, to_carol) = (
        queued_senders(&server, &alice_id),
        queued_senders(&server, &carol_id),
    );
    assert!(
        !to_alice.is_empty() && to_alice.iter().all(Option::is_none),
        "sealed to alice: {to_alice:?}"
    );
    assert!(
        !to_carol.is_empty() && to_carol.iter().all(Option::is_some),
        "identified to carol, a stranger to bob: {to_carol:?}"
    );
    for home in [&alice, &carol] {
        let got = recv_json(home, "3");
        let m = got.iter().find(|m| m["text"] == "from bob").expect("delivered");
        assert_eq!(m["from"], "+15550500042");
        assert_eq!(m["verified"], true);
    }

    // Carol has heard from both: everything she writes to the group is sealed.
    sirr_ok(&carol, &["group", "send", "trio", "from carol"]);
    for (home, id) in [(&alice, &alice_id), (&bob, &bob_id)] {
        let senders = queued_senders(&server, id);
        assert!(
            !senders.is_empty() && senders.iter().all(Option::is_none),
            "the server does not know who wrote: {senders:?}"
        );
        let got = recv_json(home, "3");
        let m = got.iter().find(|m| m["text"] == "from carol").expect("delivered");
        assert_eq!(
            (m["from"].as_str(), m["verified"].as_bool()),
            (Some("+15550500043"), Some(true))
        );
    }
}

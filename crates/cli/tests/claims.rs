//! Claims the docs make that no other test held: every command `sirr --help` lists is described
//! and answers `--help`; `--home` defaults to `$SIRR_HOME`; last-seen with consent on is still
//! answered only to a holder of the right delivery token; texts of different lengths are
//! stored at the same size (padding); the connection cap answers 503 with Retry-After; a
//! database written by a newer sirrd is refused, not "migrated"; a region's shorter retention
//! drops undelivered messages the default would keep.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use sirr_proto::*;

fn help(args: &[&str]) -> String {
    let out = Command::new(bin("sirr"))
        .args(args)
        .env_remove("SIRR_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "sirr {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The (name, description) rows of a clap `Commands:` section.
fn commands(help: &str) -> Vec<(String, String)> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let l = l.trim_start();
            let (name, rest) = l.split_once(' ').unwrap_or((l, ""));
            (name.to_owned(), rest.trim().to_owned())
        })
        .filter(|(name, _)| name != "help")
        .collect()
}

#[test]
fn every_command_help_lists_is_described_and_answers_help() {
    let top = commands(&help(&["--help"]));
    assert!(top.len() >= 10, "{top:?}");
    let mut timer = None;
    for (name, about) in &top {
        assert!(!about.is_empty(), "`sirr {name}` has no description");
        let own = help(&[name, "--help"]);
        assert!(own.contains("Usage: sirr"), "{own}");
        if name == "timer" {
            timer = Some(about.clone());
        } else {
            // One command's text must not have slid onto another.
            assert!(!about.contains("`timer"), "`sirr {name}`: {about}");
        }
        for (sub, sub_about) in commands(&own) {
            assert!(!sub_about.is_empty(), "`sirr {name} {sub}` has no description");
            help(&[name, &sub, "--help"]);
        }
    }
    assert!(timer.is_some_and(|t| t.contains("Disappearing")), "{top:?}");
}

#[test]
fn home_defaults_to_sirr_home() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("via-env");
    let out = Command::new(bin("sirr"))
        .args(["register", "--server", &server.url, "--phone", "+15550910001"])
        .args(["--code", "000000"])
        .env("SIRR_HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        home.join("credentials.json").exists(),
        "registered into $SIRR_HOME"
    );
    // The same home, named explicitly, is that device.
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(&home, &["whoami", "--json"])).unwrap();
    assert_eq!(who["phone"], "+15550910001");
}

#[tokio::test(flavor = "multi_thread")]
async fn last_seen_with_consent_on_needs_the_right_token() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550910011");
    register(&server, &b, "+15550910012");
    sirr_ok(&a, &["consent", "set", "last-seen", "on"]);
    // Alice writes to bob: her profile key (and so her delivery token) reaches him.
    sirr_ok(&a, &["send", "+15550910012", "hi"]);
    recv_json(&b, "5");

    // Positive control: with consent on, the right token gets her day.
    let day = sirr_ok(&b, &["last-seen", "+15550910011"]);
    assert_ne!(day.trim(), "unknown", "the holder of the token sees the day");
    assert_eq!(day.trim().len(), 10, "a day, YYYY-MM-DD: {day}");

    // A made-up token, or none, still gets nothing.
    let (_, alice) = session_as(&server, &a).await;
    let (cb, _) = session_as(&server, &b).await;
    for access_key in [None, Some([9u8; 16])] {
        assert_eq!(
            cb.request(Request::LastSeen {
                account: alice.account,
                access_key,
            })
            .await
            .unwrap(),
            Response::LastSeen { day: None },
            "{access_key:?}"
        );
    }
}

/// The sizes of the last `n` payloads the server queued, newest first.
fn last_payload_sizes(server: &Server, n: usize) -> Vec<i64> {
    let db = read_db(server);
    let mut s = db
        .prepare("SELECT length(payload) FROM payloads ORDER BY id DESC LIMIT ?")
        .unwrap();
    s.query_map([n as i64], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn texts_of_different_lengths_are_stored_at_the_same_size() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    register(&server, &alice, "+15550700001");
    register(&server, &bob, "+15550700002");
    // The first message also sets the conversation up; the ones after it are plain texts.
    sirr_ok(&alice, &["send", "+15550700002", "hello"]);
    // The padded content (text, profile key, franking, signature: about 160 bytes besides the
    // text) is padded to a power-of-two bucket of at least 256 bytes (`sirr_proto::padding`)
    // before encryption, so texts whose lengths fall in one bucket share one stored size.
    let mut sizes = Vec::new();
    for lengths in [[1, 20, 60], [120, 200, 300]] {
        for n in lengths {
            sirr_ok(&alice, &["send", "+15550700002", &"x".repeat(n)]);
        }
        let got = last_payload_sizes(&server, lengths.len());
        assert!(
            got.iter().all(|s| *s == got[0]),
            "texts of {lengths:?} characters stored at {got:?} bytes (newest first)"
        );
        sizes.push(got[0]);
    }
    assert!(sizes[1] > sizes[0], "the two buckets differ: {sizes:?}");
    // Control: the measurement can tell sizes apart when the padding bucket changes.
    sirr_ok(&alice, &["send", "+15550700002", &"y".repeat(3_000)]);
    let bigger = last_payload_sizes(&server, 1)[0];
    assert!(
        bigger > sizes[1],
        "3,000 characters: {bigger} bytes, 300: {} bytes",
        sizes[1]
    );
}

/// Send a WebSocket upgrade for `/v1/websocket` and return the raw response head, keeping the
/// socket open (a 101 holds a connection slot for as long as the stream lives).
fn upgrade(port: u16) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /v1/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

#[test]
fn the_connection_cap_answers_503_with_retry_after() {
    let server = Server::start(&["--dev"], &[("SIRR_DELIVERY__MAX_CONNECTIONS", "2")]);
    let (_a, first) = upgrade(server.port);
    let (_b, second) = upgrade(server.port);
    assert!(first.starts_with("HTTP/1.1 101"), "{first}");
    assert!(second.starts_with("HTTP/1.1 101"), "{second}");
    // The count is taken when a session starts; give the two a moment to be counted.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let (_c, third) = upgrade(server.port);
        if third.starts_with("HTTP/1.1 503") || std::time::Instant::now() > deadline {
            break third;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 5"),
        "{refused}"
    );
}

#[test]
fn a_database_from_a_newer_sirrd_is_refused() {
    let mut server = Server::dev();
    assert!(server.terminate().success());
    let db = rusqlite::Connection::open(server.data.join("sirr.db")).unwrap();
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    db.pragma_update(None, "user_version", version + 1).unwrap();
    drop(db);
    let out = Command::new(bin("sirrd"))
        .args(["--dev", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--admin-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data")
        .arg(&server.data)
        .env_remove("SIRR_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "sirrd started on a newer database");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer than this sirrd"), "{err}");
    // And it left the file as it found it.
    let db = rusqlite::Connection::open(server.data.join("sirr.db")).unwrap();
    let after: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(after, version + 1);
}

/// Undelivered payloads in the server's store.
fn payload_count(server: &Server) -> i64 {
    let db = read_db(server);
    db.query_row("SELECT count(*) FROM payloads", [], |r| r.get(0))
        .unwrap()
}

/// A message left undelivered for 20 days: the default region keeps it (30 days), the `eu`
/// region's 14-day ceiling drops it at the next retention run.
#[test]
fn a_regions_shorter_retention_drops_what_the_default_keeps() {
    for (region, kept) in [("default", true), ("eu", false)] {
        let mut server = Server::dev();
        let dir = tempfile::tempdir().unwrap();
        let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
        register(&server, &alice, "+15550700101");
        register(&server, &bob, "+15550700102");
        sirr_ok(&alice, &["send", "+15550700102", "are you there?"]);
        assert!(server.terminate().success());
        let queued = payload_count(&server);
        assert!(queued > 0, "the message waits for bob");
        let db = rusqlite::Connection::open(server.data.join("sirr.db")).unwrap();
        let twenty_days_ago = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            - 20 * 86_400_000;
        db.execute("UPDATE payloads SET server_ts = ?", [twenty_days_ago])
            .unwrap();
        drop(db);
        server.set_env("SIRR_PRIVACY__REGION", region);
        server.set_env("SIRR_DELIVERY__HOUSEKEEPING_SECS", "1");
        server.restart();
        if kept {
            // Three retention runs at one a second.
            std::thread::sleep(Duration::from_millis(3_000));
            assert_eq!(
                payload_count(&server),
                queued,
                "region {region} keeps 20-day-old mail"
            );
        } else {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while payload_count(&server) > 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            assert_eq!(payload_count(&server), 0, "region {region} drops 20-day-old mail");
        }
    }
}

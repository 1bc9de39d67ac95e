//! Claims the docs make that no other test held: every command `sirr --help` lists is described
//! and answers `--help`; `--home` defaults to `$SIRR_HOME`; last-seen with consent on is still
//! answered only to a holder of the right delivery token.

mod common;

use std::process::{Command, Stdio};

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

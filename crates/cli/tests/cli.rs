//! The `sirr` command line against a real `sirrd`: the forms scripts rely on.

mod common;

use common::*;

#[test]
fn two_people_chat_and_recv_prints_each_message_once() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    register(&server, &alice, "+15550000001");
    register(&server, &bob, "+15550000002");

    sirr_ok(&alice, &["send", "+15550000002", "hello bob"]);
    sirr_ok(
        &alice,
        &["send", "+15550000002", "second, with \"quotes\" and ünïcode"],
    );
    let got = recv_json(&bob, "5");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["from"], "+15550000001");
    assert_eq!(got[0]["text"], "hello bob");
    assert_eq!(got[1]["text"], "second, with \"quotes\" and ünïcode");
    assert!(got[0]["sent_at"].as_u64().unwrap() > 1_700_000_000_000);
    assert!(got[0]["group"].is_null());
    assert_eq!(got[0]["verified"], true);
    let conv = got[0]["conversation"].as_str().unwrap().to_owned();
    assert_eq!(conv.len(), 32);
    assert!(
        recv_json(&bob, "0").is_empty(),
        "a second recv prints nothing new"
    );

    sirr_ok(&bob, &["send", "+15550000001", "hi alice"]);
    let back = sirr_ok(&alice, &["recv"]);
    assert!(back.contains("+15550000002: hi alice"), "{back}");
    // Both sides agree on the conversation.
    sirr_ok(&bob, &["send", "+15550000001", "again"]);
    let again = recv_json(&alice, "5");
    assert_eq!(again[0]["conversation"].as_str().unwrap(), conv);
}

#[test]
fn recv_wait_picks_up_a_message_sent_later() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &alice, "+15550000011");
    register(&server, &bob, "+15550000012");
    let sender = {
        let alice = alice.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(700));
            sirr_ok(&alice, &["send", "+15550000012", "late"]);
        })
    };
    let started = std::time::Instant::now();
    let got = recv_json(&bob, "20");
    sender.join().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["text"], "late");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "returned soon after the message"
    );
    // Without a message, --wait returns after the wait, successfully, printing nothing.
    let started = std::time::Instant::now();
    assert!(recv_json(&bob, "0.5").is_empty());
    assert!(started.elapsed() >= std::time::Duration::from_millis(450));
}

#[test]
fn failures_exit_non_zero_with_a_clear_reason() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let alice = dir.path().join("a");
    register(&server, &alice, "+15550000021");

    let out = sirr(&alice, &["send", "+15550000099", "anyone?"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("+15550000099 is not on Sirr"));

    let out = sirr(&alice, &["send", "15550000099", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("E.164"));

    let big = "x".repeat(70_000);
    let out = sirr(&alice, &["send", "+15550000021", &big]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the limit is 65536 bytes"));

    let out = sirr(&dir.path().join("nobody"), &["send", "+15550000021", "x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not registered"));

    let out = sirr(
        &alice,
        &[
            "register",
            "--server",
            &server.url,
            "--phone",
            "+15550000021",
            "--code",
            "000000",
        ],
    );
    assert!(!out.status.success(), "a home registers once");

    let out = sirr(
        &dir.path().join("x"),
        &[
            "register",
            "--server",
            "http://127.0.0.1:1",
            "--phone",
            "+15550000022",
            "--code",
            "1",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));

    // A revoked device's credential stops working.
    let second = dir.path().join("a2");
    link_ok(&server, &second, &alice);
    sirr_ok(&alice, &["device", "remove", "2"]);
    let out = sirr(&second, &["recv"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A device can remove itself; its session ends and its credential is gone.
    let third = dir.path().join("a3");
    link_ok(&server, &third, &alice);
    assert!(sirr_ok(&third, &["device", "remove", "3"]).contains("removed device 3"));
    let out = sirr(&third, &["recv"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthorized"));
    let left = sirr_ok(&alice, &["devices", "--json"]);
    assert_eq!(left.lines().count(), 1, "only the first device remains: {left}");
}

#[test]
fn an_account_has_at_most_five_devices_which_all_see_every_message() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let homes: Vec<_> = (1..=6).map(|i| dir.path().join(format!("d{i}"))).collect();
    register(&server, &homes[0], "+15550000031");
    for h in &homes[1..5] {
        link_ok(&server, h, &homes[0]);
    }
    // A sixth is refused. (Registering the number by phone does not add a device: it starts
    // the account anew, `accounts::a_sim_swapper_without_a_pin_starts_anew_and_contacts_see_the_key_change`.)
    let l = link(&server, &homes[5], &homes[0]);
    assert!(!l.approve.status.success() && !l.link.status.success());
    assert!(
        String::from_utf8_lossy(&l.approve.stderr).contains("DeviceLimit"),
        "{}",
        String::from_utf8_lossy(&l.approve.stderr)
    );

    let devices = sirr_ok(&homes[0], &["devices", "--json"]);
    assert_eq!(devices.lines().count(), 5);
    assert!(devices.lines().next().unwrap().contains("\"this\":true"));

    let bob = dir.path().join("bob");
    register(&server, &bob, "+15550000032");
    sirr_ok(&bob, &["send", "+15550000031", "to all of you"]);
    for h in &homes[..5] {
        let got = recv_json(h, "5");
        assert_eq!(got.len(), 1, "every device gets the message");
        assert_eq!(got[0]["text"], "to all of you");
    }
    // What one device sends, the account's other devices see too.
    sirr_ok(&homes[2], &["send", "+15550000032", "from device 3"]);
    assert_eq!(recv_json(&bob, "5")[0]["device"], 3);
    for (i, h) in homes[..5].iter().enumerate() {
        let got = recv_json(h, if i == 2 { "0" } else { "5" });
        if i == 2 {
            assert!(got.is_empty(), "the sender does not get its own copy");
        } else {
            assert_eq!(got.len(), 1);
            assert_eq!(got[0]["direction"], "out");
            assert_eq!(got[0]["to"], "+15550000032");
        }
    }
}

#[test]
fn whoami_and_help_are_stable() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550000041");
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(&a, &["whoami", "--json"])).unwrap();
    assert_eq!(who["phone"], "+15550000041");
    assert_eq!(who["device"], 1);
    let help = sirr_ok(&a, &["--help"]);
    for cmd in ["register", "send", "recv", "whoami", "devices"] {
        assert!(help.contains(cmd), "help lists {cmd}");
    }
}

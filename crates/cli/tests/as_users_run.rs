//! What a newcomer gets: the main story (one to one, a group, a linked device, sealed sender,
//! an export) against `sirrd --dev` exactly as shipped, with the default rate limits and the
//! abuse engine on. Every other CLI test raises the limits and turns the engine off, so this is
//! the one that notices when the defaults get in a user's way.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

const ALICE: &str = "+15550900001";
const BOB: &str = "+15550900002";
const CAROL: &str = "+15550900003";

fn texts(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["direction"] != "notice")
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

fn account_of(home: &Path) -> String {
    let who: Value = serde_json::from_str(&sirr_ok(home, &["whoami", "--json"])).unwrap();
    who["account"].as_str().unwrap().to_owned()
}

/// The sender column of every copy queued for `account`'s devices: `None` for a sealed copy.
fn queued_senders(server: &Server, account: &str) -> Vec<Option<Vec<u8>>> {
    let account: sirr_proto::AccountId = account.parse().unwrap();
    let conn = rusqlite::Connection::open_with_flags(
        server.data.join("sirr.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut s = conn
        .prepare(
            "SELECT p.sender_account FROM queue q JOIN payloads p ON p.id = q.payload_id \
             WHERE q.device IN (SELECT key FROM devices WHERE account = ?)",
        )
        .unwrap();
    s.query_map([&account.0[..]], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn the_main_story_works_under_the_stock_dev_configuration() {
    let server = Server::stock_dev();
    let dir = tempfile::tempdir().unwrap();
    let home = |n: &str| dir.path().join(n);
    let (alice, bob, carol, bob2) = (home("alice"), home("bob"), home("carol"), home("bob2"));
    register(&server, &alice, ALICE);
    register(&server, &bob, BOB);
    register(&server, &carol, CAROL);

    // One to one, both ways.
    sirr_ok(&alice, &["send", BOB, "hi bob"]);
    let got = recv_json(&bob, "5");
    assert_eq!(texts(&got), ["hi bob"], "{got:?}");
    assert_eq!(got[0]["from"], ALICE);
    assert_eq!(got[0]["verified"], true);
    sirr_ok(&bob, &["send", ALICE, "hi alice"]);
    assert_eq!(texts(&recv_json(&alice, "5")), ["hi alice"]);

    // Sealed sender: bob's reply carried his profile key, so alice's next message to him is
    // queued without a sender, and he still learns (and verifies) who wrote it.
    let bob_id = account_of(&bob);
    sirr_ok(&alice, &["send", BOB, "sealed to bob"]);
    let senders = queued_senders(&server, &bob_id);
    assert!(
        !senders.is_empty() && senders.iter().all(Option::is_none),
        "the copy for bob is sealed: {senders:?}"
    );
    let got = recv_json(&bob, "5");
    assert_eq!(texts(&got), ["sealed to bob"], "{got:?}");
    assert_eq!(got[0]["from"], ALICE);
    assert_eq!(got[0]["verified"], true);

    // A group of three.
    sirr_ok(&alice, &["group", "create", "friends", BOB, CAROL]);
    sirr_ok(&alice, &["group", "send", "friends", "hello friends"]);
    for h in [&bob, &carol] {
        let got = recv_json(h, "5");
        assert_eq!(texts(&got), ["hello friends"], "{got:?}");
        assert_eq!(got.last().unwrap()["group"], "friends");
    }
    sirr_ok(&carol, &["group", "send", "friends", "hi from carol"]);
    for h in [&alice, &bob] {
        assert_eq!(texts(&recv_json(h, "5")), ["hi from carol"]);
    }

    // Bob links a second device; both get what is sent from now on, in both conversations.
    link_ok(&server, &bob2, &bob);
    sirr_ok(&alice, &["send", BOB, "after the link"]);
    sirr_ok(&alice, &["group", "send", "friends", "group after the link"]);
    for h in [&bob, &bob2] {
        let t = texts(&recv_json(h, "5"));
        assert!(t.contains(&"after the link".to_owned()), "{t:?}");
        assert!(t.contains(&"group after the link".to_owned()), "{t:?}");
    }
    let a = sirr_ok(&alice, &["safety", BOB]);
    assert_eq!(a, sirr_ok(&bob2, &["safety", ALICE]));

    // The export is written and names the account.
    let file = dir.path().join("export.json");
    sirr_ok(&bob, &["account", "export", "--out", file.to_str().unwrap()]);
    let export: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(export["account"], bob_id.as_str());
    assert!(dir.path().join("export.html").exists());

    // The engine was on and stopped no one. (It does throttle alice and bob for a while:
    // `new_account`, `message_rate_1h`, `few_inbound_contacts` after their first few messages;
    // a throttle only slows sends to strangers, and the story above stays within it.)
    let log = server.log();
    for action in ["action=Challenge", "action=Ban"] {
        assert!(!log.contains(action), "{action} in the server log:\n{log}");
    }
}

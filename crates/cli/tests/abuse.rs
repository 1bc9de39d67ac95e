//! Bulk and automated messaging stopped from metadata alone: the abuse engine wired into
//! `sirrd`, its decisions enforced, reviewed by an operator and appealed; blocks and reports
//! with message franking.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use sirr_client::{ClientError, Connection};
use sirr_proto::*;

fn sirrd_admin(data: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(bin("sirrd"))
        .arg("--data")
        .arg(data)
        .arg("admin")
        .arg("abuse")
        .args(args)
        .output()
        .unwrap()
}

fn admin_ok(data: &Path, args: &[&str]) -> String {
    let out = sirrd_admin(data, args);
    assert!(
        out.status.success(),
        "sirrd admin abuse {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A registered device, over the raw protocol (fast: no keys, no MLS; the server relays
/// opaque payloads, which is all the abuse engine ever sees anyway).
struct Raw {
    account: AccountId,
    device: DeviceId,
    secret: Secret,
}

async fn register_raw(server: &Server, phone: &str) -> Raw {
    let conn = Connection::connect(&server.url, None).await.unwrap();
    let r = conn
        .request(Request::Register {
            phone: Phone::parse(phone).unwrap(),
            code: "000000".into(),
            pin: None,
        })
        .await
        .unwrap();
    conn.close().await;
    let Response::Registered {
        account,
        device,
        secret,
        ..
    } = r
    else {
        panic!("{r:?}")
    };
    Raw {
        account,
        device,
        secret,
    }
}

async fn hello(server: &Server, r: &Raw) -> Result<Connection, ClientError> {
    let conn = Connection::connect(&server.url, None).await.unwrap();
    conn.request(Request::Hello {
        protocol: PROTOCOL_VERSION,
        account: r.account,
        device: r.device,
        secret: r.secret.clone(),
    })
    .await?;
    Ok(conn)
}

fn queued_from(server: &Server, account: AccountId) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(
        server.data.join("sirr.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM queue q JOIN payloads p ON p.id = q.payload_id WHERE p.sender_account = ?",
        [&account.0[..]],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn a_blaster_is_banned_its_queue_dropped_and_an_operator_reviews_the_appeal() {
    // Sixty people and one account that will write to all of them, none of whom ever wrote to
    // it. They register with the engine off: from one test address, sixty sign-ups in a second
    // are a farm, and the engine would (rightly) stop them at registration.
    let mut server = Server::start(&["--dev"], &[("SIRR_DELIVERY__HOUSEKEEPING_SECS", "1")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (people, blaster) = rt.block_on(async {
        let mut people = Vec::new();
        for i in 0..60u64 {
            let phone = format!("+1{}{:07}", 200 + i * 13 % 700, 1_000_000 + i * 7_919);
            people.push(register_raw(&server, &phone).await);
        }
        (people, register_raw(&server, "+447700900123").await)
    });
    server.terminate();
    server.set_env("SIRR_ABUSE__ENABLED", "true");
    server.restart();
    let blaster = rt.block_on(async {
        let conn = hello(&server, &blaster).await.expect("signs in before anything");
        let (mut sent, mut challenges) = (0, 0);
        let mut refusal = None;
        for p in &people {
            let send = Request::Send {
                message_id: MessageId(rand_id()),
                to: vec![Recipient {
                    account: p.account,
                    devices: vec![p.device],
                }],
                payload: vec![0x42; 256],
                epoch: None,
                ttl_secs: None,
                franking: None,
            };
            let mut r = conn.request(send.clone()).await;
            // A determined bot solves every challenge it gets, and keeps going.
            if let Err(ClientError::Server(e)) = &r
                && e.code == ErrorCode::ChallengeRequired
            {
                challenges += 1;
                let ch = e.challenge.expect("a challenge comes with its puzzle");
                let solution = challenge::solve(&ch.nonce, ch.bits, blaster.account);
                let wrong = conn
                    .request(Request::SolveChallenge {
                        nonce: ch.nonce,
                        solution: solution.wrapping_add(1),
                    })
                    .await;
                assert!(
                    wrong.is_err() || challenge::check(&ch.nonce, ch.bits, blaster.account, solution + 1)
                );
                conn.request(Request::SolveChallenge {
                    nonce: ch.nonce,
                    solution,
                })
                .await
                .unwrap();
                r = conn.request(send).await;
            }
            match r {
                Ok(_) => {
                    sent += 1;
                    // Nobody reads: what it sent waits in their queues, for the ban to drop.
                    assert!(queued_from(&server, blaster.account) > 0, "its message is queued");
                }
                Err(ClientError::Server(e)) if e.code == ErrorCode::Banned => {
                    refusal = Some(e);
                    break;
                }
                Err(ClientError::Server(e)) if e.code == ErrorCode::RateLimited => {
                    assert!(e.message.contains("throttled"), "{e}");
                }
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        let refusal = refusal.expect("the blaster is banned before it reaches everyone");
        assert!(sent > 0 && sent < 60, "banned after {sent} strangers");
        // The session it is signed in on sends no more, whatever it sends.
        let again = conn
            .request(Request::Send {
                message_id: MessageId(rand_id()),
                to: vec![Recipient {
                    account: people[59].account,
                    devices: vec![people[59].device],
                }],
                payload: vec![0x42; 256],
                epoch: None,
                ttl_secs: None,
                franking: None,
            })
            .await;
        assert!(
            matches!(&again, Err(ClientError::Server(e)) if e.code == ErrorCode::Banned)
                || matches!(&again, Err(ClientError::Connection(_))),
            "the banned session sent again: {again:?}"
        );
        assert!(
            refusal.message.contains("appeal"),
            "the ban says what to do: {refusal}"
        );
        eprintln!(
            "banned after reaching {sent} strangers ({challenges} challenges solved): {}",
            refusal.message
        );

        // Its queued messages are gone, its credential no longer signs in.
        let deadline = Instant::now() + Duration::from_secs(5);
        while queued_from(&server, blaster.account) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            queued_from(&server, blaster.account),
            0,
            "queued messages dropped"
        );
        match hello(&server, &blaster).await {
            Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::Banned),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a banned account signed in"),
        }
        blaster
    });

    // The ban is stored: it holds across a restart.
    server.terminate();
    server.restart();
    let blaster = rt.block_on(async {
        match hello(&server, &blaster).await {
            Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::Banned, "after a restart"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a restart lifted the ban"),
        }

        // It appeals with its credential; a wrong credential cannot appeal for it.
        let appeal = |secret: Secret| Request::Appeal {
            account: blaster.account,
            device: blaster.device,
            secret,
            text: "I was inviting my football club".into(),
        };
        let c = Connection::connect(&server.url, None).await.unwrap();
        assert_eq!(
            c.request(appeal(Secret([0; 32]))).await.unwrap_err().code(),
            Some(ErrorCode::Unauthorized),
            "a wrong credential is refused as such"
        );
        assert_eq!(
            c.request(appeal(blaster.secret.clone())).await.unwrap(),
            Response::Done
        );
        c.close().await;
        blaster
    });

    // The operator sees why (metadata only), the appeal, and lifts the ban.
    let list = admin_ok(&server.data, &["list"]);
    let id = blaster.account.to_string();
    let line = list
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("the blaster is listed");
    assert!(line.contains(" ban ") && line.contains("appeals: 1"), "{list}");
    let show = admin_ok(&server.data, &["show", &id]);
    assert!(
        show.contains("football club") && show.contains("by engine"),
        "{show}"
    );
    assert!(!show.contains("BBBB"), "no content is shown");
    let bad = sirrd_admin(&server.data, &["unban", &id, "--reason", "no"]);
    assert!(!bad.status.success(), "a reason is required");
    admin_ok(
        &server.data,
        &["unban", &id, "--reason", "appeal accepted: a club"],
    );
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match hello(&server, &blaster).await {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => panic!("still refused after the review: {e}"),
            }
        }
    });
}

fn rand_id() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    id
}

#[test]
fn reports_are_verified_by_franking_and_blocks_hide_messages() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    register(&server, &alice, "+15550600001");
    register(&server, &bob, "+15550600002");
    // A third account, for blaming someone else (a made-up one is refused as unknown).
    let carol = dir.path().join("carol");
    register(&server, &carol, "+15550600003");
    let carol_id: AccountId = account_of(&carol).parse().unwrap();
    sirr_ok(&alice, &["send", "+15550600002", "cheap pills here"]);
    sirr_ok(&alice, &["send", "+15550600002", "click this link"]);
    assert_eq!(
        recv_json(&bob, "5")
            .iter()
            .filter(|m| m["direction"] == "in")
            .count(),
        2
    );

    let out = sirr_ok(&bob, &["report", "+15550600001"]);
    assert!(
        out.contains("reported 2 message(s)") && out.contains("verified 2"),
        "{out}"
    );
    // Alice's ledger says that a recipient revealed two of her messages to the operator.
    let ledger = sirr_ok(&alice, &["account", "disclosures", "--json"]);
    assert_eq!(ledger.matches("reported for abuse").count(), 2, "{ledger}");
    sirr_ok(&alice, &["account", "disclosures", "--verify"]);

    // A report that changes the text, the time or the key verifies nothing.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(sirr_client::Client::open(&bob)).unwrap();
    let creds = client.state().credentials().unwrap();
    let alice_id: AccountId = account_of(&alice).parse().unwrap();
    let franked = rt.block_on(client.state().franked_from(alice_id, 5)).unwrap();
    assert_eq!(franked.len(), 2);
    rt.block_on(async {
        let raw = Raw {
            account: creds.account,
            device: creds.device,
            secret: creds.secret().unwrap(),
        };
        let conn = hello(&server, &raw).await.unwrap();
        let reveal = |f: &sirr_client::state::Franked| f.opening.clone();
        let mut text = reveal(&franked[0]);
        text.plaintext[3] ^= 1;
        let mut time = reveal(&franked[0]);
        time.server_ts += 1;
        let mut key = reveal(&franked[0]);
        key.franking_key[0] ^= 1;
        for (what, m) in [("text", text), ("time", time), ("key", key)] {
            let r = conn
                .request(Request::Report {
                    account: alice_id,
                    messages: vec![m],
                })
                .await
                .unwrap();
            assert_eq!(r, Response::Reported { verified: 0 }, "a changed {what}");
        }
        // Nor does blaming someone else for alice's message.
        let r = conn
            .request(Request::Report {
                account: carol_id,
                messages: vec![reveal(&franked[1])],
            })
            .await
            .unwrap();
        assert_eq!(r, Response::Reported { verified: 0 }, "another sender");
    });

    // Blocking: bob's device stops showing alice's messages.
    sirr_ok(&bob, &["block", "+15550600001"]);
    sirr_ok(&alice, &["send", "+15550600002", "after the block"]);
    let after = recv_json(&bob, "2");
    assert!(after.iter().all(|m| m["text"] != "after the block"), "{after:?}");
    let none = sirr(&bob, &["report", "+15550600003"]);
    assert!(!none.status.success());
}

fn account_of(home: &Path) -> String {
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(home, &["whoami", "--json"])).unwrap();
    who["account"].as_str().unwrap().to_owned()
}

#[test]
fn a_challenged_client_solves_the_challenge_and_its_message_goes_through() {
    // Thresholds that challenge every account that sends (ban off): the CLI must solve the
    // proof of work on its own.
    let server = Server::start(
        &["--dev"],
        &[
            ("SIRR_ABUSE__ENABLED", "true"),
            ("SIRR_ABUSE__ENGINE__THROTTLE_AT", "0.000001"),
            ("SIRR_ABUSE__ENGINE__CHALLENGE_AT", "0.000001"),
            ("SIRR_ABUSE__ENGINE__BAN_AT", "2.0"),
            ("SIRR_ABUSE__CHALLENGE_BITS", "12"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    register(&server, &alice, "+15550600011");
    register(&server, &bob, "+15550600012");
    let solved = || {
        let (status, body) = server.admin_get("/metrics");
        assert!(status.contains("200"), "{status}");
        body.lines()
            .find_map(|l| l.strip_prefix("sirr_challenges_solved_total "))
            .map(|v| v.trim().parse::<f64>().unwrap())
            .expect("the metric is exported")
    };
    assert_eq!(solved(), 0.0, "nothing solved before alice sends");
    sirr_ok(&alice, &["send", "+15550600012", "prove I am patient"]);
    // The server challenged her send and the CLI met it: without a challenge this stays 0.
    assert!(solved() >= 1.0, "the CLI solved no challenge");
    assert!(
        recv_json(&bob, "5")
            .iter()
            .any(|m| m["text"] == "prove I am patient")
    );
    let list = admin_ok(&server.data, &["list"]);
    let id = account_of(&alice);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&id) && l.contains("challenge")),
        "{list}"
    );
}

//! Regression tests for the smaller findings of a security review: each failed on the code
//! before its fix.

mod common;

use common::*;

/// `sirr --help` describes each command against its own name.
#[test]
fn help_describes_timer_and_block_each_by_its_own_text() {
    let dir = tempfile::tempdir().unwrap();
    let help = sirr_ok(dir.path(), &["--help"]);
    let line = |cmd: &str| {
        help.lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_else(|| panic!("help lists {cmd}:\n{help}"))
            .to_owned()
    };
    let (timer, block) = (line("timer"), line("block"));
    assert!(timer.contains("Disappearing messages"), "{timer}");
    assert!(block.contains("Stop seeing someone's messages"), "{block}");
    assert!(!block.contains("Disappearing"), "{block}");
}

/// Registering, linking, removing a device and deleting the account are logged at info, but
/// without the account id: after the deletion the log holds nothing that names the account.
#[test]
fn the_log_never_names_an_account_id() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550001001");
    link_ok(&server, &b, &a);
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(&a, &["whoami", "--json"])).unwrap();
    let account = who["account"].as_str().unwrap().to_owned();
    assert!(account.len() >= 16, "{account}");
    sirr_ok(&a, &["device", "remove", "2"]);
    sirr_ok(&a, &["account", "delete", "--yes"]);
    let log = server.log();
    for line in [
        "device registered",
        "device linked",
        "device removed",
        "account deleted",
    ] {
        assert!(log.contains(line), "the log still records `{line}`:\n{log}");
    }
    assert!(!log.contains(&account), "the log names account {account}:\n{log}");
}

/// A device registered over the raw protocol.
struct Raw {
    account: sirr_proto::AccountId,
    device: sirr_proto::DeviceId,
    secret: sirr_proto::Secret,
}

async fn register_raw(server: &Server, phone: &str) -> Raw {
    use sirr_proto::{Phone, Request, Response};
    let conn = sirr_client::Connection::connect(&server.url, None).await.unwrap();
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

async fn hello(server: &Server, r: &Raw) -> sirr_client::Connection {
    let conn = sirr_client::Connection::connect(&server.url, None).await.unwrap();
    conn.request(sirr_proto::Request::Hello {
        protocol: sirr_proto::PROTOCOL_VERSION,
        account: r.account,
        device: r.device,
        secret: r.secret.clone(),
    })
    .await
    .unwrap();
    conn
}

/// Two devices of one challenged account each get a challenge; solving one's does not
/// invalidate the other's (on main the second refused send replaced the account's one nonce).
#[test]
fn two_devices_of_a_challenged_account_each_solve_their_own_challenge() {
    use sirr_client::ClientError;
    use sirr_proto::{ErrorCode, MessageId, Recipient, Request, Response, challenge};
    let server = Server::start(
        &["--dev"],
        &[
            ("SIRR_ABUSE__ENABLED", "true"),
            ("SIRR_ABUSE__ENGINE__THROTTLE_AT", "0.000001"),
            ("SIRR_ABUSE__ENGINE__CHALLENGE_AT", "0.000001"),
            ("SIRR_ABUSE__ENGINE__BAN_AT", "2.0"),
            ("SIRR_ABUSE__CHALLENGE_BITS", "8"),
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let first = register_raw(&server, "+15550002001").await;
        let c1 = hello(&server, &first).await;
        let (account, device, secret) = link_device_raw(&server, &c1).await;
        let second = Raw {
            account,
            device,
            secret,
        };
        assert_eq!(first.account, second.account, "one account, two devices");
        assert_ne!(first.device, second.device);
        let bob = register_raw(&server, "+15550002002").await;
        // Each device writes to bob and, as every send must, to its account's other device.
        let send = |n: u8, own: sirr_proto::DeviceId| Request::Send {
            message_id: MessageId([n; 16]),
            to: vec![
                Recipient {
                    account: bob.account,
                    devices: vec![bob.device],
                },
                Recipient {
                    account: first.account,
                    devices: vec![own],
                },
            ],
            payload: vec![0x42; 256],
            epoch: None,
            ttl_secs: None,
            franking: None,
        };
        let challenged = |r: Result<Response, ClientError>| match r {
            Err(ClientError::Server(e)) if e.code == ErrorCode::ChallengeRequired => {
                e.challenge.expect("a challenge comes with its puzzle")
            }
            other => panic!("expected a challenge, got {other:?}"),
        };
        let c2 = hello(&server, &second).await;
        let ch1 = challenged(c1.request(send(1, second.device)).await);
        // The other device is refused too, and handed its own puzzle.
        let ch2 = challenged(c2.request(send(2, first.device)).await);
        assert_ne!(ch1.nonce, ch2.nonce);
        for (conn, ch) in [(&c1, ch1), (&c2, ch2)] {
            let solution = challenge::solve(&ch.nonce, ch.bits, first.account);
            let r = conn
                .request(Request::SolveChallenge {
                    nonce: ch.nonce,
                    solution,
                })
                .await;
            assert!(matches!(r, Ok(Response::Done)), "{r:?}");
        }
        // A device cannot spend the other's puzzle, nor its own twice.
        let again = c1
            .request(Request::SolveChallenge {
                nonce: ch1.nonce,
                solution: challenge::solve(&ch1.nonce, ch1.bits, first.account),
            })
            .await;
        assert!(
            matches!(&again, Err(ClientError::Server(e)) if e.code == ErrorCode::BadRequest),
            "{again:?}"
        );
    });
}

/// `/metrics` is the operator's: not served where clients connect, only on `admin_listen`.
#[test]
fn metrics_are_served_only_on_the_admin_listener() {
    let server = Server::dev();
    let (status, body) = server.get("/metrics");
    assert!(status.contains("404"), "clients' listener: {status}\n{body}");
    assert!(!body.contains("sirr_connections"), "{body}");
    let (status, body) = server.admin_get("/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("sirr_connections"), "{body}");
    // Health stays on both (load balancers probe the clients' side).
    assert!(server.get("/health").0.contains("200"));
    assert!(server.admin_get("/health").0.contains("200"));
}

/// A server-wide cap on verification codes: numbers from different prefixes and one address
/// allowed by every other limit still stop at it, and the refusal is counted by reason.
#[test]
fn verification_codes_stop_at_the_global_cap_and_are_counted() {
    use sirr_client::{Client, ClientError};
    use sirr_proto::{ErrorCode, Phone};
    let server = Server::start(
        &["--dev"],
        &[
            ("SIRR_LIMITS__CODE_GLOBAL__BURST", "3"),
            ("SIRR_LIMITS__CODE_GLOBAL__PER_SECOND", "0.001"),
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let numbers = ["+15550003001", "+447700900301", "+33612345601", "+4915112345601"];
        for n in &numbers[..3] {
            Client::request_code(
                &sirr_client::Platform::native(),
                &server.url,
                &Phone::parse(n).unwrap(),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        let refused = Client::request_code(
            &sirr_client::Platform::native(),
            &server.url,
            &Phone::parse(numbers[3]).unwrap(),
            None,
        )
        .await;
        match refused {
            Err(ClientError::Server(e)) => {
                assert_eq!(e.code, ErrorCode::RateLimited, "{e:?}");
                assert!(e.retry_after_ms.is_some_and(|ms| ms > 0), "{e:?}");
                assert!(e.message.contains("server-wide"), "{e:?}");
            }
            other => panic!("the fourth code went out: {other:?}"),
        }
    });
    let (_, metrics) = server.admin_get("/metrics");
    let count = |reason: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("sirr_codes_refused_total") && l.contains(&format!("reason=\"{reason}\""))
            })
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse::<u64>().ok())
    };
    assert_eq!(count("global"), Some(1), "{metrics}");
    assert_eq!(count("number"), None, "{metrics}");
}

/// The engine sees a registration before the device exists: when a registration farm is
/// banned, the registration that tipped it is refused and creates no account (on main it was
/// created, and banned only afterwards).
#[test]
fn a_registration_farm_ban_refuses_the_registration_that_tipped_it() {
    use sirr_client::ClientError;
    use sirr_proto::{ErrorCode, Phone, Request, Response};
    let server = Server::start(&["--dev"], &[("SIRR_ABUSE__ENABLED", "true")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Someone ordinary, to look the farm's numbers up with.
        let bystander = register_raw(&server, "+447700900999").await;
        let mut refused = None;
        for i in 0..60u64 {
            let phone = format!("+1555010{i:04}");
            let conn = sirr_client::Connection::connect(&server.url, None).await.unwrap();
            let r = conn
                .request(Request::Register {
                    phone: Phone::parse(&phone).unwrap(),
                    code: "000000".into(),
                    pin: None,
                })
                .await;
            conn.close().await;
            match r {
                Ok(Response::Registered { .. }) => {}
                Err(ClientError::Server(e)) if e.code == ErrorCode::Banned => {
                    assert!(e.message.contains("nothing was created"), "{e:?}");
                    refused = Some(phone);
                    break;
                }
                other => panic!("{phone}: {other:?}"),
            }
        }
        let phone = refused.expect("the farm was stopped at a registration, not after it");
        let conn = hello(&server, &bystander).await;
        let r = conn
            .request(Request::Lookup {
                phones: vec![Phone::parse(&phone).unwrap()],
            })
            .await
            .unwrap();
        let Response::Directory { entries } = r else {
            panic!("{r:?}")
        };
        assert!(
            entries.is_empty(),
            "the refused registration left an account: {entries:?}"
        );
    });
}

/// A long-lived client whose batch fails part-way (the sender lookup for a later envelope is
/// rate-limited) keeps every message: the envelopes before the failure are filed with the MLS
/// state they produced, the failed one's decryption is rolled back, and after redelivery every
/// message decrypts and is stored exactly once. On main the earlier envelopes' ratchet steps
/// stayed in memory, so their redelivered copies no longer decrypted and were lost.
#[test]
fn a_batch_that_fails_part_way_loses_no_message() {
    use sirr_client::{Client, ClientError};
    use sirr_proto::ErrorCode;
    use std::time::Duration;
    // One lookup per account per ten seconds: Alice's lookup of a second new sender fails.
    let server = Server::start(
        &["--dev"],
        &[
            ("SIRR_LIMITS__LOOKUP__BURST", "1"),
            ("SIRR_LIMITS__LOOKUP__PER_SECOND", "0.1"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, carol) = (
        dir.path().join("alice"),
        dir.path().join("bob"),
        dir.path().join("carol"),
    );
    register(&server, &alice, "+15550004001");
    register(&server, &bob, "+15550004002");
    register(&server, &carol, "+15550004003");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut a = Client::open(&alice).await.unwrap();
        a.connect().await.unwrap();
        // Alice learns Bob (her one lookup) from his first message.
        sirr_ok(&bob, &["send", "+15550004001", "b1"]);
        a.receive(Duration::from_secs(10)).await.unwrap();
        // Next batch: Bob's b2 (he is a contact now: no lookup), then Carol's invitation,
        // details and c1, whose sender Alice must look up: refused.
        sirr_ok(&bob, &["send", "+15550004001", "b2"]);
        sirr_ok(&carol, &["send", "+15550004001", "c1"]);
        let retry = match a.receive(Duration::from_secs(10)).await {
            Err(ClientError::Server(e)) if e.code == ErrorCode::RateLimited => {
                e.retry_after_ms.unwrap_or(10_000)
            }
            other => panic!("the lookup of Carol should have been refused: {other:?}"),
        };
        // The same client, later: reconnect (unacknowledged envelopes come again) and receive.
        tokio::time::sleep(Duration::from_millis(u64::from(retry) + 300)).await;
        a.disconnect().await;
        a.connect().await.unwrap();
        a.receive(Duration::from_secs(10)).await.unwrap();
        let got = a.take_unread().await.unwrap();
        let notices: Vec<&str> = got
            .iter()
            .filter(|m| m.direction == "notice")
            .map(|m| m.text.as_str())
            .collect();
        assert!(notices.is_empty(), "nothing failed to decrypt: {notices:?}");
        let mut texts: Vec<&str> = got
            .iter()
            .filter(|m| m.direction == "in")
            .map(|m| m.text.as_str())
            .collect();
        texts.sort();
        assert_eq!(texts, ["b1", "b2", "c1"], "each message exactly once");
        // And a fresh process sees the same, with nothing left to deliver.
        drop(a);
        let mut again = Client::open(&alice).await.unwrap();
        again.connect().await.unwrap();
        assert_eq!(again.receive(Duration::from_secs(1)).await.unwrap(), 0);
    });
}

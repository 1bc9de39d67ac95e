//! Sealed sends paid for with anonymous tokens: abuse control reaches sealed sending without
//! the server learning who sends what. A banned, throttled or challenged account gets no
//! tokens, so once it has spent what it held it cannot send sealed at all; a token pays once;
//! people in good standing still write sealed end to end; and nothing the server keeps ties
//! a spent token to the account that fetched it.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use sirr_client::{ClientError, Connection};
use sirr_crypto::tokens::TokenRequest;
use sirr_proto::*;

/// A server whose accounts may be issued three sealed-send tokens at once (refilled at
/// `refill` a second), and which follows stored abuse decisions within a second.
fn server_refilling(refill: &str) -> Server {
    Server::start(
        &["--dev"],
        &[
            ("SIRR_DELIVERY__HOUSEKEEPING_SECS", "1"),
            ("SIRR_SEALED_TOKENS__ISSUE_PER_ACCOUNT__BURST", "3"),
            ("SIRR_SEALED_TOKENS__ISSUE_PER_ACCOUNT__PER_SECOND", refill),
        ],
    )
}

/// Three tokens, hardly refilled: the budget is what limits.
fn server() -> Server {
    server_refilling("0.0001")
}

/// Record a decision about `account` as an operator would, for the running server to apply
/// at its next housekeeping run (there is no admin command to ban by hand).
fn decide(server: &Server, account: AccountId, action: &str) {
    let db = rusqlite::Connection::open(server.data.join("sirr.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "INSERT INTO abuse_decisions (account, at_ms, action, reasons, by) VALUES (?, 1, ?, '[\"test\"]', 'operator')",
        rusqlite::params![&account.0[..], action],
    )
    .unwrap();
}

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

async fn sealed_session(server: &Server) -> Connection {
    let anon = Connection::connect(&server.url, None).await.unwrap();
    assert_eq!(
        anon.request(Request::SealedSession).await.unwrap(),
        Response::Done
    );
    anon
}

/// What one issuance request put on the wire and got back, and the tokens it made.
struct Fetched {
    blinded: Vec<Bytes>,
    evaluated: Vec<Bytes>,
    tokens: Vec<SealedToken>,
}

/// Ask for `n` tokens over `conn`, checking the key against what `anon` is shown.
async fn fetch(conn: &Connection, anon: &Connection, n: usize) -> Result<Fetched, ClientError> {
    let (req, blinded) = TokenRequest::new(n, &mut rand::rng()).unwrap();
    let r = conn
        .request(Request::IssueSealedTokens {
            blinded: blinded.clone(),
        })
        .await?;
    let Response::SealedTokens {
        key,
        evaluated,
        proof,
    } = r
    else {
        panic!("{r:?}")
    };
    let Response::SealedTokenKeys { keys } = anon.request(Request::SealedTokenKeys).await.unwrap() else {
        panic!("keys")
    };
    assert!(keys.contains(&key), "issued under a key everyone is shown");
    let tokens = req.finalize(key, &evaluated, &proof).unwrap();
    Ok(Fetched {
        blinded,
        evaluated,
        tokens,
    })
}

fn sealed_to(to: &Raw, access_key: [u8; 16], tokens: Vec<SealedToken>) -> Request {
    let mut id = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut id[..]);
    Request::SendSealed {
        message_id: MessageId(id),
        to: vec![SealedRecipient {
            account: to.account,
            devices: vec![to.device],
            access_key,
        }],
        payload: vec![0x5a; 512],
        epoch: None,
        ttl_secs: None,
        franking: None,
        tokens,
    }
}

fn code(r: Result<Response, ClientError>) -> Option<ErrorCode> {
    match r {
        Ok(_) => None,
        Err(e) => Some(e.code().unwrap_or_else(|| panic!("not a refusal: {e}"))),
    }
}

/// Until `f` holds (the server applies stored decisions at its next housekeeping run).
async fn eventually<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "the decision was not applied in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn queued_senders(server: &Server, account: AccountId) -> Vec<Option<Vec<u8>>> {
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
fn a_banned_account_spends_what_it_holds_then_cannot_send_sealed() {
    let server = server();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (alice, bob) = (
            register_raw(&server, "+15550700001").await,
            register_raw(&server, "+15550700002").await,
        );
        let bob_conn = hello(&server, &bob).await.unwrap();
        bob_conn
            .request(Request::SetAccessKey { access_key: [5; 16] })
            .await
            .unwrap();
        let conn = hello(&server, &alice).await.unwrap();
        let anon = sealed_session(&server).await;

        // Asked for ten, the account gets what its budget holds, then nothing more.
        let held = fetch(&conn, &anon, 10).await.unwrap().tokens;
        assert_eq!(held.len(), 3, "the hourly budget");
        assert_eq!(
            code(fetch(&conn, &anon, 1).await.map(|_| Response::Done)),
            Some(ErrorCode::RateLimited)
        );

        // A token pays once.
        assert_eq!(
            code(
                anon.request(sealed_to(&bob, [5; 16], vec![held[0].clone()]))
                    .await
            ),
            None
        );
        assert_eq!(
            code(
                anon.request(sealed_to(&bob, [5; 16], vec![held[0].clone()]))
                    .await
            ),
            Some(ErrorCode::BadSealedToken),
            "a token spent twice is refused"
        );

        // Banned: no sign-in, no new tokens.
        decide(&server, alice.account, "ban");
        eventually(|| async {
            code(hello(&server, &alice).await.map(|_| Response::Done)) == Some(ErrorCode::Banned)
        })
        .await;
        let more = conn
            .request(Request::IssueSealedTokens {
                blinded: TokenRequest::new(1, &mut rand::rng()).unwrap().1,
            })
            .await;
        assert!(
            matches!(&more, Err(ClientError::Server(e)) if e.code == ErrorCode::Banned)
                || matches!(&more, Err(ClientError::Connection(_))),
            "{more:?}"
        );

        // What it still held it can spend (few, and they expire with their key), then no more.
        for t in &held[1..] {
            assert_eq!(
                code(anon.request(sealed_to(&bob, [5; 16], vec![t.clone()])).await),
                None
            );
        }
        assert_eq!(
            code(anon.request(sealed_to(&bob, [5; 16], Vec::new())).await),
            Some(ErrorCode::BadSealedToken),
            "no token, no sealed send"
        );
        let mut forged = held[2].clone();
        forged.nonce[0] ^= 1;
        assert_eq!(
            code(anon.request(sealed_to(&bob, [5; 16], vec![forged])).await),
            Some(ErrorCode::BadSealedToken),
            "a made-up token does not verify"
        );
        assert_eq!(
            code(
                anon.request(sealed_to(&bob, [5; 16], vec![held[1].clone()]))
                    .await
            ),
            Some(ErrorCode::BadSealedToken)
        );
        let to_bob = queued_senders(&server, bob.account);
        assert_eq!(
            to_bob,
            vec![None, None, None],
            "three sealed messages, one per token"
        );
    });
}

#[test]
fn throttled_and_challenged_accounts_get_no_tokens() {
    let server = server();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let carol = register_raw(&server, "+15550700011").await;
        let dave = register_raw(&server, "+15550700012").await;
        let bob = register_raw(&server, "+15550700013").await;
        let bob_conn = hello(&server, &bob).await.unwrap();
        bob_conn
            .request(Request::SetAccessKey { access_key: [6; 16] })
            .await
            .unwrap();
        let anon = sealed_session(&server).await;
        let (c, d) = (
            hello(&server, &carol).await.unwrap(),
            hello(&server, &dave).await.unwrap(),
        );
        let held = fetch(&c, &anon, 1).await.unwrap().tokens;

        decide(&server, carol.account, "throttle");
        decide(&server, dave.account, "challenge");
        eventually(|| async {
            matches!(fetch(&c, &anon, 1).await, Err(ClientError::Server(e))
                if e.code == ErrorCode::RateLimited && e.message.contains("throttled"))
        })
        .await;
        match fetch(&d, &anon, 1).await {
            Err(ClientError::Server(e)) => {
                assert_eq!(e.code, ErrorCode::ChallengeRequired, "{e}");
                assert!(e.challenge.is_some());
            }
            other => panic!(
                "a challenged account got tokens: {:?}",
                other.map(|f| f.tokens.len())
            ),
        }
        // Carol spends the one she held; that is all she can send sealed.
        assert_eq!(code(anon.request(sealed_to(&bob, [6; 16], held)).await), None);
        assert_eq!(
            code(anon.request(sealed_to(&bob, [6; 16], Vec::new())).await),
            Some(ErrorCode::BadSealedToken)
        );
        assert_eq!(queued_senders(&server, bob.account), vec![None]);
    });
}

#[test]
fn contacts_still_write_sealed_and_a_throttled_one_falls_back_to_identified() {
    // The budget refills within a second: what stops the throttled account is its standing.
    let server = server_refilling("10");
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    register(&server, &alice, "+15550700021");
    register(&server, &bob, "+15550700022");
    let alice_id = account_of(&alice);
    let bob_id = account_of(&bob);

    // Bob writes first (identified); alice's answer is sealed, paid with a token.
    sirr_ok(&bob, &["send", "+15550700021", "hello alice"]);
    assert!(recv_json(&alice, "5").iter().any(|m| m["text"] == "hello alice"));
    sirr_ok(&alice, &["send", "+15550700022", "sealed one"]);
    assert_eq!(queued_senders(&server, bob_id), vec![None], "sealed");
    let got = recv_json(&bob, "5");
    let m = got.iter().find(|m| m["text"] == "sealed one").expect("delivered");
    assert_eq!(m["from"], "+15550700021");
    assert_eq!(m["verified"], true);

    // Throttled: the two tokens left in her wallet still pay; after them she writes
    // identified, under her throttle, where the abuse checks see her.
    decide(&server, alice_id, "throttle");
    std::thread::sleep(Duration::from_secs(3));
    for text in ["sealed two", "sealed three", "identified four"] {
        sirr_ok(&alice, &["send", "+15550700022", text]);
    }
    let senders = queued_senders(&server, bob_id);
    assert_eq!(senders.iter().filter(|s| s.is_none()).count(), 2, "{senders:?}");
    assert_eq!(
        senders
            .iter()
            .filter(|s| s.as_deref() == Some(&alice_id.0[..]))
            .count(),
        1,
        "{senders:?}"
    );
    let texts: Vec<String> = recv_json(&bob, "5")
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    for text in ["sealed two", "sealed three", "identified four"] {
        assert!(texts.iter().any(|t| t == text), "{text} in {texts:?}");
    }
}

#[test]
fn a_spent_token_is_not_tied_to_the_account_that_fetched_it() {
    let server = server();
    let (fetched, bob_account) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let alice = register_raw(&server, "+15550700031").await;
        let bob = register_raw(&server, "+15550700032").await;
        let bob_conn = hello(&server, &bob).await.unwrap();
        bob_conn
            .request(Request::SetAccessKey { access_key: [7; 16] })
            .await
            .unwrap();
        let conn = hello(&server, &alice).await.unwrap();
        let anon = sealed_session(&server).await;
        let f = fetch(&conn, &anon, 3).await.unwrap();
        for t in &f.tokens {
            assert_eq!(
                code(anon.request(sealed_to(&bob, [7; 16], vec![t.clone()])).await),
                None
            );
        }
        (f, bob.account)
    });
    // Neither what issuance saw (blinded and evaluated elements) nor what redemption saw
    // (nonces, outputs) is in the server's files or log, raw or in hex: there is no record
    // to join the two on. (Unlinkability itself is the blinding: the crypto crate's tests.)
    let files: Vec<Vec<u8>> = files_under(&server.data)
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let log = server.log();
    let mut needles: Vec<Vec<u8>> = Vec::new();
    needles.extend(fetched.blinded.iter().map(|b| b.to_vec()));
    needles.extend(fetched.evaluated.iter().map(|b| b.to_vec()));
    needles.extend(fetched.tokens.iter().map(|t| t.nonce.to_vec()));
    needles.extend(fetched.tokens.iter().map(|t| t.output.to_vec()));
    for n in &needles {
        let piece = &n[..16];
        assert!(
            !files.iter().any(|f| contains(f, piece)),
            "a token's bytes are stored"
        );
        let hex: String = piece.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!log.contains(&hex), "a token is logged");
    }
    // And the copies carry no sender.
    assert_eq!(queued_senders(&server, bob_account), vec![None, None, None]);
}

fn account_of(home: &Path) -> AccountId {
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(home, &["whoami", "--json"])).unwrap();
    who["account"].as_str().unwrap().parse().unwrap()
}

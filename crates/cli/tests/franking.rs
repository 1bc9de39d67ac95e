//! Verified abuse reports prove that the reported account sent that content to the reporter:
//! the forgery from the security review (a commitment naming the victim, sent to one's own
//! second device and reported 50 times) verifies nothing, genuine sealed and identified
//! messages verify once each however often they are reported, and a client refuses a message
//! whose franking does not verify.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use sirr_client::{Connection, Event};
use sirr_proto::*;

/// A device registered over the raw protocol (the attacker needs no MLS: the server relays
/// whatever it is given).
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

/// A second device of `approver`'s account (registering the number again would start the
/// account anew instead).
async fn link_raw(server: &Server, approver: &Connection) -> Raw {
    let (account, device, secret) = link_device_raw(server, approver).await;
    Raw {
        account,
        device,
        secret,
    }
}

async fn hello(server: &Server, r: &Raw) -> Connection {
    let conn = Connection::connect(&server.url, None).await.unwrap();
    conn.request(Request::Hello {
        protocol: PROTOCOL_VERSION,
        account: r.account,
        device: r.device,
        secret: r.secret.clone(),
    })
    .await
    .unwrap();
    conn
}

/// The next pushed envelope on `conn`.
async fn next_envelope(conn: &mut Connection) -> Envelope {
    loop {
        match conn.next_event(Duration::from_secs(10)).await {
            Some(Event::Message(e)) => return e,
            Some(Event::QueueEmpty) => continue,
            other => panic!("no envelope: {other:?}"),
        }
    }
}

fn account_of(home: &Path) -> AccountId {
    let who: serde_json::Value = serde_json::from_str(&sirr_ok(home, &["whoami", "--json"])).unwrap();
    who["account"].as_str().unwrap().parse().unwrap()
}

/// How many report entries `home`'s account has in its disclosure ledger.
fn reported_entries(home: &Path) -> usize {
    sirr_ok(home, &["account", "disclosures", "--json"])
        .matches("reported for abuse")
        .count()
}

/// A report revealing the message in `env` as sent by the victim: the forged opening, and the
/// fields a report carries to prove the sender (the attacker fills them as best it can).
fn forged(env: &Envelope, plaintext: &[u8], key: [u8; 32], signature: [u8; 64]) -> ReportedMessage {
    ReportedMessage {
        message_id: env.message_id,
        server_ts: env.server_ts,
        plaintext: plaintext.to_vec(),
        franking_key: key,
        franking: env.franking.expect("the server tagged the commitment"),
        sender_device: DeviceId(1),
        sealed: env.from.is_none(),
        conversation: ConversationId([4; 16]),
        signature,
    }
}

/// The exact attack of the security review: the attacker sends a message to its own second
/// device with a commitment naming the victim, then reports the victim with it 50 times in
/// one report. On main this gave `verified: 50` and 50 entries in the victim's ledger. Also
/// the same through sealed sender, with a real signature by the attacker's own device key.
#[test]
fn a_commitment_naming_the_victim_verifies_nothing_and_leaves_no_ledger_entry() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let victim_home = dir.path().join("victim");
    register(&server, &victim_home, "+15550700001");
    let victim = account_of(&victim_home);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let verified = rt.block_on(async {
        let a1 = register_raw(&server, "+15550700002").await;
        let sender = hello(&server, &a1).await;
        let a2 = link_raw(&server, &sender).await;
        assert_eq!(a1.account, a2.account, "one attacker account, two devices");
        let mut reporter = hello(&server, &a2).await;
        let key = [7u8; 32];
        let plaintext = b"something the victim never wrote".to_vec();
        let commitment = sirr_crypto::franking::commit(&key, victim, &plaintext);
        let r = sender
            .request(Request::Send {
                message_id: MessageId([1; 16]),
                to: vec![Recipient {
                    account: a1.account,
                    devices: vec![a2.device],
                }],
                payload: b"opaque".to_vec(),
                epoch: None,
                ttl_secs: None,
                franking: Some(commitment),
            })
            .await
            .unwrap();
        assert!(matches!(r, Response::Sent { .. }), "{r:?}");
        let env = next_envelope(&mut reporter).await;
        reporter.ack(vec![env.seq]).await.unwrap();
        let report = forged(&env, &plaintext, key, [0; 64]);
        let r = reporter
            .request(Request::Report {
                account: victim,
                messages: vec![report; 50],
            })
            .await
            .unwrap();
        let Response::Reported { verified: identified } = r else {
            panic!("{r:?}")
        };

        // Sealed: the attacker writes to itself without naming itself, and signs the
        // commitment with a real device key of its own.
        let token = [9u8; 16];
        assert_eq!(
            reporter
                .request(Request::SetAccessKey { access_key: token })
                .await
                .unwrap(),
            Response::Done
        );
        let anon = Connection::connect(&server.url, None).await.unwrap();
        anon.request(Request::SealedSession).await.unwrap();
        // A sealed send is paid with an anonymous token, which the attacker's account gets.
        let (ask, blinded) = sirr_crypto::tokens::TokenRequest::new(1, &mut rand::rng()).unwrap();
        let Response::SealedTokens {
            key: token_key,
            evaluated,
            proof,
        } = reporter
            .request(Request::IssueSealedTokens { blinded })
            .await
            .unwrap()
        else {
            panic!("tokens")
        };
        let paid = ask.finalize(token_key, &evaluated, &proof).unwrap();
        let r = anon
            .request(Request::SendSealed {
                message_id: MessageId([2; 16]),
                to: vec![SealedRecipient {
                    account: a1.account,
                    devices: vec![a1.device, a2.device],
                    access_key: token,
                }],
                payload: b"opaque".to_vec(),
                epoch: None,
                ttl_secs: None,
                franking: Some(commitment),
                tokens: paid,
            })
            .await
            .unwrap();
        assert!(matches!(r, Response::Sent { .. }), "{r:?}");
        let env = next_envelope(&mut reporter).await;
        assert_eq!(env.from, None, "delivered sealed");
        let own = sirr_crypto::DeviceIdentity::generate(a1.account, a1.device, &mut rand::rng());
        let signature = sirr_crypto::franking::sign(&own, &commitment, ConversationId([4; 16]));
        let r = reporter
            .request(Request::Report {
                account: victim,
                messages: vec![forged(&env, &plaintext, key, signature); 50],
            })
            .await
            .unwrap();
        let Response::Reported { verified: sealed } = r else {
            panic!("{r:?}")
        };
        (identified, sealed)
    });
    assert_eq!(verified, (0, 0), "(identified, sealed)");
    assert_eq!(
        reported_entries(&victim_home),
        0,
        "nothing in the victim's ledger"
    );
    sirr_ok(&victim_home, &["account", "disclosures", "--verify"]);
}

/// Alice writes to bob first (identified: she has no token for him yet); bob answers (sealed:
/// her message carried her profile key). Returns both homes.
fn alice_and_bob(server: &Server, dir: &Path, n: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    let (alice, bob) = (dir.join("alice"), dir.join("bob"));
    let (pa, pb) = (format!("+155507{n:03}1"), format!("+155507{n:03}2"));
    register(server, &alice, &pa);
    register(server, &bob, &pb);
    sirr_ok(&alice, &["send", &pb, "first, identified"]);
    assert!(
        recv_json(&bob, "5")
            .iter()
            .any(|m| m["text"] == "first, identified")
    );
    sirr_ok(&bob, &["send", &pa, "answer, sealed"]);
    assert!(
        recv_json(&alice, "5")
            .iter()
            .any(|m| m["text"] == "answer, sealed")
    );
    (alice, bob)
}

/// The one reportable message `home` holds from `from`.
fn opening(home: &Path, from: AccountId) -> ReportedMessage {
    let state = sirr_client::state::State::open(home).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut kept = rt.block_on(state.franked_from(from, 10)).unwrap();
    assert_eq!(kept.len(), 1);
    kept.remove(0).opening
}

async fn report(server: &Server, home: &Path, peer: AccountId, messages: Vec<ReportedMessage>) -> u32 {
    let conn = session(server, home).await;
    let r = conn
        .request(Request::Report {
            account: peer,
            messages,
        })
        .await
        .unwrap();
    conn.close().await;
    let Response::Reported { verified } = r else {
        panic!("{r:?}")
    };
    verified
}

#[test]
fn genuine_sealed_and_identified_messages_verify_once_even_if_repeated() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = alice_and_bob(&server, dir.path(), 10);
    let (alice_id, bob_id) = (account_of(&alice), account_of(&bob));
    let identified = opening(&bob, alice_id);
    let sealed = opening(&alice, bob_id);
    assert!(!identified.sealed && sealed.sealed, "one of each kind");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counts = rt.block_on(async {
        (
            report(&server, &bob, alice_id, vec![identified.clone(); 3]).await,
            report(&server, &alice, bob_id, vec![sealed.clone(); 3]).await,
        )
    });
    assert_eq!(counts, (1, 1), "(identified, sealed)");
    assert_eq!(reported_entries(&alice), 1);
    assert_eq!(reported_entries(&bob), 1);
    for home in [&alice, &bob] {
        sirr_ok(home, &["account", "disclosures", "--verify"]);
    }
}

#[test]
fn a_message_reported_twice_counts_once() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = alice_and_bob(&server, dir.path(), 20);
    let out = sirr_ok(&bob, &["report", "+1555070201"]);
    assert!(out.contains("verified 1"), "{out}");
    let out = sirr_ok(&bob, &["report", "+1555070201"]);
    assert!(out.contains("verified 0"), "the same message again: {out}");
    let alice_id = account_of(&alice);
    let again = opening(&bob, alice_id);
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(report(&server, &bob, alice_id, vec![again])), 0);
    assert_eq!(reported_entries(&alice), 1, "one entry for one message");
}

/// A client refuses (with a notice) a message whose franking does not verify, so nobody can
/// send content that could not be reported: here a real MLS message whose commitment names
/// someone else, and one with no commitment at all.
#[test]
fn a_message_whose_franking_does_not_verify_is_refused() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = alice_and_bob(&server, dir.path(), 30);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut client = sirr_client::Client::open(&alice).await.unwrap();
        client.connect().await.unwrap();
        let bob_phone = Phone::parse("+1555070302").unwrap();
        let mut requests = Vec::new();
        for (text, franking) in [
            (
                "named someone else",
                Some(sirr_crypto::franking::commit(&[1; 32], AccountId([3; 16]), b"x")),
            ),
            ("unfranked", None),
        ] {
            let Request::Send {
                message_id,
                to,
                payload,
                epoch,
                ttl_secs,
                ..
            } = client.encrypt_text(&bob_phone, text).await.unwrap()
            else {
                panic!("a send")
            };
            requests.push(Request::Send {
                message_id,
                to,
                payload,
                epoch,
                ttl_secs,
                franking,
            });
        }
        client.disconnect().await;
        let conn = session(&server, &alice).await;
        for r in requests {
            assert!(matches!(conn.request(r).await.unwrap(), Response::Sent { .. }));
        }
        conn.close().await;
    });
    let got = recv_json(&bob, "5");
    assert!(
        got.iter()
            .all(|m| m["text"] != "named someone else" && m["text"] != "unfranked"),
        "{got:?}"
    );
    let notices = got.iter().filter(|m| m["direction"] == "notice").count();
    assert_eq!(notices, 2, "{got:?}");
    let alice_id = account_of(&alice);
    let state = sirr_client::state::State::open(&bob).unwrap();
    assert_eq!(
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(state.franked_from(alice_id, 10))
            .unwrap()
            .len(),
        1,
        "only the genuine one is kept"
    );
}

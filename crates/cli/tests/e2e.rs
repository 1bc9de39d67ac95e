//! End-to-end encryption through the real binaries: one-to-one and group chats, a linked
//! device, a removed member, what the server and the network can see, and bad input.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use serde_json::Value;
use sirr_client::Connection;
use sirr_proto::content::Sealed;
use sirr_proto::*;

const ALICE: &str = "+15550100001";
const BOB: &str = "+15550100002";
const CAROL: &str = "+15550100003";

fn texts(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["direction"] != "notice")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

/// The message rows (not notices).
fn messages(msgs: &[Value]) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m["direction"] != "notice")
        .cloned()
        .collect()
}

fn notices(msgs: &[Value]) -> Vec<String> {
    msgs.iter()
        .filter(|m| m["direction"] == "notice")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn alice_bob_and_carol_chat_link_a_device_and_remove_a_member() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let home = |n: &str| dir.path().join(n);
    let (alice, bob, carol, bob2) = (home("alice"), home("bob"), home("carol"), home("bob2"));
    register(&server, &alice, ALICE);
    register(&server, &bob, BOB);
    register(&server, &carol, CAROL);

    // One-to-one, both ways.
    sirr_ok(&alice, &["send", BOB, "hi bob"]);
    let got = recv_json(&bob, "5");
    assert_eq!(texts(&got), ["hi bob"], "{got:?}");
    assert_eq!(got[0]["from"], ALICE);
    assert_eq!(got[0]["verified"], true);
    assert!(got[0]["group"].is_null());
    sirr_ok(&bob, &["send", ALICE, "hi alice"]);
    sirr_ok(&carol, &["send", ALICE, "hi from carol"]);
    let got = recv_json(&alice, "5");
    assert_eq!(texts(&got), ["hi alice", "hi from carol"], "{got:?}");

    // A group of three.
    let id = sirr_ok(&alice, &["group", "create", "friends", BOB, CAROL]);
    assert_eq!(id.trim().len(), 32, "prints the group id: {id}");
    sirr_ok(&alice, &["group", "send", "friends", "hello friends"]);
    for h in [&bob, &carol] {
        let got = recv_json(h, "5");
        assert_eq!(texts(&got), ["hello friends"], "{got:?}");
        assert_eq!(got.last().unwrap()["group"], "friends");
        assert_eq!(got.last().unwrap()["from"], ALICE);
    }
    sirr_ok(&bob, &["group", "send", "friends", "hi all"]);
    for h in [&alice, &carol] {
        assert_eq!(texts(&recv_json(h, "5")), ["hi all"]);
    }
    let list = sirr_ok(&carol, &["group", "list", "--json"]);
    let g: Value = serde_json::from_str(list.lines().find(|l| l.contains("friends")).unwrap()).unwrap();
    assert_eq!(g["devices"], 3);
    assert_eq!(g["members"].as_array().unwrap().len(), 3);

    // Bob links a second device; it gets what is sent from now on, in both conversations.
    link_ok(&server, &bob2, &bob);
    let who: Value = serde_json::from_str(&sirr_ok(&bob2, &["whoami", "--json"])).unwrap();
    assert_eq!(who["phone"], BOB);
    assert_eq!(who["device"], 2);
    sirr_ok(&alice, &["send", BOB, "after the link"]);
    sirr_ok(&alice, &["group", "send", "friends", "group after the link"]);
    for h in [&bob, &bob2] {
        let got = recv_json(h, "5");
        let t = texts(&got);
        assert!(t.contains(&"after the link".to_owned()), "{got:?}");
        assert!(t.contains(&"group after the link".to_owned()), "{got:?}");
    }
    // What one of bob's devices sends, the other sees as sent.
    sirr_ok(&bob2, &["send", ALICE, "from bob's second device"]);
    let got = recv_json(&alice, "5");
    assert_eq!(texts(&got), ["from bob's second device"]);
    let m = &messages(&got)[0];
    assert_eq!(m["device"], 2);
    assert_eq!(m["verified"], true);
    // Alice was told that bob has a new device.
    assert!(
        notices(&got).iter().any(|n| n.contains("has a new device")),
        "{got:?}"
    );
    let got = recv_json(&bob, "5");
    assert_eq!(texts(&got), ["from bob's second device"]);
    assert_eq!(messages(&got)[0]["direction"], "out");
    assert_eq!(
        texts(&recv_json(&carol, "1")).len(),
        1,
        "carol got the group message"
    );

    // The safety number is the same on both sides, and linking did not change it.
    let a = sirr_ok(&alice, &["safety", BOB]);
    assert_eq!(a, sirr_ok(&bob, &["safety", ALICE]));
    assert_eq!(a, sirr_ok(&bob2, &["safety", ALICE]));
    assert_eq!(a.trim().split(' ').count(), 12);
    assert_ne!(a, sirr_ok(&alice, &["safety", CAROL]));

    // Carol is removed: she is told, and what follows does not reach or open for her.
    sirr_ok(&alice, &["group", "remove", "friends", CAROL]);
    let got = recv_json(&carol, "5");
    assert!(
        notices(&got)
            .iter()
            .any(|n| n.contains("removed from the group \"friends\"")),
        "{got:?}"
    );
    let before = server_payloads(&server.data);
    sirr_ok(&alice, &["group", "send", "friends", "after carol left"]);
    let fresh: Vec<Vec<u8>> = server_payloads(&server.data)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!fresh.is_empty());
    assert!(recv_json(&carol, "1").is_empty(), "nothing is routed to carol");
    // Even handed the ciphertext, carol's device cannot open it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = session(&server, &alice).await;
        let carol_account = account_of(&conn, CAROL).await;
        for payload in &fresh {
            send_raw(&conn, carol_account.clone(), payload.clone()).await;
        }
    });
    let got = recv_json(&carol, "5");
    assert!(texts(&got).is_empty(), "carol decrypted something: {got:?}");
    assert!(
        !notices(&got).is_empty(),
        "carol is told a message could not be opened"
    );
    for h in [&bob, &bob2] {
        assert!(texts(&recv_json(h, "5")).contains(&"after carol left".to_owned()));
    }
    let list = sirr_ok(&carol, &["group", "list", "--json"]);
    assert!(!list.contains("friends"), "{list}");

    // Bob renames the group for everyone, then leaves it with both his devices.
    sirr_ok(&bob, &["group", "rename", "friends", "pals"]);
    recv_json(&alice, "5");
    recv_json(&bob2, "5");
    for h in [&alice, &bob2] {
        assert!(sirr_ok(h, &["group", "list"]).contains("pals"));
    }
    sirr_ok(&bob, &["group", "leave", "pals"]);
    recv_json(&bob2, "5"); // bob's other device follows him out
    recv_json(&alice, "5"); // a remaining member commits the departures
    recv_json(&alice, "2");
    for h in [&bob, &bob2] {
        let got = recv_json(h, "5");
        assert!(!sirr_ok(h, &["group", "list"]).contains("pals"), "{got:?}");
    }
    let list = sirr_ok(&alice, &["group", "list", "--json"]);
    let g: Value = serde_json::from_str(list.lines().find(|l| l.contains("pals")).unwrap()).unwrap();
    assert_eq!(g["devices"], 1, "only alice is left: {g}");
    sirr_ok(&alice, &["group", "send", "pals", "anyone?"]);
    for h in [&bob, &bob2] {
        assert!(texts(&recv_json(h, "1")).is_empty());
    }
}

#[test]
fn neither_the_server_nor_the_network_sees_content() {
    let server = Server::dev();
    let tap = Tap::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    for (h, p) in [(&alice, ALICE), (&bob, BOB)] {
        sirr_ok(
            h,
            &["register", "--server", &tap.url, "--phone", p, "--code", "000000"],
        );
    }
    let mut raw = [0u8; 12];
    getrandom(&mut raw);
    let canary = format!("CANARY{}", hex(&raw));
    sirr_ok(&alice, &["send", BOB, &format!("1:1 {canary} 1:1")]);
    // The group's name is content too: it travels only inside the MLS ciphertext.
    let mut raw_name = [0u8; 12];
    getrandom(&mut raw_name);
    let group = format!("GROUP{}", hex(&raw_name));
    sirr_ok(&alice, &["group", "create", &group, BOB]);
    sirr_ok(&alice, &["group", "send", &group, &canary]);
    let got = recv_json(&bob, "5");
    assert_eq!(texts(&got).len(), 2, "{got:?}");
    assert!(texts(&got).iter().all(|t| t.contains(&canary)));
    sirr_ok(&bob, &["send", ALICE, &format!("reply {canary}")]);
    assert_eq!(texts(&recv_json(&alice, "5")).len(), 1);
    // Leave some undelivered in the server's queue too.
    sirr_ok(&alice, &["send", BOB, &canary]);

    let mut server = server;
    assert!(server.terminate().success());
    let mut forms = forms_of(&canary);
    forms.extend(
        forms_of(&group)
            .into_iter()
            .map(|(what, f)| (format!("group name, {what}"), f)),
    );
    let mut scanned = 0;
    for path in files_under(&server.data) {
        let bytes = std::fs::read(&path).unwrap();
        scanned += bytes.len();
        for (what, f) in &forms {
            assert!(
                !contains(&bytes, f),
                "{what} of the canary found in {}",
                path.display()
            );
        }
    }
    assert!(
        scanned > 10_000,
        "the data directory was scanned ({scanned} bytes)"
    );
    let log = server.log();
    for (what, f) in &forms {
        assert!(
            !contains(log.as_bytes(), f),
            "{what} of the canary in the server log"
        );
    }
    // The frames on the wire, unmasked, both ways.
    let frames = tap.frames();
    assert!(
        frames.len() > 20,
        "the tap saw the traffic ({} frames)",
        frames.len()
    );
    for f in &frames {
        for (what, form) in &forms {
            assert!(!contains(f, form), "{what} of the canary in a WebSocket frame");
        }
    }
    // The tap is not blind: it sees the phone numbers the protocol carries in the clear.
    assert!(frames.iter().any(|f| contains(f, BOB.as_bytes())));
}

#[test]
fn bad_input_is_refused_and_shown_never_crashing_anyone() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    register(&server, &alice, ALICE);
    register(&server, &bob, BOB);
    sirr_ok(&alice, &["send", BOB, "first"]);
    assert_eq!(texts(&recv_json(&bob, "5")), ["first"]);

    // Take a real ciphertext as the server stores it, before bob fetches it.
    let before = server_payloads(&server.data);
    sirr_ok(&alice, &["send", BOB, "second"]);
    let real: Vec<u8> = server_payloads(&server.data)
        .into_iter()
        .find(|p| !before.contains(p))
        .unwrap();
    assert_eq!(texts(&recv_json(&bob, "5")), ["second"]);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let conn = session(&server, &alice).await;
        let bob_devices = account_of(&conn, BOB).await;
        // A replay of the real ciphertext under a new message id.
        send_raw(&conn, bob_devices.clone(), real.clone()).await;
        // A tampered one: one bit flipped in the MLS ciphertext.
        let Sealed::Mls {
            conversation,
            mut message,
        } = Sealed::decode(&real).unwrap()
        else {
            panic!("not an MLS message")
        };
        let n = message.len();
        message[n - 10] ^= 0x40;
        send_raw(
            &conn,
            bob_devices.clone(),
            Sealed::Mls {
                conversation,
                message,
            }
            .encode(),
        )
        .await;
        // Garbage, and a Welcome that is not one.
        send_raw(&conn, bob_devices.clone(), vec![0xff; 300]).await;
        send_raw(
            &conn,
            bob_devices,
            Sealed::Welcome {
                conversation,
                welcome: vec![1; 100],
            }
            .encode(),
        )
        .await;
    });
    let got = recv_json(&bob, "5");
    assert!(texts(&got).is_empty(), "nothing bad became a message: {got:?}");
    let n = notices(&got);
    assert_eq!(n.len(), 4, "each is shown to the user: {n:?}");
    assert!(n[0].contains("replay") || n[0].contains("rejected"), "{n:?}");
    assert!(n[1].contains("rejected"), "{n:?}");
    // After all that, the conversation still works both ways.
    sirr_ok(&alice, &["send", BOB, "still fine"]);
    assert_eq!(texts(&recv_json(&bob, "5")), ["still fine"]);
    sirr_ok(&bob, &["send", ALICE, "yes"]);
    assert_eq!(texts(&recv_json(&alice, "5")), ["yes"]);

    // A device the account never approved is refused too: `accounts::a_device_not_on_the_signed_list_cannot_remove_devices_or_delete_the_account`.
}

#[test]
fn concurrent_group_changes_are_ordered_and_every_member_converges() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let people: Vec<(std::path::PathBuf, String)> = (0..5)
        .map(|i| (dir.path().join(format!("p{i}")), format!("+1555020000{i}")))
        .collect();
    for (h, p) in &people {
        register(&server, h, p);
    }
    let (owner, _) = &people[0];
    sirr_ok(owner, &["group", "create", "club", &people[1].1, &people[2].1]);
    for (h, _) in &people[1..3] {
        recv_json(h, "5");
    }
    // Two members add two people at the same time: the server orders the commits, the loser
    // catches up and retries.
    let t1 = {
        let (h, p) = (people[1].0.clone(), people[3].1.clone());
        std::thread::spawn(move || sirr(&h, &["group", "add", "club", &p]))
    };
    let t2 = {
        let (h, p) = (people[2].0.clone(), people[4].1.clone());
        std::thread::spawn(move || sirr(&h, &["group", "add", "club", &p]))
    };
    for t in [t1, t2] {
        let out = t.join().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    sirr_ok(owner, &["group", "send", "club", "everyone here?"]);
    for (h, _) in &people[1..] {
        let got = recv_json(h, "5");
        assert!(texts(&got).contains(&"everyone here?".to_owned()), "{got:?}");
    }
    let epochs: HashSet<String> = people
        .iter()
        .map(|(h, _)| {
            let l = sirr_ok(h, &["group", "list", "--json"]);
            let v: Value = serde_json::from_str(l.lines().next().unwrap()).unwrap();
            assert_eq!(v["devices"], 5);
            v["epoch"].to_string()
        })
        .collect();
    assert_eq!(epochs.len(), 1, "all members at the same epoch: {epochs:?}");
}

// ---- helpers ----

/// Every payload waiting on the server (each stored once, however many devices wait for it).
fn server_payloads(data: &Path) -> Vec<Vec<u8>> {
    let db = std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "db"))
        .expect("the server's database file");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut s = conn.prepare("SELECT payload FROM payloads ORDER BY id").unwrap();
    s.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

async fn account_of(conn: &Connection, phone: &str) -> Recipient {
    let Response::Directory { entries } = conn
        .request(Request::Lookup {
            phones: vec![Phone::parse(phone).unwrap()],
        })
        .await
        .unwrap()
    else {
        panic!("no directory answer")
    };
    Recipient {
        account: entries[0].account,
        devices: entries[0].devices.clone(),
    }
}

async fn send_raw(conn: &Connection, to: Recipient, payload: Vec<u8>) {
    let mut id = [0u8; 16];
    getrandom(&mut id);
    let r = conn
        .request(Request::Send {
            message_id: MessageId(id),
            to: vec![to],
            payload,
            epoch: None,
            ttl_secs: None,
            franking: None,
        })
        .await;
    assert!(matches!(r, Ok(Response::Sent { .. })), "{r:?}");
}

fn getrandom(buf: &mut [u8]) {
    use rand::RngCore;
    rand::rng().fill_bytes(buf);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The canary as bytes in every form that would betray it: UTF-8, UTF-16 (both byte orders),
/// and base64 (standard and URL-safe) at each of the three alignments a surrounding text
/// could give it (the stable middle of the encoding).
fn forms_of(canary: &str) -> Vec<(String, Vec<u8>)> {
    let mut forms = vec![("UTF-8".to_owned(), canary.as_bytes().to_vec())];
    forms.push(("hex".into(), hex(canary.as_bytes()).into_bytes()));
    forms.push(("HEX".into(), hex(canary.as_bytes()).to_uppercase().into_bytes()));
    let le: Vec<u8> = canary.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let be: Vec<u8> = canary.encode_utf16().flat_map(u16::to_be_bytes).collect();
    forms.push(("UTF-16LE".into(), le));
    forms.push(("UTF-16BE".into(), be));
    for (name, engine) in [
        ("base64", base64::engine::general_purpose::STANDARD),
        ("base64url", base64::engine::general_purpose::URL_SAFE),
    ] {
        for pad in 0..3 {
            let mut text = "x".repeat(pad).into_bytes();
            text.extend_from_slice(canary.as_bytes());
            let enc = engine.encode(&text);
            // Skip the characters that depend on the unknown prefix, and the tail.
            let start = (pad * 4).div_ceil(3) + 1;
            let stable = &enc.as_bytes()[start..enc.len() - 4];
            forms.push((format!("{name} (offset {pad})"), stable.to_vec()));
        }
    }
    forms
}

/// A TCP relay in front of the server that records both directions, to read the WebSocket
/// frames the client SDK really sends and receives.
struct Tap {
    url: String,
    /// Per relayed connection: client-to-server and server-to-client bytes.
    streams: Arc<Mutex<Vec<(Recording, Recording)>>>,
    /// Relay threads still running (two per connection); zero once every connection closed.
    open: Arc<std::sync::atomic::AtomicUsize>,
}

type Recording = Arc<Mutex<Vec<u8>>>;

impl Tap {
    fn start(server_port: u16) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let streams: Arc<Mutex<Vec<_>>> = Arc::default();
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, o) = (streams.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let upstream = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
                let (up, down): (Recording, Recording) = Default::default();
                // Counted before the connection is visible, so `frames` never sees a stream
                // whose relay has not started.
                o.fetch_add(2, std::sync::atomic::Ordering::SeqCst);
                s.lock().unwrap().push((up.clone(), down.clone()));
                pipe(
                    client.try_clone().unwrap(),
                    upstream.try_clone().unwrap(),
                    up,
                    o.clone(),
                );
                pipe(upstream, client, down, o.clone());
            }
        });
        Tap { url, streams, open }
    }

    /// Every WebSocket message seen (fragments joined), unmasked, once every relayed
    /// connection has closed. Fails the test if a stream does not parse to its last byte: a
    /// frame the parser skipped could be the one that holds the canary.
    fn frames(&self) -> Vec<Vec<u8>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.open.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "a relayed connection is still open"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut out = Vec::new();
        for (i, (up, down)) in self.streams.lock().unwrap().iter().enumerate() {
            for (dir, rec) in [("client to server", up), ("server to client", down)] {
                let bytes = rec.lock().unwrap().clone();
                match ws_frames(&bytes) {
                    Ok(messages) => out.extend(messages),
                    Err(e) => panic!("connection {i}, {dir}: {e}"),
                }
            }
        }
        out
    }
}

fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    record: Arc<Mutex<Vec<u8>>>,
    open: Arc<std::sync::atomic::AtomicUsize>,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown(std::net::Shutdown::Write);
                    open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    return;
                }
                Ok(n) => {
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to.write_all(&buf[..n]).is_err() {
                        open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    });
}

/// Parse a recorded byte stream: the HTTP upgrade, then RFC 6455 frames, into whole messages
/// (continuation frames joined) and control-frame payloads. Every byte must belong to a whole
/// frame (the tap reads only after every connection closed); compressed frames (RSV1) are refused,
/// because the canary search cannot see into them.
fn ws_frames(stream: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let Some(head) = stream.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if stream.is_empty() {
            Ok(Vec::new())
        } else {
            Err(format!("{} bytes and no HTTP upgrade", stream.len()))
        };
    };
    let mut b = &stream[head + 4..];
    let mut out = Vec::new();
    let mut message: Option<Vec<u8>> = None;
    while !b.is_empty() {
        if b.len() < 2 {
            return Err("a frame header cut short".into());
        }
        let (fin, rsv, opcode) = (b[0] & 0x80 != 0, b[0] & 0x70, b[0] & 0x0f);
        if rsv != 0 {
            return Err(format!("a frame with RSV bits {rsv:#x} (compression?)"));
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize, 10),
            n @ 0..=125 => (n as usize, 2),
            _ => return Err("a frame length cut short".into()),
        };
        let mask = if masked {
            if b.len() < at + 4 {
                return Err("a frame mask cut short".into());
            }
            let m = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        if b.len() < at + len {
            return Err(format!("a frame of {len} bytes with {} left", b.len() - at));
        }
        let mut payload = b[at..at + len].to_vec();
        if let Some(m) = mask {
            for (i, x) in payload.iter_mut().enumerate() {
                *x ^= m[i % 4];
            }
        }
        b = &b[at + len..];
        match opcode {
            // Control frames stand alone, even between the fragments of a message.
            0x8..=0xf => out.push(payload),
            0x0 => match message.as_mut() {
                Some(m) => m.extend_from_slice(&payload),
                None => return Err("a continuation frame with no message".into()),
            },
            _ => {
                if message.is_some() {
                    return Err("a new message inside a fragmented one".into());
                }
                message = Some(payload);
            }
        }
        if fin && opcode < 0x8 {
            out.extend(message.take());
        }
    }
    if message.is_some() {
        return Err("a fragmented message never finished".into());
    }
    Ok(out)
}

#[test]
fn a_passphrase_locks_the_keys_at_rest() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let alice = dir.path().join("alice");
    register(&server, &alice, ALICE);
    let key = std::fs::metadata(alice.join("state.key")).unwrap();
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(bin("sirr"));
        c.arg("--home")
            .arg(&alice)
            .args(args)
            .env_remove("SIRR_PASSPHRASE");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let out = run(
        &["passphrase", "set"],
        &[("SIRR_NEW_PASSPHRASE", "correct horse battery")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["recv"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked with a passphrase"));
    let out = run(&["recv"], &[("SIRR_PASSPHRASE", "wrong horse battery")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
    let out = run(&["recv"], &[("SIRR_PASSPHRASE", "correct horse battery")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(
        &["passphrase", "remove"],
        &[("SIRR_PASSPHRASE", "correct horse battery")],
    );
    assert!(out.status.success());
    assert!(run(&["recv"], &[]).status.success());
}

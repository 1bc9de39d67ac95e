//! One account (or one address) cannot make the server's memory or storage grow without bound,
//! whatever it sends. Each test starts a real `sirrd`, drives it with raw frames as a hostile
//! client would, and reads the server's memory from `/proc/PID/status` (`VmRSS` now, `VmHWM`
//! the peak). Figures are printed (`--nocapture`) for the record.
//!
//! The flood size is `SIRR_BOUNDS_FLOOD` blocks (default 200,000, about 35 s in a debug build;
//! the figures in the report were taken with 1,000,000); sends use a twentieth of it, each
//! naming 64 accounts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use sirr_proto::*;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const MIB: u64 = 1024 * 1024;

/// A field of /proc/PID/status, in bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

fn rss(pid: u32) -> u64 {
    proc_status(pid, "VmRSS:")
}

fn peak(pid: u32) -> u64 {
    proc_status(pid, "VmHWM:")
}

fn flood() -> u32 {
    std::env::var("SIRR_BOUNDS_FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

async fn raw(server: &Server) -> Ws {
    let url = format!("ws://127.0.0.1:{}/v1/websocket", server.port);
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// Next response frame (pushes and control frames are skipped).
async fn next_response(ws: &mut Ws) -> Option<(u32, Result<Response, ErrorBody>)> {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .ok()??
        {
            Ok(Message::Binary(b)) => match decode_server_frame(&b, 64 * MIB as usize) {
                Ok(ServerFrame::Response { id, result }) => return Some((id, result)),
                Ok(ServerFrame::Closing(_)) => return None,
                Ok(_) => continue,
                Err(e) => panic!("undecodable frame: {e}"),
            },
            Ok(Message::Close(_)) => return None,
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

async fn call(ws: &mut Ws, id: u32, body: Request) -> Result<Response, ErrorBody> {
    let frame = ClientFrame::Request { id, body };
    ws.send(Message::Binary(encode(&frame).into())).await.unwrap();
    let (got, result) = next_response(ws).await.expect("an answer");
    assert_eq!(got, id);
    result
}

/// A raw session signed in as `home`'s device.
async fn signed_in(server: &Server, home: &std::path::Path) -> (Ws, DeviceAddress) {
    let creds = sirr_client::state::State::open(home)
        .unwrap()
        .credentials()
        .unwrap();
    let mut ws = raw(server).await;
    let hello = Request::Hello {
        protocol: PROTOCOL_VERSION,
        account: creds.account,
        device: creds.device,
        secret: creds.secret().unwrap(),
    };
    assert!(matches!(
        call(&mut ws, 1, hello).await,
        Ok(Response::Welcome { .. })
    ));
    let me = DeviceAddress {
        account: creds.account,
        device: creds.device,
    };
    (ws, me)
}

/// Send `n` requests made by `make` pipelined (the server reads as fast as its in-flight bound
/// allows), and count the answers by outcome: (accepted, refused by code).
async fn pipeline(
    ws: Ws,
    n: u32,
    make: impl Fn(u32) -> Request + Send + 'static,
) -> (u64, std::collections::BTreeMap<String, u64>) {
    let (mut sink, mut stream) = ws.split();
    let writer = tokio::spawn(async move {
        for i in 0..n {
            let frame = ClientFrame::Request {
                id: 10 + i,
                body: make(i),
            };
            sink.feed(Message::Binary(encode(&frame).into())).await.unwrap();
            if i % 256 == 255 {
                sink.flush().await.unwrap();
            }
        }
        sink.flush().await.unwrap();
        sink
    });
    let mut ok = 0u64;
    let mut refused = std::collections::BTreeMap::new();
    let mut answered = 0u32;
    while answered < n {
        let msg = tokio::time::timeout(Duration::from_secs(120), stream.next())
            .await
            .expect("the server keeps answering")
            .expect("the connection stays open")
            .unwrap();
        let Message::Binary(b) = msg else { continue };
        if let Ok(ServerFrame::Response { result, .. }) = decode_server_frame(&b, 64 * MIB as usize) {
            answered += 1;
            match result {
                Ok(_) => ok += 1,
                Err(e) => *refused.entry(format!("{:?}", e.code)).or_default() += 1,
            }
        }
    }
    drop(writer.await.unwrap().reunite(stream));
    (ok, refused)
}

fn made_up(i: u32) -> AccountId {
    let mut id = [0x5A; 16];
    id[..4].copy_from_slice(&i.to_le_bytes());
    AccountId(id)
}

/// Let the allocator settle, then read RSS.
async fn settled_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss(pid)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_blocks_of_made_up_accounts_leaves_memory_where_it_was() {
    // The engine is on (as in production); every other limit is the test default.
    let server = Server::start(&["--dev"], &[("SIRR_ABUSE__ENABLED", "true")]);
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550900001");
    let (ws, _) = signed_in(&server, &a).await;
    let pid = server.pid();
    let before = settled_rss(pid).await;
    let n = flood();
    let started = Instant::now();
    let (ok, refused) = pipeline(ws, n, |i| Request::Block { account: made_up(i) }).await;
    let after = settled_rss(pid).await;
    println!(
        "{n} blocks in {:.1} s: RSS {} -> {} MiB (peak {} MiB); accepted {ok}, refused {refused:?}",
        started.elapsed().as_secs_f64(),
        before / MIB,
        after / MIB,
        peak(pid) / MIB
    );
    assert!(
        after < before + 50 * MIB,
        "RSS grew from {} to {} MiB",
        before / MIB,
        after / MIB
    );
    assert_eq!(ok, 0, "no block of an account that does not exist is taken");
}

#[tokio::test(flavor = "multi_thread")]
async fn sends_to_made_up_accounts_never_reach_the_engine() {
    let server = Server::start(&["--dev"], &[("SIRR_ABUSE__ENABLED", "true")]);
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550900011");
    let (ws, _) = signed_in(&server, &a).await;
    let pid = server.pid();
    let before = settled_rss(pid).await;
    let n = flood() / 20;
    let started = Instant::now();
    // Each names 64 made-up accounts in a conversation of its own: 64 new accounts for the
    // engine per send, were they not refused first.
    let (ok, refused) = pipeline(ws, n, |i| Request::Send {
        message_id: MessageId([i as u8; 16]),
        to: (0..64)
            .map(|k| Recipient {
                account: made_up(i.wrapping_mul(64).wrapping_add(k)),
                devices: vec![DeviceId(1)],
            })
            .collect(),
        payload: vec![0; 16],
        epoch: Some(EpochRef {
            conversation: ConversationId(made_up(i).0),
            epoch: 0,
            token: MembershipToken([0; 32]),
        }),
        ttl_secs: None,
        franking: None,
    })
    .await;
    let after = settled_rss(pid).await;
    println!(
        "{n} sends to 64 made-up accounts each in {:.1} s: RSS {} -> {} MiB; accepted {ok}, refused {refused:?}",
        started.elapsed().as_secs_f64(),
        before / MIB,
        after / MIB
    );
    assert_eq!(ok, 0);
    assert_eq!(refused.get("UnknownRecipient").copied(), Some(u64::from(n)));
    assert!(
        after < before + 50 * MIB,
        "RSS grew from {} to {} MiB",
        before / MIB,
        after / MIB
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_with_100_mib_queued_does_not_load_it() {
    let mut server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550900021");
    register(&server, &b, "+15550900022");
    let alice = sirr_client::state::State::open(&a)
        .unwrap()
        .credentials()
        .unwrap();
    // Bob queues 400 messages of 256 KiB for Alice, who never fetches them: his export lists
    // them (he sent them).
    let (ws, _) = signed_in(&server, &b).await;
    let (ok, refused) = pipeline(ws, 400, move |i| {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.to_le_bytes());
        Request::Send {
            message_id: MessageId(id),
            to: vec![Recipient {
                account: alice.account,
                devices: vec![alice.device],
            }],
            payload: vec![0xC3; 256 * 1024],
            epoch: None,
            ttl_secs: None,
            franking: None,
        }
    })
    .await;
    assert_eq!(ok, 400, "{refused:?}");
    // A fresh process, so the peak counts only what follows.
    server.terminate();
    server.restart();
    let pid = server.pid();
    let (mut ws, _) = signed_in(&server, &b).await;
    let base = settled_rss(pid).await;
    let json = match call(&mut ws, 2, Request::ExportAccount).await {
        Ok(Response::AccountExport { json }) => json,
        other => panic!("{other:?}"),
    };
    let one = peak(pid);
    assert!(json.contains("262144 bytes of end-to-end encrypted ciphertext"));
    // Then sixteen at once.
    let (ok, refused) = pipeline(ws, 16, |_| Request::ExportAccount).await;
    let sixteen = peak(pid);
    println!(
        "export with 100 MiB queued: RSS {} MiB before, peak {} MiB after one export, {} MiB after 16 pipelined ({ok} answered, refused {refused:?})",
        base / MIB,
        one / MIB,
        sixteen / MIB
    );
    assert!(
        one < base + 20 * MIB,
        "one export peaked {} MiB above the start",
        (one - base) / MIB
    );
    assert!(
        sixteen < base + 20 * MIB,
        "16 exports peaked {} MiB above the start",
        (sixteen - base) / MIB
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn consent_changes_are_bounded_per_account() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550900031");
    let (ws, _) = signed_in(&server, &a).await;
    let (ok, refused) = pipeline(ws, 2_000, |i| Request::SetConsent {
        purpose: Purpose::ReadReceipts,
        granted: i % 2 == 0,
    })
    .await;
    println!("2000 consent changes: {ok} taken, refused {refused:?}");
    assert!(
        refused.get("RateLimited").copied().unwrap_or(0) > 0,
        "{refused:?}"
    );
    let (mut ws, _) = signed_in(&server, &a).await;
    let Ok(Response::AccountExport { json }) = call(&mut ws, 2, Request::ExportAccount).await else {
        panic!("no export")
    };
    let export: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = export["tables"]["consents"]["rows"].as_array().unwrap().len();
    assert!(rows <= 32, "{rows} consent rows stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_sealed_sessions_are_closed() {
    let server = Server::start(&["--dev"], &[("SIRR_DELIVERY__SEALED_IDLE_SECS", "2")]);
    let mut ws = raw(&server).await;
    assert!(matches!(
        call(&mut ws, 1, Request::SealedSession).await,
        Ok(Response::Done)
    ));
    // Pings do not keep it.
    let started = Instant::now();
    let mut closed = false;
    for i in 0..20 {
        let frame = ClientFrame::Request {
            id: 2 + i,
            body: Request::Ping,
        };
        if ws.send(Message::Binary(encode(&frame).into())).await.is_err() {
            closed = true;
            break;
        }
        if next_response(&mut ws).await.is_none() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let after = started.elapsed();
    assert!(closed, "the idle sealed session was still open after {after:?}");
    assert!(after < Duration::from_secs(5), "closed only after {after:?}");
}

/// A WebSocket upgrade from `source` (any 127/8 address reaches the server on 127.0.0.1).
async fn connect_from(server: &Server, source: &str) -> Result<Ws, String> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let tcp = socket
        .connect(format!("127.0.0.1:{}", server.port).parse().unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("ws://127.0.0.1:{}/v1/websocket", server.port);
    tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
        .await
        .map(|(ws, _)| ws)
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_cannot_hold_every_connection() {
    let server = Server::start(
        &["--dev"],
        &[
            ("SIRR_DELIVERY__MAX_CONNECTIONS", "6"),
            ("SIRR_LIMITS__CONNECTIONS_PER_IP", "4"),
        ],
    );
    // Idle sealed-sender sessions from one address, as many as it is allowed and one more.
    let mut held = Vec::new();
    let mut refusal = None;
    for _ in 0..6 {
        match connect_from(&server, "127.0.0.1").await {
            Ok(mut ws) => {
                assert!(matches!(
                    call(&mut ws, 1, Request::SealedSession).await,
                    Ok(Response::Done)
                ));
                held.push(ws);
            }
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    assert_eq!(held.len(), 4, "one address holds at most its share");
    let refusal = refusal.expect("the fifth is refused");
    assert!(refusal.contains("503"), "{refusal}");
    // Someone else still gets in.
    let mut other = connect_from(&server, "127.0.0.2")
        .await
        .expect("another address connects");
    assert!(matches!(
        call(&mut other, 1, Request::Ping).await,
        Ok(Response::Pong)
    ));
    // A closed connection gives its slot back.
    let mut first = held.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match connect_from(&server, "127.0.0.1").await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the slot was not given back: {e}"),
        }
    }
}

#[test]
fn a_corrupt_stored_decision_stops_the_start_instead_of_lifting_a_ban() {
    let mut server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550900041");
    let account = sirr_client::state::State::open(&a)
        .unwrap()
        .credentials()
        .unwrap()
        .account;
    server.terminate();
    let db = rusqlite::Connection::open(server.data.join("sirr.db")).unwrap();
    db.execute(
        "INSERT INTO abuse_decisions (account, at_ms, action, reasons, by) VALUES (?1, 1, 'ban', '[\"enumeration\"]', 'engine')",
        [&account.0[..]],
    )
    .unwrap();
    // A later row that names no action (a bad edit, a bit flip).
    db.execute(
        "INSERT INTO abuse_decisions (account, at_ms, action, reasons, by) VALUES (?1, 2, 'bann', '[]', 'engine')",
        [&account.0[..]],
    )
    .unwrap();
    drop(db);
    let mut child = std::process::Command::new(bin("sirrd"))
        .args(["--dev", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data")
        .arg(&server.data)
        .env("SIRR_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sirrd started with an unreadable abuse decision (the ban would be lifted)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains("bann"), "the error names the bad value: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn blocks_and_reports_name_existing_accounts_and_are_rate_limited() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550900051");
    register(&server, &b, "+15550900052");
    let bob = sirr_client::state::State::open(&b)
        .unwrap()
        .credentials()
        .unwrap()
        .account;
    let (mut ws, me) = signed_in(&server, &a).await;
    let code = |r: Result<Response, ErrorBody>| r.err().map(|e| e.code);
    assert_eq!(
        code(call(&mut ws, 2, Request::Block { account: made_up(1) }).await),
        Some(ErrorCode::UnknownRecipient)
    );
    assert_eq!(
        code(call(&mut ws, 3, Request::Block { account: me.account }).await),
        Some(ErrorCode::BadRequest)
    );
    let report = |account| Request::Report {
        account,
        messages: vec![ReportedMessage {
            message_id: MessageId([1; 16]),
            server_ts: 1,
            plaintext: b"made up".to_vec(),
            franking_key: [2; 32],
            franking: Franking {
                commitment: [3; 32],
                server_tag: [4; 32],
            },
            sender_device: DeviceId(1),
            sealed: false,
            conversation: ConversationId([5; 16]),
            signature: [6; 64],
        }],
    };
    assert_eq!(
        code(call(&mut ws, 5, report(made_up(2))).await),
        Some(ErrorCode::UnknownRecipient)
    );
    assert!(matches!(
        call(&mut ws, 6, report(bob)).await,
        Ok(Response::Reported { verified: 0 })
    ));
    assert!(call(&mut ws, 4, Request::Block { account: bob }).await.is_ok());
    // Past the default burst, even real blocks wait.
    let (ok, refused) = pipeline(ws, 200, move |_| Request::Block { account: bob }).await;
    assert!(
        ok < 200 && refused.get("RateLimited").copied().unwrap_or(0) > 0,
        "{ok} {refused:?}"
    );
}

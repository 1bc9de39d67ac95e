//! Bad input gets a clear error and loses nothing: malformed frames, oversize payloads, unknown
//! recipients, bad credentials, expired codes, a server killed mid-load.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use sirr_client::{Client, ClientError, Connection};
use sirr_proto::*;
use tokio_tungstenite::tungstenite::Message;

fn phone(s: &str) -> Phone {
    Phone::parse(s).unwrap()
}

/// `texts` encrypted by `home`'s device for `to`, as ready `Send` requests, in order.
async fn encrypted(
    home: &std::path::Path,
    to: &str,
    texts: impl IntoIterator<Item = String>,
) -> Vec<Request> {
    let mut client = Client::open(home).await.unwrap();
    client.connect().await.unwrap();
    let mut out = Vec::new();
    for t in texts {
        out.push(client.encrypt_text(&phone(to), &t).await.unwrap());
    }
    client.disconnect().await;
    out
}

/// Receive into `texts` (as numbers) until it holds `n` messages or a minute passes.
async fn receive_numbers(client: &mut Client, texts: &mut Vec<u32>, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while texts.len() < n && std::time::Instant::now() < deadline {
        client.receive(Duration::from_millis(500)).await.unwrap();
        texts.extend(
            client
                .take_unread()
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.text.parse::<u32>().unwrap()),
        );
    }
}

async fn account_of(conn: &Connection, p: &str) -> (AccountId, Vec<DeviceId>) {
    match conn
        .request(Request::Lookup {
            phones: vec![phone(p)],
        })
        .await
        .unwrap()
    {
        Response::Directory { entries } => (entries[0].account, entries[0].devices.clone()),
        other => panic!("{other:?}"),
    }
}

/// Send raw bytes on a fresh WebSocket and return what the server says before closing.
async fn raw(server: &Server, msg: Message) -> Option<ServerFrame> {
    let url = sirr_client::websocket_url(&server.url).unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(msg).await.unwrap();
    let mut first = None;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        match m {
            Ok(Message::Binary(b)) if first.is_none() => {
                first = Some(decode_server_frame(&b, 1 << 20).unwrap())
            }
            Ok(Message::Close(_)) | Err(_) => break,
            _ => {}
        }
    }
    first
}

fn closing(frame: Option<ServerFrame>) -> ErrorBody {
    match frame {
        Some(ServerFrame::Closing(e)) => e,
        other => panic!("expected Closing, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_truncated_and_unknown_frames_get_a_clear_error() {
    let server = Server::dev();
    let e = closing(raw(&server, Message::Binary(vec![0xff, 0xff].into())).await);
    assert_eq!(e.code, ErrorCode::MalformedFrame);
    assert!(e.message.contains("truncated"), "{}", e.message);

    let e = closing(raw(&server, Message::Binary(vec![9].into())).await);
    assert!(e.message.contains("unknown frame"), "{}", e.message);
    let e = closing(raw(&server, Message::Binary(vec![0, 1, 120].into())).await);
    assert!(
        e.message.contains("unknown frame or request type"),
        "{}",
        e.message
    );

    let good = encode(&ClientFrame::Request {
        id: 1,
        body: Request::RequestCode {
            phone: phone("+15550000001"),
        },
    });
    let e = closing(raw(&server, Message::Binary(good[..good.len() - 3].to_vec().into())).await);
    assert!(e.message.contains("truncated"), "{}", e.message);

    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    let e = closing(raw(&server, Message::Binary(trailing.into())).await);
    assert!(e.message.contains("trailing"), "{}", e.message);

    let e = closing(raw(&server, Message::Text("hello".into())).await);
    assert!(e.message.contains("binary"), "{}", e.message);

    // A number that fails E.164 inside an otherwise well-formed frame.
    let mut bad_phone = encode(&ClientFrame::Request {
        id: 1,
        body: Request::RequestCode {
            phone: phone("+15550000001"),
        },
    });
    let at = bad_phone.iter().position(|&b| b == b'+').unwrap();
    bad_phone[at] = b'x';
    let e = closing(raw(&server, Message::Binary(bad_phone.into())).await);
    assert_eq!(e.code, ErrorCode::MalformedFrame);

    // Sending before signing in is a state error, answered on the request.
    let conn = Connection::connect(&server.url, None).await.unwrap();
    let err = conn.request(Request::ListDevices).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::WrongState));

    let (status, body) = server.get("/health");
    assert!(status.contains("200"), "the server survived: {status} {body}");
    let (_, metrics) = server.admin_get("/metrics");
    let malformed = metrics
        .lines()
        .find(|l| l.starts_with("sirr_malformed_frames_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(malformed >= 7, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_recipients_and_sizes_are_checked() {
    let server = Server::start(&["--dev"], &[("SIRR_DELIVERY__MAX_PAYLOAD", "1024")]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550000101");
    register(&server, &b, "+15550000102");
    let creds = sirr_client::state::State::open(&a)
        .unwrap()
        .credentials()
        .unwrap();

    // Wrong secret, unknown device, old protocol.
    let conn = Connection::connect(&server.url, None).await.unwrap();
    let hello = |secret: Secret, device: u32, protocol: u16| Request::Hello {
        protocol,
        account: creds.account,
        device: DeviceId(device),
        secret,
    };
    let e = conn
        .request(hello(Secret([0; 32]), 1, PROTOCOL_VERSION))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unauthorized));
    let e = conn
        .request(hello(creds.secret().unwrap(), 9, PROTOCOL_VERSION))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unauthorized));
    let e = conn
        .request(hello(creds.secret().unwrap(), 1, 99))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnsupportedProtocol));

    let conn = session(&server, &a).await;
    let (bob, bob_devices) = account_of(&conn, "+15550000102").await;
    let send = |to: Vec<Recipient>, len: usize| Request::Send {
        message_id: MessageId(rand_id()),
        to,
        payload: vec![7; len],
        epoch: None,
        ttl_secs: None,
        franking: None,
    };
    let to_bob = || {
        vec![Recipient {
            account: bob,
            devices: bob_devices.clone(),
        }]
    };

    let e = conn.request(send(to_bob(), 1025)).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::TooLarge));
    let ClientError::Server(body) = e else {
        unreachable!()
    };
    assert!(
        body.message.contains("1025") && body.message.contains("1024"),
        "{}",
        body.message
    );
    assert!(matches!(
        conn.request(send(to_bob(), 1024)).await.unwrap(),
        Response::Sent { .. }
    ));

    let e = conn
        .request(send(
            vec![Recipient {
                account: AccountId([3; 16]),
                devices: vec![DeviceId(1)],
            }],
            10,
        ))
        .await;
    assert_eq!(e.unwrap_err().code(), Some(ErrorCode::UnknownRecipient));

    let e = conn
        .request(send(
            vec![Recipient {
                account: bob,
                devices: vec![],
            }],
            10,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::StaleDevices));
    let ClientError::Server(body) = e else {
        unreachable!()
    };
    assert_eq!(
        body.devices,
        vec![Recipient {
            account: bob,
            devices: vec![DeviceId(1)]
        }]
    );

    assert_eq!(
        conn.request(send(vec![], 10)).await.unwrap_err().code(),
        Some(ErrorCode::BadRequest)
    );

    // A frame beyond the WebSocket limit ends that connection only.
    let huge = send(to_bob(), 200_000);
    let e = conn.request(huge).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Connection(_)),
        "the connection is ended, not a request refused: {e:?}"
    );
    let (status, _) = server.get("/health");
    assert!(status.contains("200"));

    // Nothing rejected was stored: bob has exactly the one good message.
    let mut bob_client = Client::open(&b).await.unwrap();
    bob_client.connect().await.unwrap();
    bob_client.receive(Duration::from_millis(200)).await.unwrap();
    // Its payload is not valid content: the client shows that (a notice, not a message), and
    // it was delivered and acknowledged: the server queue is empty afterwards.
    let rows = bob_client.take_unread().await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].direction, "notice");
    assert!(rows[0].text.contains("could not be read"), "{rows:?}");
    bob_client.disconnect().await;
    let bob_creds = sirr_client::state::State::open(&b)
        .unwrap()
        .credentials()
        .unwrap();
    let conn_b = Connection::connect(&server.url, None).await.unwrap();
    let welcome = conn_b
        .request(Request::Hello {
            protocol: PROTOCOL_VERSION,
            account: bob_creds.account,
            device: bob_creds.device,
            secret: bob_creds.secret().unwrap(),
        })
        .await
        .unwrap();
    let Response::Welcome { queued, .. } = welcome else {
        panic!("{welcome:?}")
    };
    assert_eq!(queued, 0);
}

fn rand_id() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&N.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    id[8..].copy_from_slice(&std::process::id().to_le_bytes().repeat(2));
    id
}

/// A stand-in SMS gateway: records every webhook body.
fn webhook() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    slow_webhook(Duration::ZERO)
}

/// A stand-in SMS gateway that takes `delay` to answer each request.
fn slow_webhook(delay: Duration) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/sms", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            sink.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            std::thread::sleep(delay);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

fn last_code(got: &Arc<Mutex<Vec<serde_json::Value>>>, phone: &str) -> String {
    got.lock()
        .unwrap()
        .iter()
        .rev()
        .find(|v| v["phone"] == phone)
        .map(|v| v["code"].as_str().unwrap().to_owned())
        .expect("webhook received a code")
}

#[test]
fn verification_codes_expire_allow_few_attempts_and_are_rate_limited() {
    let (url, got) = webhook();
    let server = Server::start(
        &[],
        &[
            ("SIRR_VERIFICATION__WEBHOOK_URL", url.as_str()),
            ("SIRR_VERIFICATION__CODE_TTL_SECS", "2"),
            ("SIRR_VERIFICATION__MAX_ATTEMPTS", "3"),
        ],
    );
    assert!(!server.log().contains("DEVELOPMENT MODE"));
    let dir = tempfile::tempdir().unwrap();
    let reg = |home: &str, phone: &str, code: Option<&str>| {
        let mut args = vec!["register", "--server", server.url.as_str(), "--phone", phone];
        if let Some(c) = code {
            args.extend(["--code", c]);
        }
        sirr(&dir.path().join(home), &args)
    };

    // Request, a wrong code, the dev code (refused outside dev mode), then the right one.
    let out = reg("a", "+15550000201", None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("code was sent"));
    let code = last_code(&got, "+15550000201");
    assert_eq!(code.len(), 6);
    let wrong = if code == "111111" { "222222" } else { "111111" };
    let out = reg("a", "+15550000201", Some(wrong));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong code; 2 attempts left"));
    if code != "000000" {
        assert!(
            !reg("a", "+15550000201", Some("000000")).status.success(),
            "000000 only in dev mode"
        );
    }
    assert!(reg("a", "+15550000201", Some(&code)).status.success());
    // A code works once.
    let out = reg("a2", "+15550000201", Some(&code));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CodeExpired"));

    // Expiry.
    reg("b", "+15550000202", None);
    let code = last_code(&got, "+15550000202");
    std::thread::sleep(Duration::from_millis(2_500));
    let out = reg("b", "+15550000202", Some(&code));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("request a new one"));

    // Attempts run out, after which even the right code fails.
    reg("c", "+15550000203", None);
    let code = last_code(&got, "+15550000203");
    let wrong = if code == "999999" { "888888" } else { "999999" };
    for _ in 0..3 {
        assert!(!reg("c", "+15550000203", Some(wrong)).status.success());
    }
    assert!(!reg("c", "+15550000203", Some(&code)).status.success());

    // Per-number rate limit (3 codes, then retry-after).
    for _ in 0..2 {
        assert!(reg("d", "+15550000203", None).status.success());
    }
    let out = reg("d", "+15550000203", None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RateLimited") && err.contains("retry after"),
        "{err}"
    );
    // No code or secret reaches the log.
    let log = server.log();
    for v in got.lock().unwrap().iter() {
        assert!(
            !log.contains(v["code"].as_str().unwrap()),
            "a code leaked into the log"
        );
    }
}

/// Outside development mode, even at debug level, the log names no phone number, account id,
/// device secret, message text or ciphertext: only keyed log tags and counts.
#[test]
fn the_log_holds_no_number_id_secret_or_payload_outside_dev_mode() {
    let (url, got) = webhook();
    let server = Server::start(
        &[],
        &[
            ("SIRR_VERIFICATION__WEBHOOK_URL", url.as_str()),
            ("SIRR_LOG", "debug"),
        ],
    );
    assert!(!server.log().contains("DEVELOPMENT MODE"));
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let phones = ["+15550000211", "+15550000212"];
    for (home, phone) in [(&alice, phones[0]), (&bob, phones[1])] {
        let reg = |code: Option<&str>| {
            let mut args = vec!["register", "--server", server.url.as_str(), "--phone", phone];
            if let Some(c) = code {
                args.extend(["--code", c]);
            }
            sirr(home, &args)
        };
        assert!(reg(None).status.success());
        let code = last_code(&got, phone);
        let out = reg(Some(&code));
        assert!(out.status.success(), "{out:?}");
    }
    let canary = format!("logcanary{:x}", std::process::id() as u64 * 104_729);
    sirr_ok(&alice, &["send", phones[1], &canary]);
    sirr_ok(&bob, &["recv"]);
    sirr_ok(&bob, &["send", phones[0], &canary]);
    // And one left queued, whose ciphertext sits in the store while the server runs.
    sirr_ok(&alice, &["send", phones[1], &canary]);
    let db = read_db(&server);
    let payload: Vec<u8> = db
        .query_row("SELECT payload FROM payloads ORDER BY id DESC LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut needles: Vec<(String, String)> = vec![
        ("message text".into(), canary.clone()),
        (
            "ciphertext (hex)".into(),
            hex(&payload[payload.len() / 2..][..16]),
        ),
    ];
    for home in [&alice, &bob] {
        let creds: serde_json::Value =
            serde_json::from_slice(&std::fs::read(home.join("credentials.json")).unwrap()).unwrap();
        needles.push((
            "device secret".into(),
            creds["secret"].as_str().unwrap().to_owned(),
        ));
        let who: serde_json::Value = serde_json::from_str(&sirr_ok(home, &["whoami", "--json"])).unwrap();
        needles.push(("account id".into(), who["account"].as_str().unwrap().to_owned()));
    }
    for p in phones {
        needles.push(("phone number".into(), p.trim_start_matches('+').to_owned()));
    }
    let log = server.log();
    assert!(log.lines().count() > 10, "the log is not empty:\n{log}");
    assert!(log.contains("DEBUG"), "debug level is on:\n{log}");
    for (what, needle) in &needles {
        assert!(needle.len() >= 8, "{what} needle too short to mean anything");
        assert!(!log.contains(needle.as_str()), "the log names a {what}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_surge_is_shed_at_once_with_retry_after() {
    let (url, got) = slow_webhook(Duration::from_millis(1500));
    let server = Server::start(
        &[],
        &[
            ("SIRR_VERIFICATION__WEBHOOK_URL", url.as_str()),
            ("SIRR_LIMITS__REGISTRATIONS_IN_FLIGHT", "1"),
        ],
    );
    let busy = {
        let url = server.url.clone();
        tokio::spawn(async move {
            Client::request_code(
                &sirr_client::Platform::native(),
                &url,
                &phone("+15550000701"),
                None,
            )
            .await
        })
    };
    // Wait until the first request holds the only slot (its webhook call is in progress).
    while got.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = std::time::Instant::now();
    let shed = Client::request_code(
        &sirr_client::Platform::native(),
        &server.url,
        &phone("+15550000702"),
        None,
    )
    .await
    .unwrap_err();
    let ClientError::Server(body) = shed else {
        panic!("expected a refusal, got {shed:?}")
    };
    assert_eq!(body.code, ErrorCode::Overloaded);
    assert!(body.retry_after_ms.is_some());
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "refused at once, not queued"
    );
    assert!(busy.await.unwrap().is_ok(), "the admitted request completes");
    // With the slot free again, the refused number gets its code.
    assert!(
        Client::request_code(
            &sirr_client::Platform::native(),
            &server.url,
            &phone("+15550000702"),
            None
        )
        .await
        .is_ok()
    );
}

#[test]
fn invalid_configuration_is_refused_with_a_reason() {
    let out = std::process::Command::new(bin("sirrd"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(tempfile::tempdir().unwrap().path())
        .env_remove("SIRR_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("webhook_url"));
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_load_loses_nothing_acknowledged() {
    let mut server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550000301");
    register(&server, &b, "+15550000302");
    // Real end-to-end ciphertexts, made in order; eight tasks send them concurrently.
    let pool: Vec<Request> = encrypted(&a, "+15550000302", (0..2000).map(|i| i.to_string())).await;
    let pool = Arc::new(Mutex::new(std::collections::VecDeque::from(pool)));
    let conn = Arc::new(session(&server, &a).await);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..8u8 {
        let (conn, acked, pool) = (conn.clone(), acked.clone(), pool.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(req) = pool.lock().unwrap().pop_front() else {
                    return;
                };
                let Request::Send { message_id: id, .. } = &req else {
                    unreachable!()
                };
                let id = *id;
                match conn.request(req).await {
                    Ok(Response::Sent { .. }) => acked.lock().unwrap().push(id),
                    _ => return,
                }
            }
        }));
    }
    // Let load build up, then pull the plug.
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked: Vec<MessageId> = acked.lock().unwrap().clone();
    assert!(
        acked.len() < 2000,
        "the kill must land mid-load: all {} sends were acknowledged before it",
        acked.len()
    );
    server.restart();

    let mut bob_client = Client::open(&b).await.unwrap();
    bob_client.connect().await.unwrap();
    bob_client.receive(Duration::from_secs(1)).await.unwrap();
    let rows = bob_client.take_unread().await.unwrap();
    let unreadable: Vec<&String> = rows
        .iter()
        .filter(|m| m.direction == "notice")
        .map(|m| &m.text)
        .collect();
    assert!(unreadable.is_empty(), "every message decrypts: {unreadable:?}");
    let received: Vec<String> = rows.into_iter().map(|m| m.message_id).collect();
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "each message shown once");
    for id in &acked {
        assert!(
            unique.contains(&id.to_string()),
            "acknowledged message {id} was lost"
        );
    }
    assert!(received.len() >= acked.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_sessions_and_exits_zero() {
    let mut server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550000401");
    let mut client = Client::open(&a).await.unwrap();
    client.connect().await.unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let s = server.terminate();
        (s, server)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit status {:?}", status.0);
    assert!(status.1.log().contains("sirrd stopped cleanly"));
    // The open session was told why it ended.
    let err = client.receive(Duration::from_secs(2)).await.unwrap_err();
    assert!(err.to_string().contains("shutting down"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_private_ca() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        &[
            "--dev",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
        &[],
    );
    assert!(server.url.starts_with("https://"));
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let reg = |home: &std::path::Path, p: &str, ca: bool| {
        let mut args = vec![
            "register",
            "--server",
            server.url.as_str(),
            "--phone",
            p,
            "--code",
            "000000",
        ];
        if ca {
            args.extend(["--ca-cert", cert_path.to_str().unwrap()]);
        }
        sirr(home, &args)
    };
    let out = reg(&a, "+15550000501", false);
    assert!(!out.status.success(), "an unknown CA is refused");
    let why = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        why.contains("certificate") || why.contains("issuer"),
        "refused for its certificate: {why}"
    );
    assert!(reg(&a, "+15550000501", true).status.success());
    assert!(reg(&b, "+15550000502", true).status.success());
    sirr_ok(&a, &["send", "+15550000502", "over TLS"]);
    assert_eq!(recv_json(&b, "5")[0]["text"], "over TLS");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_receiver_gets_everything_once_and_in_order() {
    // A tiny push window makes the live path overflow constantly, so delivery keeps switching
    // between live pushes and catching up from storage while commits are in flight.
    let server = Server::start(&["--dev"], &[("SIRR_DELIVERY__PUSH_WINDOW", "2")]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550000601");
    register(&server, &b, "+15550000602");
    let mut pool = encrypted(&a, "+15550000602", (0..1500).map(|i| i.to_string()))
        .await
        .into_iter();
    let conn = Arc::new(session(&server, &a).await);
    let send = |req: Request| {
        let conn = conn.clone();
        async move {
            let r = conn.request(req).await;
            assert!(matches!(r, Ok(Response::Sent { .. })), "{r:?}");
        }
    };
    for req in pool.by_ref().take(300) {
        send(req).await;
    }
    // Bob takes the first 300 from storage and is then caught up, on the live path.
    let mut bob_client = Client::open(&b).await.unwrap();
    bob_client.connect().await.unwrap();
    let mut texts = Vec::new();
    receive_numbers(&mut bob_client, &mut texts, 300).await;
    // Then 1,200 more, pipelined on one raw connection (a session handles its frames in order),
    // while bob is receiving.
    let creds = sirr_client::state::State::open(&a)
        .unwrap()
        .credentials()
        .unwrap();
    let url = sirr_client::websocket_url(&server.url).unwrap();
    let sender = tokio::spawn(async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let hello = ClientFrame::Request {
            id: 0,
            body: Request::Hello {
                protocol: PROTOCOL_VERSION,
                account: creds.account,
                device: creds.device,
                secret: creds.secret().unwrap(),
            },
        };
        ws.send(Message::Binary(encode(&hello).into())).await.unwrap();
        for (i, req) in (300..1500u32).zip(pool) {
            let f = ClientFrame::Request { id: i, body: req };
            ws.feed(Message::Binary(encode(&f).into())).await.unwrap();
        }
        ws.flush().await.unwrap();
        let mut sent = 0;
        while sent < 1200 {
            let Some(Ok(Message::Binary(b))) = ws.next().await else {
                panic!("sender connection lost")
            };
            match decode_server_frame(&b, 1 << 20).unwrap() {
                ServerFrame::Response { id, result } if id >= 300 => {
                    assert!(result.is_ok(), "{result:?}");
                    sent += 1;
                }
                _ => {}
            }
        }
    });
    receive_numbers(&mut bob_client, &mut texts, 1500).await;
    sender.await.unwrap();
    let first_wrong = texts.iter().enumerate().find(|(i, t)| **t != *i as u32);
    assert!(
        texts.len() == 1500 && first_wrong.is_none(),
        "every message exactly once, in the order sent: got {} messages, first out of place: {first_wrong:?}",
        texts.len()
    );
}

//! Who can take over an account: stolen link ids, SIM swaps, the registration lock. Driven with
//! raw frames (as an attacker would send them) and with the real `sirr`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use sirr_client::{ClientError, Connection};
use sirr_proto::*;

fn refusal(r: Result<Response, ClientError>) -> ErrorBody {
    match r {
        Err(ClientError::Server(e)) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn request_link(conn: &Connection) -> ([u8; 16], Secret) {
    match conn
        .request(Request::RequestLink { public_key: [3; 32] })
        .await
        .unwrap()
    {
        Response::LinkCode { link_id, secret, .. } => (link_id, secret),
        other => panic!("{other:?}"),
    }
}

async fn device_count(conn: &Connection) -> usize {
    match conn.request(Request::ListDevices).await.unwrap() {
        Response::Devices { devices } => devices.len(),
        other => panic!("{other:?}"),
    }
}

async fn hello(
    server: &Server,
    account: AccountId,
    device: DeviceId,
    secret: Secret,
) -> Result<Connection, ErrorBody> {
    let conn = Connection::connect(&server.url, None).await.unwrap();
    match conn
        .request(Request::Hello {
            protocol: PROTOCOL_VERSION,
            account,
            device,
            secret,
        })
        .await
    {
        Ok(Response::Welcome { .. }) => Ok(conn),
        Ok(other) => panic!("{other:?}"),
        Err(ClientError::Server(e)) => Err(e),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_requester_can_await_a_link_and_only_once() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550400001");
    let (approver, _) = session_as(&server, &a).await;

    let requester = Connection::connect(&server.url, None).await.unwrap();
    let (link_id, secret) = request_link(&requester).await;
    // The link id is in the code the user copies: whoever reads it cannot collect the device.
    let thief = Connection::connect(&server.url, None).await.unwrap();
    let e = refusal(
        thief
            .request(Request::AwaitLink {
                link_id,
                secret: Secret([0; 32]),
            })
            .await,
    );
    assert_eq!(e.code, ErrorCode::Unauthorized, "{e}");
    let waiting_secret = secret.clone();
    let waiter = tokio::spawn(async move {
        requester
            .request(Request::AwaitLink {
                link_id,
                secret: waiting_secret,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // One waiter per link, even with the right secret.
    let second = Connection::connect(&server.url, None).await.unwrap();
    let e = refusal(second.request(Request::AwaitLink { link_id, secret }).await);
    assert_eq!(e.code, ErrorCode::BadRequest, "{e}");

    let r = approver
        .request(Request::ApproveLink {
            link_id,
            sealed: vec![7; 40].into(),
        })
        .await
        .unwrap();
    let Response::Linked { device } = r else {
        panic!("{r:?}")
    };
    let Response::LinkApproved { device: got, .. } = waiter.await.unwrap().unwrap() else {
        panic!("the requester was not handed its credential")
    };
    assert_eq!(got, device);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_after_the_waiter_left_adds_no_device() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550400011");
    let (approver, _) = session_as(&server, &a).await;
    assert_eq!(device_count(&approver).await, 1);

    let requester = Connection::connect(&server.url, None).await.unwrap();
    let (link_id, secret) = request_link(&requester).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let waiter = tokio::spawn(async move {
        tokio::select! {
            r = requester.request(Request::AwaitLink { link_id, secret }) => panic!("answered early: {r:?}"),
            _ = stopped => {}
        }
        // The waiter gives up (as a client whose request timed out does) and hangs up.
        requester.close().await;
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    waiter.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let e = refusal(
        approver
            .request(Request::ApproveLink {
                link_id,
                sealed: vec![7; 40].into(),
            })
            .await,
    );
    assert_eq!(e.code, ErrorCode::LinkExpired, "{e}");
    assert_eq!(device_count(&approver).await, 1, "no orphan device took a slot");
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_links_are_bounded_per_address() {
    let server = Server::dev();
    let conn = Connection::connect(&server.url, None).await.unwrap();
    for _ in 0..8 {
        request_link(&conn).await;
    }
    let e = refusal(conn.request(Request::RequestLink { public_key: [3; 32] }).await);
    assert_eq!(e.code, ErrorCode::RateLimited, "{e}");
    assert!(e.message.contains("pending from this address"), "{e}");
}

/// The client's ordinary request timeout is 30 s; an approval later than that still links.
#[test]
fn the_client_waits_as_long_as_the_link_lives() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550400021");
    let mut child = Command::new(bin("sirr"))
        .arg("--home")
        .arg(&b)
        .args(["device", "link", "--server", &server.url, "--name", "slow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let code = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no link code printed");
        if let Some(code) = line.trim().strip_prefix("sirr device approve ") {
            break code.to_owned();
        }
    };
    std::thread::sleep(Duration::from_secs(35));
    let approve = sirr(&a, &["device", "approve", &code]);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let link = child.wait_with_output().unwrap();
    assert!(
        link.status.success(),
        "the new device gave up: {}",
        String::from_utf8_lossy(&link.stderr)
    );
    assert!(rest.contains("Linked:"), "{rest}");
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_device_not_on_the_signed_list_cannot_remove_devices_or_delete_the_account() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550400031");
    let (first, me) = session_as(&server, &a).await;
    let (account, device, secret) = link_device_raw(&server, &first).await;
    let other = hello(&server, account, device, secret).await.unwrap();

    for (what, req) in [
        ("remove device 1", Request::RemoveDevice { device: me.device }),
        ("delete the account", Request::DeleteAccount),
        (
            "set the registration lock",
            Request::SetRegistrationLock {
                pin: Some(Pin("1234".into())),
            },
        ),
        (
            "approve a link",
            Request::ApproveLink {
                link_id: [1; 16],
                sealed: vec![1].into(),
            },
        ),
    ] {
        let e = refusal(other.request(req).await);
        assert_eq!(e.code, ErrorCode::NotApproved, "{what}: {e}");
    }
    // Nor can it list itself: a list signed by any key but the account's is refused.
    let own_key = sirr_crypto::AccountKey::generate(&mut rand::rng());
    let forged = own_key
        .sign_device_list(account, 99, &[(device, [5; 32])])
        .unwrap();
    let e = refusal(
        other
            .request(Request::PublishDeviceList {
                version: 99,
                list: forged.into(),
            })
            .await,
    );
    assert_eq!(e.code, ErrorCode::NotApproved, "{e}");
    // Whoever put it there (a server in the middle, say) can offer its KeyPackages to the
    // account's contacts, and their clients refuse to encrypt to it.
    let mls = sirr_crypto::MlsStore::new();
    let id = sirr_crypto::DeviceIdentity::generate(account, device, &mut rand::rng());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let kps = sirr_crypto::KeyPackages::generate(&mls, &id, 2, now, 3600).unwrap();
    let r = other
        .request(Request::UploadKeyPackages {
            one_time: kps.one_time.into_iter().map(Into::into).collect(),
            last_resort: Some(kps.last_resort.into()),
        })
        .await;
    assert!(matches!(r, Ok(Response::KeyStock { .. })), "{r:?}");
    let contact = dir.path().join("contact");
    register(&server, &contact, "+15550400032");
    let out = sirr(&contact, &["send", "+15550400031", "who reads this?"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("never approved"), "{err}");
    // Everything of the approved device is still there, and it may remove the unlisted one.
    assert_eq!(device_count(&first).await, 2);
    assert!(matches!(
        first.request(Request::RemoveDevice { device }).await,
        Ok(Response::Done)
    ));
    sirr_ok(&a, &["whoami"]);
    sirr_ok(
        &contact,
        &["send", "+15550400031", "now it reaches only listed devices"],
    );
    let got = recv_json(&a, "5");
    assert_eq!(got[0]["text"], "now it reaches only listed devices", "{got:?}");
}

fn registers(
    server: &Server,
    home: &std::path::Path,
    phone: &str,
    pin: Option<&str>,
) -> std::process::Output {
    let mut args = vec![
        "register",
        "--server",
        &server.url,
        "--phone",
        phone,
        "--code",
        "000000",
        "--name",
        "swapped",
    ];
    if let Some(p) = pin {
        args.extend(["--pin", p]);
    }
    sirr(home, &args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sim_swapper_without_a_pin_starts_anew_and_contacts_see_the_key_change() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, mallory) = (
        dir.path().join("alice"),
        dir.path().join("bob"),
        dir.path().join("mallory"),
    );
    register(&server, &alice, "+15550400041");
    register(&server, &bob, "+15550400042");
    sirr_ok(&alice, &["send", "+15550400042", "hello bob"]);
    assert_eq!(recv_json(&bob, "5").len(), 1);
    sirr_ok(&alice, &["send", "+15550400042", "still queued for bob"]);
    let (bob_conn, bob_me) = session_as(&server, &bob).await;
    bob_conn.close().await;

    // The swapper has the number's code (and no lock stands in the way).
    let out = registers(&server, &mallory, "+15550400042", None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (m_conn, m_me) = session_as(&server, &mallory).await;
    assert_eq!(m_me.account, bob_me.account, "the number keeps its account id");
    assert_ne!(m_me.device, bob_me.device);
    // It cannot act on the old identity: bob's device is not its to remove, and nothing
    // queued for bob is handed to it.
    let e = refusal(
        m_conn
            .request(Request::RemoveDevice {
                device: bob_me.device,
            })
            .await,
    );
    assert_eq!(e.code, ErrorCode::BadRequest, "{e}");
    assert_eq!(device_count(&m_conn).await, 1);
    m_conn.close().await;
    let got = recv_json(&mallory, "2");
    assert!(
        got.iter().all(|m| m["text"] != "still queued for bob"),
        "the old queue was handed over: {got:?}"
    );
    // The old devices are signed out.
    let out = sirr(&bob, &["recv"]);
    assert!(!out.status.success(), "bob's old device still signs in");

    // Alice's client sees the new account key as a safety-number change.
    sirr_ok(&alice, &["send", "+15550400042", "who is this?"]);
    let notices: Vec<_> = recv_json(&alice, "1")
        .into_iter()
        .filter(|m| m["direction"] == "notice")
        .collect();
    assert!(
        notices.iter().any(|m| m["text"]
            .as_str()
            .unwrap_or("")
            .contains("safety number with +15550400042 changed")),
        "{notices:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_lock_on_a_swapper_cannot_register_and_its_11th_guess_is_refused() {
    let mut server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (bob, mallory) = (dir.path().join("bob"), dir.path().join("mallory"));
    register(&server, &bob, "+15550400051");
    let out = Command::new(bin("sirr"))
        .arg("--home")
        .arg(&bob)
        .args(["account", "lock", "set"])
        .env("SIRR_NEW_PIN", "2468")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(sirr_ok(&bob, &["account", "lock", "status"]).contains("lock: on"));

    let out = registers(&server, &mallory, "+15550400051", None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("registration lock"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let register = |pin: &str| Request::Register {
        phone: Phone::parse("+15550400051").unwrap(),
        code: "000000".into(),
        pin: Some(Pin(pin.into())),
    };
    let conn = Connection::connect(&server.url, None).await.unwrap();
    for i in 1..=5 {
        let e = refusal(conn.request(register(&format!("{:04}", 1000 + i))).await);
        assert_eq!(e.code, ErrorCode::RegistrationLocked, "{e}");
        assert!(e.message.contains(&format!("{} guesses left", 10 - i)), "{e}");
    }
    // The budget is stored: a restart does not refill it.
    conn.close().await;
    server.terminate();
    server.restart();
    guesses_after_restart(&server, &register, 6).await;
    // Bob is untouched all along.
    sirr_ok(&bob, &["whoami"]);
    assert!(sirr_ok(&bob, &["account", "lock", "status"]).contains("lock: on"));
}

/// Guesses 6 to 10 after the restart, then the 11th, with the right PIN, is refused too.
async fn guesses_after_restart(server: &Server, register: &dyn Fn(&str) -> Request, from: u32) {
    let conn = Connection::connect(&server.url, None).await.unwrap();
    for i in from..=10 {
        let e = refusal(conn.request(register(&format!("{:04}", 1000 + i))).await);
        assert_eq!(e.code, ErrorCode::RegistrationLocked, "{e}");
        assert!(e.message.contains(&format!("{} guesses left", 10 - i)), "{e}");
    }
    let e = refusal(conn.request(register("2468")).await);
    assert_eq!(e.code, ErrorCode::RegistrationLocked, "{e}");
    assert!(e.message.contains("too many wrong PINs"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_pin_registers_anew_and_keeps_the_lock() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (bob, again) = (dir.path().join("bob"), dir.path().join("again"));
    register(&server, &bob, "+15550400061");
    let out = Command::new(bin("sirr"))
        .arg("--home")
        .arg(&bob)
        .args(["account", "lock", "set"])
        .env("SIRR_NEW_PIN", "2468")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = registers(&server, &again, "+15550400061", Some("1357"));
    assert!(!out.status.success(), "a wrong PIN registered");
    let out = registers(&server, &again, "+15550400061", Some("2468"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !sirr(&bob, &["recv"]).status.success(),
        "the old device still signs in"
    );
    assert!(sirr_ok(&again, &["account", "lock", "status"]).contains("lock: on"));
    sirr_ok(&again, &["account", "lock", "clear"]);
    assert!(sirr_ok(&again, &["account", "lock", "status"]).contains("lock: off"));
}

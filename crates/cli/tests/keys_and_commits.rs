//! The server's side of end-to-end encryption over the wire: KeyPackages are checked before
//! they are stored, commits are ordered one per epoch, links expire. Driven with raw frames, as
//! a misbehaving client would send them.

mod common;

use common::*;
use sirr_client::{ClientError, Connection};
use sirr_crypto::{DeviceIdentity, KeyPackages, MlsStore};
use sirr_proto::*;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn code(r: Result<Response, ClientError>) -> (ErrorCode, ErrorBody) {
    match r {
        Err(ClientError::Server(e)) => (e.code, e),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn stock(conn: &Connection, me: DeviceAddress) -> usize {
    match conn
        .request(Request::ClaimKeyPackages {
            account: me.account,
            devices: vec![me.device],
        })
        .await
        .unwrap()
    {
        Response::KeyPackages { packages, .. } => packages.len(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_packages_are_checked_and_claimed_once() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550300001");
    register(&server, &b, "+15550300002");
    let (conn, me) = session_as(&server, &a).await;
    let (conn_b, _) = session_as(&server, &b).await;

    let mls = MlsStore::new();
    let id = DeviceIdentity::generate(me.account, me.device, &mut rand::rng());
    let good = KeyPackages::generate(&mls, &id, 3, now(), 3600).unwrap();
    // A flipped byte in the signature: refused, and nothing of the batch is stored.
    let mut bad = good.one_time[0].clone();
    let n = bad.len();
    bad[n - 5] ^= 1;
    let upload = |one_time: Vec<Vec<u8>>| Request::UploadKeyPackages {
        one_time: one_time.into_iter().map(Into::into).collect(),
        last_resort: None,
    };
    let (c, e) = code(conn.request(upload(vec![good.one_time[1].clone(), bad])).await);
    assert_eq!(c, ErrorCode::BadKeyPackage);
    assert!(e.message.contains("KeyPackage 1"), "{e}");
    // Keys made for another device cannot be published by this one.
    let other = DeviceIdentity::generate(me.account, DeviceId(9), &mut rand::rng());
    let foreign = KeyPackages::generate(&mls, &other, 1, now(), 3600).unwrap();
    let (c, e) = code(conn.request(upload(foreign.one_time.clone())).await);
    assert_eq!(c, ErrorCode::BadKeyPackage);
    assert!(e.message.contains("credential"), "{e}");
    let (c, _) = code(conn.request(upload(vec![vec![0xff; 100]])).await);
    assert_eq!(c, ErrorCode::BadKeyPackage);

    // The registration uploaded a batch; take it all, then ours are the only one-time left.
    let r = conn.request(upload(good.one_time.clone())).await.unwrap();
    let Response::KeyStock { one_time } = r else {
        panic!("{r:?}")
    };
    assert!(one_time >= 3);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..one_time {
        let Response::KeyPackages {
            packages,
            device_list,
        } = conn_b
            .request(Request::ClaimKeyPackages {
                account: me.account,
                devices: vec![],
            })
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(packages.len(), 1);
        assert!(device_list.is_some(), "the account's signed list comes along");
        assert!(
            seen.insert(packages[0].key_package.clone()),
            "a one-time package came twice"
        );
    }
    // Then only the last-resort package, again and again.
    let (x, y) = (stock(&conn_b, me).await, stock(&conn_b, me).await);
    assert_eq!((x, y), (1, 1));
    let (c, _) = code(
        conn.request(Request::ClaimKeyPackages {
            account: AccountId([0x77; 16]),
            devices: vec![],
        })
        .await,
    );
    assert_eq!(c, ErrorCode::UnknownRecipient);
}

#[tokio::test(flavor = "multi_thread")]
async fn commits_are_ordered_and_stale_ones_learn_the_epoch() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    register(&server, &a, "+15550300011");
    register(&server, &b, "+15550300012");
    register(&server, &c, "+15550300013");
    let (ca, ma) = session_as(&server, &a).await;
    let (cb, mb) = session_as(&server, &b).await;
    let (cc, _) = session_as(&server, &c).await;
    let conv = ConversationId([0x42; 16]);
    let out = |n: u8| Outgoing {
        message_id: MessageId([n; 16]),
        to: vec![Recipient {
            account: mb.account,
            devices: vec![mb.device],
        }],
        payload: vec![n; 64],
    };
    // Tokens as members' clients derive them; the server sees them only when they are used.
    let token = |n: u8| MembershipToken([n; 32]);
    let commit = |epoch, proof: Option<u8>, next: u8, n| Request::Commit {
        conversation: conv,
        epoch,
        token: proof.map(token),
        next: token(next).hash(),
        commit: out(n),
        welcome: None,
    };
    let r = ca.request(commit(0, None, 1, 1)).await.unwrap();
    assert!(matches!(r, Response::Committed { epoch: 1, .. }), "{r:?}");
    let (code1, e) = code(cb.request(commit(0, None, 1, 2)).await);
    assert_eq!(code1, ErrorCode::StaleEpoch);
    assert_eq!(e.epoch, Some(1), "the refusal names the current epoch");
    let r = cb.request(commit(1, Some(1), 2, 3)).await.unwrap();
    assert!(matches!(r, Response::Committed { epoch: 2, .. }));
    // Someone who cannot prove membership in the current epoch cannot commit or send in it:
    // no token, a made-up one, or the previous epoch's (what a removed member knows).
    for proof in [None, Some(7), Some(1)] {
        let (c2, _) = code(cc.request(commit(2, proof, 9, 4)).await);
        assert_eq!(c2, ErrorCode::NotMember, "{proof:?}");
    }
    let send = |epoch, proof: u8| Request::Send {
        message_id: MessageId([9; 16]),
        to: vec![Recipient {
            account: ma.account,
            devices: vec![ma.device],
        }],
        payload: vec![1; 64],
        epoch: Some(EpochRef {
            conversation: conv,
            epoch,
            token: token(proof),
        }),
        ttl_secs: None,
        franking: None,
    };
    assert_eq!(code(cc.request(send(2, 1)).await).0, ErrorCode::NotMember);
    let (code3, e) = code(cb.request(send(1, 1)).await);
    assert_eq!((code3, e.epoch), (ErrorCode::StaleEpoch, Some(2)));
    // Any account holding the token is a member: the server never learned which accounts are.
    assert!(matches!(cc.request(send(2, 2)).await, Ok(Response::Sent { .. })));
    assert!(matches!(cb.request(send(2, 2)).await, Ok(Response::Sent { .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn links_are_used_once_and_unknown_ones_expire() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    register(&server, &a, "+15550300021");
    let (ca, _) = session_as(&server, &a).await;
    let (c, _) = code(
        ca.request(Request::ApproveLink {
            link_id: [1; 16],
            sealed: vec![1].into(),
        })
        .await,
    );
    assert_eq!(c, ErrorCode::LinkExpired);
    let fresh = Connection::connect(&server.url, None).await.unwrap();
    let (c, _) = code(
        fresh
            .request(Request::AwaitLink {
                link_id: [2; 16],
                secret: Secret([0; 32]),
            })
            .await,
    );
    assert_eq!(c, ErrorCode::LinkExpired);
    let Response::LinkCode {
        link_id,
        expires_in,
        secret,
    } = fresh
        .request(Request::RequestLink { public_key: [3; 32] })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(expires_in, 600);
    let waiter = tokio::spawn(async move { fresh.request(Request::AwaitLink { link_id, secret }).await });
    // An approval finding no device waiting spends the link (one use, by design), and the two
    // requests travel on different connections: let the wait reach the server first, as a
    // person scanning a code always does. (Without this the test raced under load.)
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let r = ca
        .request(Request::ApproveLink {
            link_id,
            sealed: vec![7; 40].into(),
        })
        .await
        .unwrap();
    let Response::Linked { device } = r else {
        panic!("{r:?}")
    };
    let Response::LinkApproved {
        account,
        device: d2,
        secret,
        sealed,
    } = waiter.await.unwrap().unwrap()
    else {
        panic!()
    };
    assert_eq!((d2, sealed.to_vec()), (device, vec![7; 40]));
    // The new device can sign in with what it was handed; the link is spent.
    let conn = Connection::connect(&server.url, None).await.unwrap();
    let r = conn
        .request(Request::Hello {
            protocol: PROTOCOL_VERSION,
            account,
            device,
            secret,
        })
        .await
        .unwrap();
    assert!(matches!(r, Response::Welcome { .. }));
    let (c, _) = code(
        ca.request(Request::ApproveLink {
            link_id,
            sealed: vec![1].into(),
        })
        .await,
    );
    assert_eq!(c, ErrorCode::LinkExpired);
}

#[tokio::test(flavor = "multi_thread")]
async fn device_names_are_opaque_bounded_bytes_and_last_seen_needs_the_token() {
    let server = Server::dev();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    register(&server, &a, "+15550300031");
    register(&server, &b, "+15550300032");
    let (ca, ma) = session_as(&server, &a).await;
    let (cb, _) = session_as(&server, &b).await;

    // The server stores whatever sealed bytes a device sends for itself, within bounds.
    let set = |n: usize| Request::SetDeviceName {
        sealed: vec![7u8; n].into(),
    };
    for bad in [0, sirr_crypto::account::MAX_SEALED_DEVICE_NAME + 1] {
        let (c, e) = code(ca.request(set(bad)).await);
        assert_eq!(c, ErrorCode::BadRequest, "{bad} bytes");
        assert!(e.message.contains("sealed device name"), "{}", e.message);
    }
    assert_eq!(ca.request(set(40)).await.unwrap(), Response::Done);
    let Response::Devices { devices } = ca.request(Request::ListDevices).await.unwrap() else {
        panic!("devices")
    };
    let mine = devices.iter().find(|d| d.id == ma.device).unwrap();
    assert_eq!(mine.sealed_name.as_deref().map(|b| &b[..]), Some(&[7u8; 40][..]));

    // Last-seen: an account sees its own day; another sees nothing without the account's
    // consent and delivery token, and a made-up token changes nothing.
    let last_seen = |access_key| Request::LastSeen {
        account: ma.account,
        access_key,
    };
    let Response::LastSeen { day } = ca.request(last_seen(None)).await.unwrap() else {
        panic!("last seen")
    };
    assert!(day.is_some(), "its own last connection");
    for key in [None, Some([9u8; 16])] {
        assert_eq!(
            cb.request(last_seen(key)).await.unwrap(),
            Response::LastSeen { day: None }
        );
    }
}

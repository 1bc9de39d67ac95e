//! One WebSocket connection, from upgrade to close.
//!
//! A session has two phases. In the **handshake** it answers only registration requests and
//! `Hello`, one at a time, under a deadline. After a successful `Hello` it becomes a **device
//! session**: a single task that multiplexes
//! - requests from the client (sends are validated and submitted to storage in arrival order,
//!   then their commits are awaited concurrently, up to `max_inflight`);
//! - pushes of the device's queue, first caught up from storage, then live from the hub, never
//!   more than `push_window` unacknowledged;
//! - acknowledgements, which free the window and delete the messages.
//!
//! The push cursor `delivered_upto` is the highest `seq` pushed in this session. Because storage
//! assigns `seq` in commit order and the hub hears commits in that order, a message with
//! `seq <= delivered_upto` has been pushed already and is dropped as a duplicate.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{FuturesUnordered, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use sirr_proto::{
    ClientFrame, ErrorBody, ErrorCode, Request, ServerFrame, decode_client_frame, encode, encode_push,
};
use sirr_store::{QueuedMessage, StoreError};
use tokio::sync::watch;

use crate::service::{Authed, Delivery, Service};

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;
type Work = Pin<Box<dyn Future<Output = Option<ServerFrame>> + Send>>;

/// Largest page read from storage while catching up.
const PAGE: usize = 128;
/// A write to a client that takes longer than this ends the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(socket: WebSocket, svc: Arc<Service>, ip: IpAddr, shutdown: watch::Receiver<bool>) {
    svc.metrics.connections.inc();
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = shutdown;
    match handshake(&svc, &mut sink, &mut stream, ip, &mut shutdown).await {
        Some(Phase::Device(authed)) => {
            svc.metrics.sessions.inc();
            device_session(&svc, authed, ip, &mut sink, &mut stream, &mut shutdown).await;
            svc.metrics.sessions.dec();
        }
        Some(Phase::Sealed) => sealed_session(&svc, ip, &mut sink, &mut stream, &mut shutdown).await,
        None => {}
    }
    let _ = sink.close().await;
    svc.metrics.connections.dec();
}

/// Queue a frame on the socket without flushing; the device session flushes once nothing else
/// is ready, so a burst of answers and pushes costs one write system call.
async fn feed(sink: &mut Sink, frame: &ServerFrame) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.feed(Message::Binary(encode(frame).into()))).await,
        Ok(Ok(()))
    )
}

async fn write(sink: &mut Sink, frame: &ServerFrame) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Binary(encode(frame).into()))).await,
        Ok(Ok(()))
    )
}

/// Tell the client why the session ends, then close the WebSocket with `code`.
async fn close(sink: &mut Sink, body: ErrorBody, code: u16) {
    let reason = body.message.chars().take(100).collect::<String>();
    let _ = write(sink, &ServerFrame::Closing(body)).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))),
    )
    .await;
}

/// How long a session closed for shutdown waits for the client's Close.
const LINGER: Duration = Duration::from_secs(1);

/// How long the server waits at shutdown for its sessions to end: the `Closing` frame, the Close
/// and the [`LINGER`] take well under this unless a client stops reading, and such a session is
/// then cut off rather than holding the exit.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Close for shutdown, then linger: read and discard until the client's Close arrives, for at
/// most [`LINGER`]. Dropping the socket with the client's bytes still unread would make the
/// kernel answer with a reset, and the client could then lose the `Closing` frame that says why
/// the session ended; after its Close, the close is clean.
async fn close_for_shutdown(sink: &mut Sink, stream: &mut Stream) {
    close(
        sink,
        ErrorBody::new(ErrorCode::Overloaded, "server is shutting down").retry_after(1000),
        1001,
    )
    .await;
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// What one incoming WebSocket message turned out to be.
// One per received message, moved straight into its handler: boxing the frame would add an
// allocation per request to save a copy of ~200 bytes.
#[allow(clippy::large_enum_variant)]
enum Incoming {
    Frame(ClientFrame),
    /// Already answered with a `Closing`; end the session.
    Fatal,
    /// Control traffic (ping/pong): nothing to do.
    Nothing,
    Closed,
}

async fn receive(svc: &Service, sink: &mut Sink, msg: Option<Result<Message, axum::Error>>) -> Incoming {
    let limit = svc.config.delivery.max_payload + 64 * 1024;
    match msg {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Incoming::Closed,
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Incoming::Nothing,
        Some(Ok(Message::Text(_))) => {
            svc.metrics.malformed_frames.inc();
            close(
                sink,
                ErrorBody::new(ErrorCode::MalformedFrame, "frames must be binary"),
                1003,
            )
            .await;
            Incoming::Fatal
        }
        Some(Ok(Message::Binary(bytes))) => match decode_client_frame(&bytes, limit) {
            Ok(f) => Incoming::Frame(f),
            Err(e) => {
                svc.metrics.malformed_frames.inc();
                tracing::debug!(error = %e, "malformed frame");
                close(
                    sink,
                    ErrorBody::new(ErrorCode::MalformedFrame, e.to_string()),
                    1007,
                )
                .await;
                Incoming::Fatal
            }
        },
    }
}

/// What a connection becomes after its handshake.
enum Phase {
    /// A device signed in with `Hello`.
    Device(Authed),
    /// An anonymous sealed-sender session (`SealedSession`).
    Sealed,
}

async fn handshake(
    svc: &Arc<Service>,
    sink: &mut Sink,
    stream: &mut Stream,
    ip: IpAddr,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<Phase> {
    let mut deadline =
        tokio::time::Instant::now() + Duration::from_secs(svc.config.delivery.handshake_timeout_secs);
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep_until(deadline) => {
                close(sink, ErrorBody::new(ErrorCode::Unauthorized, "no Hello in time"), 1008).await;
                return None;
            }
            _ = shutdown.changed() => {
                close_for_shutdown(sink, stream).await;
                return None;
            }
        };
        let frame = match receive(svc, sink, msg).await {
            Incoming::Frame(f) => f,
            Incoming::Nothing => continue,
            Incoming::Fatal | Incoming::Closed => return None,
        };
        let ClientFrame::Request { id, body } = frame else {
            close(
                sink,
                ErrorBody::new(ErrorCode::WrongState, "acknowledgement before Hello"),
                1008,
            )
            .await;
            return None;
        };
        let (result, authed) = match body {
            Request::RequestCode { phone } => (svc.request_code(phone, ip).await, None),
            Request::Register { phone, code, pin } => (svc.register(phone, code, pin, ip).await, None),
            Request::Hello {
                protocol,
                account,
                device,
                secret,
            } => match svc.authenticate(protocol, account, device, &secret, ip).await {
                Ok((authed, welcome)) => (Ok(welcome), Some(Phase::Device(authed))),
                Err(e) => (Err(e), None),
            },
            Request::SealedSession => (Ok(sirr_proto::Response::Done), Some(Phase::Sealed)),
            Request::Appeal {
                account,
                device,
                secret,
                text,
            } => (svc.appeal(account, device, &secret, text, ip).await, None),
            Request::Ping => (Ok(sirr_proto::Response::Pong), None),
            Request::RequestLink { public_key } => (svc.request_link(public_key, ip).await, None),
            Request::AwaitLink { link_id, secret } => {
                // A long wait by design: it is not held to the handshake deadline. The socket is
                // watched meanwhile: if the waiter leaves, dropping the wait spends the link, so
                // a later approval creates no device.
                let wait = svc.await_link(link_id, &secret, ip);
                tokio::pin!(wait);
                let answer = loop {
                    tokio::select! {
                        a = &mut wait => break a,
                        m = stream.next() => match m {
                            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                            // Nothing else is served while a link is awaited.
                            Some(Ok(_)) => {}
                        },
                        _ = shutdown.changed() => {
                            close_for_shutdown(sink, stream).await;
                            return None;
                        }
                    }
                };
                deadline = tokio::time::Instant::now()
                    + Duration::from_secs(svc.config.delivery.handshake_timeout_secs);
                (answer, None)
            }
            _ => (
                Err(ErrorBody::new(
                    ErrorCode::WrongState,
                    "authenticate with Hello first",
                )),
                None,
            ),
        };
        if !write(sink, &ServerFrame::Response { id, result }).await {
            return None;
        }
        if authed.is_some() {
            return authed;
        }
    }
}

/// An anonymous sealed-sender session: pipelined `SendSealed` requests, answered as their
/// commits complete; no pushes, no account. Bounded like a device session (`max_inflight`),
/// and, having no account to bound it, closed after `delivery.sealed_idle_secs` without a
/// `SendSealed` or an answer pending (the connection cap per address bounds how many it can hold).
async fn sealed_session(
    svc: &Arc<Service>,
    ip: IpAddr,
    sink: &mut Sink,
    stream: &mut Stream,
    shutdown: &mut watch::Receiver<bool>,
) {
    let max_inflight = svc.config.delivery.max_inflight.max(1);
    let mut work: FuturesUnordered<Work> = FuturesUnordered::new();
    let mut dirty = false;
    // Made once, not per turn of the loop: a fresh `changed()` joins the watch's waiter list
    // (one list for every session) and leaves it again when dropped, two trips through its lock
    // per frame handled; kept across turns it only re-checks its waker.
    let shutting_down = shutdown.changed();
    tokio::pin!(shutting_down);
    let idle = Duration::from_secs(svc.config.delivery.sealed_idle_secs);
    let idle_timer = tokio::time::sleep(idle);
    tokio::pin!(idle_timer);
    loop {
        let ok = tokio::select! {
            biased;
            _ = &mut shutting_down => {
                close_for_shutdown(sink, stream).await;
                break;
            }
            _ = &mut idle_timer, if work.is_empty() && !dirty => {
                close(sink, ErrorBody::new(ErrorCode::WrongState, "idle sealed-sender session; open a new one to send"), 1000).await;
                break;
            }
            Some(done) = work.next(), if !work.is_empty() => match done {
                Some(frame) => {
                    idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                    dirty = true;
                    feed(sink, &frame).await
                }
                None => true,
            },
            msg = stream.next(), if work.len() < max_inflight => match receive(svc, sink, msg).await {
                Incoming::Frame(ClientFrame::Request { id, body }) => {
                    let reply = move |result| Some(ServerFrame::Response { id, result });
                    match body {
                        Request::SendSealed { message_id, to, payload, epoch, ttl_secs, franking, tokens } => {
                            // Only sending keeps the session: pings alone do not.
                            idle_timer.as_mut().reset(tokio::time::Instant::now() + idle);
                            let started = Instant::now();
                            match svc.submit_sealed(to, tokens, Delivery { message_id, payload, epoch, ttl_secs, franking }, ip).await {
                                Ok(pending) => {
                                    let svc = svc.clone();
                                    work.push(Box::pin(async move { reply(svc.finish_send(pending, started).await) }));
                                    true
                                }
                                Err(e) => {
                                    dirty = true;
                                    feed(sink, &ServerFrame::Response { id, result: Err(e) }).await
                                }
                            }
                        }
                        Request::Ping => {
                            dirty = true;
                            feed(sink, &ServerFrame::Response { id, result: Ok(sirr_proto::Response::Pong) }).await
                        }
                        Request::SealedTokenKeys => {
                            dirty = true;
                            feed(sink, &ServerFrame::Response { id, result: svc.sealed_token_keys() }).await
                        }
                        _ => {
                            dirty = true;
                            let e = ErrorBody::new(ErrorCode::WrongState, "a sealed-sender session only sends sealed messages");
                            feed(sink, &ServerFrame::Response { id, result: Err(e) }).await
                        }
                    }
                }
                Incoming::Frame(ClientFrame::Ack { .. }) => {
                    svc.metrics.malformed_frames.inc();
                    close(sink, ErrorBody::new(ErrorCode::WrongState, "nothing is pushed in a sealed-sender session"), 1008).await;
                    break;
                }
                Incoming::Nothing => true,
                Incoming::Fatal | Incoming::Closed => break,
            },
            ok = flush(sink), if dirty => {
                dirty = false;
                ok
            }
        };
        if !ok {
            break;
        }
    }
}

/// Push-side state of a device session.
struct Pusher {
    /// The device this session pushes to (franking tags name it).
    me: sirr_proto::DeviceAddress,
    delivered_upto: u64,
    unacked: usize,
    catching_up: bool,
    told_empty: bool,
}

async fn device_session(
    svc: &Arc<Service>,
    me: Authed,
    ip: IpAddr,
    sink: &mut Sink,
    stream: &mut Stream,
    shutdown: &mut watch::Receiver<bool>,
) {
    let window = svc.config.delivery.push_window.max(1);
    let max_inflight = svc.config.delivery.max_inflight.max(1);
    let mut sub = svc.hub.subscribe(me.key, window * 2);
    let link = sub.link.clone();
    let mut p = Pusher {
        me: me.address,
        delivered_upto: 0,
        unacked: 0,
        catching_up: true,
        told_empty: false,
    };
    let mut work: FuturesUnordered<Work> = FuturesUnordered::new();
    type Fetch = Pin<Box<dyn Future<Output = Result<Vec<QueuedMessage>, StoreError>> + Send>>;
    let mut fetch: Option<Fetch> = None;
    let mut fetch_limit = PAGE;
    // Frames fed to the socket but not yet flushed.
    let mut dirty = false;
    // The request id of a `RemoveDevice` of this very device, or of `DeleteAccount`: the session
    // ends after answering.
    let mut self_removal: Option<u32> = None;
    // Made once, as in `sealed_session`: made per turn, each would join and leave its waiter
    // list for every frame handled.
    let shutting_down = shutdown.changed();
    tokio::pin!(shutting_down);
    let evicted = link.evicted.notified();
    tokio::pin!(evicted);

    loop {
        if p.catching_up && fetch.is_none() && p.unacked < window {
            let store = svc.store.clone();
            let (key, after, limit) = (me.key, p.delivered_upto, PAGE.min(window - p.unacked));
            fetch_limit = limit;
            fetch = Some(Box::pin(async move {
                store.fetch(key, after, limit, crate::service::now_ms()).await
            }));
        }
        // Messages were dropped for us: once what is buffered is pushed, re-read from storage.
        if !p.catching_up && sub.rx.is_empty() && link.lagged.load(Ordering::Acquire) {
            link.lagged.store(false, Ordering::Release);
            p.catching_up = true;
            continue;
        }
        let ok = tokio::select! {
            // Branches are polled in order; the flush comes last, so it runs only when nothing
            // else is ready and a whole burst of frames leaves in one write.
            biased;
            _ = &mut shutting_down => {
                close_for_shutdown(sink, stream).await;
                break;
            }
            _ = &mut evicted => {
                close(sink, ErrorBody::new(ErrorCode::Unauthorized, "this device signed in elsewhere or was removed"), 1008).await;
                break;
            }
            Some(done) = work.next(), if !work.is_empty() => match done {
                Some(frame) => {
                    let removed_self = matches!(
                        &frame,
                        ServerFrame::Response { id, result: Ok(_) } if Some(*id) == self_removal
                    );
                    let ok = feed(sink, &frame).await;
                    if removed_self {
                        // Answer first, then end: this device's credential no longer exists.
                        close(sink, ErrorBody::new(ErrorCode::Unauthorized, "this device was removed"), 1000).await;
                        break;
                    }
                    dirty = true;
                    ok
                }
                None => true,
            },
            page = async { fetch.as_mut().expect("guarded").await }, if fetch.is_some() => {
                fetch = None;
                match page {
                    Ok(page) => {
                        let short = page.len() < fetch_limit;
                        let mut ok = true;
                        for m in &page {
                            ok &= push(svc, sink, &mut p, m).await;
                        }
                        if short && ok {
                            p.catching_up = false;
                            if !p.told_empty {
                                p.told_empty = true;
                                ok = feed(sink, &ServerFrame::QueueEmpty).await;
                            }
                        }
                        dirty = true;
                        ok
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "queue read failed; ending session");
                        close(sink, ErrorBody::new(ErrorCode::Internal, "temporary failure; reconnect").retry_after(1000), 1011).await;
                        break;
                    }
                }
            }
            item = sub.rx.recv(), if !p.catching_up && p.unacked < window => {
                let Some(first) = item else { break };
                let mut ok = push(svc, sink, &mut p, &first).await;
                // Push whatever else is ready, then flush once.
                while ok && p.unacked < window {
                    match sub.rx.try_recv() {
                        Ok(m) => ok = push(svc, sink, &mut p, &m).await,
                        Err(_) => break,
                    }
                }
                dirty = true;
                ok
            }
            msg = stream.next(), if work.len() < max_inflight => {
                match receive(svc, sink, msg).await {
                    Incoming::Frame(ClientFrame::Ack { seqs }) if seqs.len() > window => {
                        // Never more than the window is outstanding: a bigger ack is abuse of the
                        // single store writer.
                        svc.metrics.malformed_frames.inc();
                        close(sink, ErrorBody::new(ErrorCode::MalformedFrame, format!("an ack may name at most {window} messages")), 1008).await;
                        break;
                    }
                    Incoming::Frame(ClientFrame::Ack { seqs }) => {
                        p.unacked = p.unacked.saturating_sub(seqs.len());
                        let svc = svc.clone();
                        work.push(Box::pin(async move { svc.ack(me, seqs).await; None }));
                        true
                    }
                    Incoming::Frame(ClientFrame::Request { id, body }) => {
                        if matches!(&body, Request::RemoveDevice { device } if *device == me.address.device)
                            || matches!(&body, Request::DeleteAccount)
                        {
                            self_removal = Some(id);
                        }
                        match request(svc, me, ip, id, body).await {
                            Ok(w) => { work.push(w); true }
                            Err(frame) => { dirty = true; feed(sink, &frame).await }
                        }
                    }
                    Incoming::Nothing => true,
                    Incoming::Fatal | Incoming::Closed => break,
                }
            }
            ok = flush(sink), if dirty => {
                dirty = false;
                ok
            }
        };
        if !ok {
            break;
        }
    }
    svc.hub.unsubscribe(me.key, &link);
}

/// Queue one envelope on the socket (not yet flushed), unless it was pushed already.
async fn push(svc: &Service, sink: &mut Sink, p: &mut Pusher, m: &QueuedMessage) -> bool {
    if m.seq <= p.delivered_upto {
        return true;
    }
    p.delivered_upto = m.seq;
    p.unacked += 1;
    let franking = m.franking.map(|commitment| sirr_proto::Franking {
        commitment,
        server_tag: svc
            .key
            .franking_tag(&commitment, &m.message_id, m.server_ts, m.from, p.me),
    });
    let bytes = encode_push(m.seq, m.message_id, m.from, m.server_ts, &m.payload, franking);
    let ok = matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.feed(Message::Binary(bytes.into()))).await,
        Ok(Ok(()))
    );
    svc.metrics.messages_out.inc();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    svc.metrics
        .delivery_latency
        .observe(now.saturating_sub(m.server_ts) as f64 / 1000.0);
    ok
}

async fn flush(sink: &mut Sink) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, sink.flush()).await,
        Ok(Ok(()))
    )
}

/// Start one request of a device session. Sends are submitted to storage here, in arrival order;
/// the returned work finishes the request. An immediate error comes back as `Err(frame)`.
async fn request(
    svc: &Arc<Service>,
    me: Authed,
    ip: IpAddr,
    id: u32,
    body: Request,
) -> Result<Work, ServerFrame> {
    let reply = move |result| Some(ServerFrame::Response { id, result });
    let svc = svc.clone();
    Ok(match body {
        Request::Send {
            message_id,
            to,
            payload,
            epoch,
            ttl_secs,
            franking,
        } => {
            let started = Instant::now();
            match svc
                .submit_send(
                    me,
                    to,
                    Delivery {
                        message_id,
                        payload,
                        epoch,
                        ttl_secs,
                        franking,
                    },
                )
                .await
            {
                Ok(pending) => Box::pin(async move { reply(svc.finish_send(pending, started).await) }),
                Err(e) => return Err(ServerFrame::Response { id, result: Err(e) }),
            }
        }
        Request::Lookup { phones } => Box::pin(async move { reply(svc.lookup(me, phones).await) }),
        Request::ListDevices => Box::pin(async move { reply(svc.list_devices(me).await) }),
        Request::RemoveDevice { device } => {
            Box::pin(async move { reply(svc.remove_device(me, device).await) })
        }
        Request::Ping => Box::pin(async move { reply(Ok(sirr_proto::Response::Pong)) }),
        Request::Commit {
            conversation,
            epoch,
            token,
            next,
            commit,
            welcome,
        } => match svc
            .submit_commit(me, conversation, epoch, token, next, commit, welcome.map(|w| *w))
            .await
        {
            Ok(pending) => Box::pin(async move { reply(svc.finish_commit(pending).await) }),
            Err(e) => return Err(ServerFrame::Response { id, result: Err(e) }),
        },
        Request::UploadKeyPackages {
            one_time,
            last_resort,
        } => Box::pin(async move {
            let one_time = one_time.into_iter().map(|b| b.into_vec()).collect();
            let last_resort = last_resort.map(|b| b.into_vec());
            reply(svc.upload_key_packages(me, one_time, last_resort).await)
        }),
        Request::ClaimKeyPackages { account, devices } => {
            Box::pin(async move { reply(svc.claim_key_packages(me, account, devices).await) })
        }
        Request::PublishDeviceList { version, list } => {
            Box::pin(async move { reply(svc.publish_device_list(me, version, list.into_vec()).await) })
        }
        Request::DeleteAccount => Box::pin(async move { reply(svc.delete_account(me).await) }),
        Request::SetRegistrationLock { pin } => {
            Box::pin(async move { reply(svc.set_registration_lock(me, pin).await) })
        }
        Request::RegistrationLockStatus => {
            Box::pin(async move { reply(svc.registration_lock_status(me).await) })
        }
        Request::ExportAccount => Box::pin(async move { reply(svc.export_account(me).await) }),
        Request::Disclosures => Box::pin(async move { reply(svc.disclosures(me).await) }),
        Request::Consents => Box::pin(async move { reply(svc.consents(me).await) }),
        Request::SetConsent { purpose, granted } => {
            Box::pin(async move { reply(svc.set_consent(me, purpose, granted).await) })
        }
        Request::LastSeen { account, access_key } => {
            Box::pin(async move { reply(svc.last_seen(me, account, access_key).await) })
        }
        Request::SetAccessKey { access_key } => {
            Box::pin(async move { reply(svc.set_access_key(me, access_key).await) })
        }
        Request::SolveChallenge { nonce, solution } => {
            Box::pin(async move { reply(svc.solve_challenge(me, nonce, solution).await) })
        }
        Request::Block { account } => Box::pin(async move { reply(svc.block(me, account).await) }),
        Request::Report { account, messages } => {
            Box::pin(async move { reply(svc.report(me, account, messages).await) })
        }
        Request::SetDeviceName { sealed } => {
            Box::pin(async move { reply(svc.set_device_name(me, sealed.into_vec()).await) })
        }
        Request::IssueSealedTokens { blinded } => {
            Box::pin(async move { reply(svc.issue_sealed_tokens(me, ip, blinded).await) })
        }
        Request::Appeal { .. } => {
            return Err(ServerFrame::Response {
                id,
                result: Err(ErrorBody::new(
                    ErrorCode::WrongState,
                    "this device is signed in, so it is not banned",
                )),
            });
        }
        Request::SealedSession | Request::SendSealed { .. } | Request::SealedTokenKeys => {
            return Err(ServerFrame::Response {
                id,
                result: Err(ErrorBody::new(
                    ErrorCode::WrongState,
                    "sealed messages go on their own, unauthenticated connection",
                )),
            });
        }
        Request::ApproveLink { link_id, sealed } => {
            Box::pin(async move { reply(svc.approve_link(me, link_id, sealed.into_vec()).await) })
        }
        Request::RequestLink { .. } | Request::AwaitLink { .. } => {
            return Err(ServerFrame::Response {
                id,
                result: Err(ErrorBody::new(
                    ErrorCode::WrongState,
                    "this session is already signed in; link from a new connection",
                )),
            });
        }
        Request::RequestCode { .. } | Request::Register { .. } | Request::Hello { .. } => {
            return Err(ServerFrame::Response {
                id,
                result: Err(ErrorBody::new(
                    ErrorCode::WrongState,
                    "this session is already signed in",
                )),
            });
        }
    })
}

//! Linking a new device to an account, approved by one of the account's devices.
//!
//! Pending links live in memory only (they last minutes, and a restart merely asks the user to
//! link again). The server sees the new device's ephemeral public key and, once approved, a
//! sealed bundle it cannot open; it creates the device and hands the credential to the waiting
//! new device only. (The new device names itself afterwards, sealed under the account key it
//! received in the bundle.)
//!
//! What is promised:
//! - Only the requester can wait for a link: `RequestLink` hands it a random secret (kept here
//!   as a hash) that `AwaitLink` must present; the link id, which the code the user copies
//!   carries, is not enough to collect the credential.
//! - One waiter per link, and the link is spent when its waiter leaves (gave up, lost its
//!   connection): an approval then answers `LinkExpired` and creates no device, so no orphan
//!   takes one of the account's slots.
//! - Pending links are bounded per IP address as well as in total: each one may hold a socket
//!   for the link's whole lifetime.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use sirr_proto::{DeviceAddress, ErrorBody, ErrorCode, Response, Secret};
use tokio::sync::oneshot;

use crate::keys::{hashes_match, random_secret, secret_hash};
use crate::limits::IpKey;
use crate::service::{Answer, Authed, Service, err, now_ms};

/// How long a link code stays valid.
pub const LINK_TTL: Duration = Duration::from_secs(600);
/// Most links pending at once (they are in memory).
pub const MAX_PENDING_LINKS: usize = 10_000;
/// Most links pending at once from one address (an IPv4 address or an IPv6 /64): a household
/// or office behind one address links a few devices at a time, not dozens.
pub const MAX_PENDING_LINKS_PER_IP: u32 = 8;

/// The pending links of this node.
#[derive(Default)]
pub struct Links {
    /// A std mutex: every critical section is a few map operations and never awaits.
    inner: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    by_id: HashMap<[u8; 16], PendingLink>,
    per_ip: HashMap<IpKey, u32>,
}

/// One link waiting for approval.
struct PendingLink {
    expires: Instant,
    ip: IpKey,
    /// SHA-256 of the secret only the requester was handed.
    secret_hash: [u8; 32],
    /// Where the approval goes: set by the one `AwaitLink` the link accepts.
    waiter: Option<oneshot::Sender<Response>>,
}

impl Pending {
    /// Take `id` out, keeping the per-IP count true. `None` if it was already gone.
    fn take(&mut self, id: &[u8; 16]) -> Option<PendingLink> {
        let link = self.by_id.remove(id)?;
        if let Some(n) = self.per_ip.get_mut(&link.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&link.ip);
            }
        }
        Some(link)
    }

    fn expire(&mut self, now: Instant) {
        let old: Vec<[u8; 16]> = self
            .by_id
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            self.take(&id);
        }
    }
}

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding it cannot leave the maps half-changed in a way that matters.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Links pending now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Spends the link when its waiter goes, however it goes (answered, timed out, disconnected).
struct WaiterGone<'a> {
    links: &'a Links,
    id: [u8; 16],
}

impl Drop for WaiterGone<'_> {
    fn drop(&mut self) {
        self.links.lock().take(&self.id);
    }
}

fn expired() -> ErrorBody {
    err(
        ErrorCode::LinkExpired,
        "this link expired or was already used; link again",
    )
}

impl Service {
    /// `RequestLink` (unauthenticated).
    pub async fn request_link(&self, public_key: [u8; 32], ip: IpAddr) -> Answer {
        let _ = public_key; // travels to the approver in the code the user copies, not via us
        let ip_key = IpKey::from(ip);
        self.limits
            .registration_per_ip
            .check(&ip_key)
            .map_err(|r| self.rate_limited("link requests from this address", r))?;
        let secret = random_secret();
        let mut link_id = [0u8; 16];
        rand::rng().fill(&mut link_id);
        let mut pending = self.links.lock();
        pending.expire(Instant::now());
        if pending.by_id.len() >= MAX_PENDING_LINKS {
            return Err(
                err(ErrorCode::Overloaded, "too many pending links; try again later").retry_after(5_000),
            );
        }
        let from_ip = pending.per_ip.entry(ip_key).or_insert(0);
        if *from_ip >= MAX_PENDING_LINKS_PER_IP {
            self.metrics.rejected_rate_limit.inc();
            return Err(err(
                ErrorCode::RateLimited,
                format!(
                    "{MAX_PENDING_LINKS_PER_IP} links are already pending from this address; finish or wait for one"
                ),
            )
            .retry_after(60_000));
        }
        *from_ip += 1;
        pending.by_id.insert(
            link_id,
            PendingLink {
                expires: Instant::now() + LINK_TTL,
                ip: ip_key,
                secret_hash: secret_hash(&secret),
                waiter: None,
            },
        );
        Ok(Response::LinkCode {
            link_id,
            expires_in: LINK_TTL.as_secs() as u32,
            secret,
        })
    }

    /// `AwaitLink` (unauthenticated): wait for the approval, or the link's expiry. Only the
    /// requester (holding the link's secret), and only once.
    pub async fn await_link(&self, link_id: [u8; 16], secret: &Secret, ip: IpAddr) -> Answer {
        let presented = secret_hash(secret);
        let (rx, expires) = {
            let mut pending = self.links.lock();
            let Some(link) = pending
                .by_id
                .get_mut(&link_id)
                .filter(|l| l.expires > Instant::now())
            else {
                return Err(expired());
            };
            if !hashes_match(&link.secret_hash, &presented) {
                drop(pending);
                if let Err(r) = self.limits.registration_per_ip.check(&IpKey::from(ip)) {
                    return Err(self.rate_limited("failed link waits from this address", r));
                }
                return Err(err(
                    ErrorCode::Unauthorized,
                    "only the device that requested this link can wait for it",
                ));
            }
            if link.waiter.is_some() {
                return Err(err(
                    ErrorCode::BadRequest,
                    "a device is already waiting for this link",
                ));
            }
            let (tx, rx) = oneshot::channel();
            link.waiter = Some(tx);
            (rx, link.expires)
        };
        let _spent = WaiterGone {
            links: &self.links,
            id: link_id,
        };
        match tokio::time::timeout_at(tokio::time::Instant::from_std(expires), rx).await {
            Ok(Ok(approved)) => Ok(approved),
            _ => Err(expired()),
        }
    }

    /// `ApproveLink` (authenticated, from a device on the account's signed list): create the
    /// device in the approver's account and hand its credential to the waiting new device.
    pub async fn approve_link(&self, me: Authed, link_id: [u8; 16], sealed: Vec<u8>) -> Answer {
        if sealed.len() > 64 * 1024 {
            return Err(err(ErrorCode::TooLarge, "the sealed bundle exceeds 64 KiB"));
        }
        self.require_approved(me, "approve a new device").await?;
        // One use: whoever takes the link out first approves it; later approvals find nothing.
        let waiter = {
            let mut pending = self.links.lock();
            let Some(link) = pending.take(&link_id) else {
                return Err(expired());
            };
            if link.expires <= Instant::now() {
                return Err(expired());
            }
            match link.waiter {
                Some(tx) if !tx.is_closed() => tx,
                _ => {
                    return Err(err(
                        ErrorCode::LinkExpired,
                        "the new device is not waiting for this link any more; link again",
                    ));
                }
            }
        };
        let secret = random_secret();
        let record = self
            .store
            .add_device(
                me.address.account,
                secret_hash(&secret),
                (now_ms() / 86_400_000) as u32,
            )
            .await
            .map_err(|e| self.store_error(e))?;
        self.devices_changed(me.address.account);
        let DeviceAddress { account, device } = record.address;
        let approved = Response::LinkApproved {
            account,
            device,
            secret,
            sealed: sealed.into(),
        };
        if waiter.send(approved).is_err() {
            // The waiter left while the device was being created: undo, so no orphan stays.
            let _ = self.store.remove_device(record.address).await;
            self.devices_changed(account);
            return Err(err(
                ErrorCode::LinkExpired,
                "the new device stopped waiting; nothing was added; link again",
            ));
        }
        self.metrics.registrations.inc();
        tracing::info!(account = %self.key.log_tag(&account), "device linked");
        Ok(Response::Linked { device })
    }

    /// Forget expired links.
    pub fn expire_links(&self) {
        self.links.lock().expire(Instant::now());
    }
}

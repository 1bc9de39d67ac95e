//! Linking a new device to an account, approved by one of the account's devices.
//!
//! Pending links live in memory only (they last minutes, and a restart merely asks the user to
//! link again). The server sees the new device's ephemeral public key and, once approved, a
//! sealed bundle it cannot open; it creates the device and hands the credential to the waiting
//! new device only. (The new device names itself afterwards, sealed under the account key it
//! received in the bundle.)

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use sirr_proto::{DeviceAddress, ErrorCode, Response};
use tokio::sync::watch;

use crate::keys::{random_secret, secret_hash};
use crate::limits::IpKey;
use crate::service::{Answer, Authed, Service, err, now_ms};

/// How long a link code stays valid.
pub const LINK_TTL: Duration = Duration::from_secs(600);
/// Most links pending at once (they are in memory).
pub const MAX_PENDING_LINKS: usize = 10_000;

/// One link waiting for approval; `outcome` turns `Some` when a device approves it.
pub struct PendingLink {
    expires: Instant,
    outcome: watch::Sender<Option<Response>>,
}

impl Service {
    /// `RequestLink` (unauthenticated).
    pub async fn request_link(&self, public_key: [u8; 32], ip: IpAddr) -> Answer {
        let _ = public_key; // travels to the approver in the code the user copies, not via us
        self.limits
            .registration_per_ip
            .check(&IpKey::from(ip))
            .map_err(|r| self.rate_limited("link requests from this address", r))?;
        self.expire_links();
        if self.links.len() >= MAX_PENDING_LINKS {
            return Err(
                err(ErrorCode::Overloaded, "too many pending links; try again later").retry_after(5_000),
            );
        }
        let mut link_id = [0u8; 16];
        rand::rng().fill(&mut link_id);
        let (outcome, _) = watch::channel(None);
        self.links.insert(
            link_id,
            Arc::new(PendingLink {
                expires: Instant::now() + LINK_TTL,
                outcome,
            }),
        );
        Ok(Response::LinkCode {
            link_id,
            expires_in: LINK_TTL.as_secs() as u32,
        })
    }

    /// `AwaitLink` (unauthenticated): wait for the approval, or the link's expiry.
    pub async fn await_link(&self, link_id: [u8; 16]) -> Answer {
        let expired = || {
            err(
                ErrorCode::LinkExpired,
                "this link expired or was already used; link again",
            )
        };
        let Some(link) = self.links.get(&link_id).map(|l| l.clone()) else {
            return Err(expired());
        };
        let mut rx = link.outcome.subscribe();
        let deadline = tokio::time::Instant::from_std(link.expires);
        let approved = tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await;
        let answer = match approved {
            Ok(Ok(value)) => value.clone().ok_or_else(expired),
            _ => Err(expired()),
        };
        // One use: the credential is handed out once.
        self.links.remove(&link_id);
        answer
    }

    /// `ApproveLink` (authenticated): create the device in the approver's account.
    pub async fn approve_link(&self, me: Authed, link_id: [u8; 16], sealed: Vec<u8>) -> Answer {
        let expired = || err(ErrorCode::LinkExpired, "this link expired or was already used");
        if sealed.len() > 64 * 1024 {
            return Err(err(ErrorCode::TooLarge, "the sealed bundle exceeds 64 KiB"));
        }
        let Some(link) = self.links.get(&link_id).map(|l| l.clone()) else {
            return Err(expired());
        };
        if link.expires <= Instant::now() || link.outcome.borrow().is_some() {
            return Err(expired());
        }
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
        // Someone may have approved concurrently: only the first approval counts.
        let mut first = false;
        link.outcome.send_if_modified(|v| {
            if v.is_none() {
                *v = Some(approved);
                first = true;
            }
            first
        });
        if !first {
            let _ = self.store.remove_device(record.address).await;
            self.devices_changed(account);
            return Err(expired());
        }
        self.metrics.registrations.inc();
        tracing::info!(account = %self.key.log_tag(&account), "device linked");
        Ok(Response::Linked { device })
    }

    /// Forget expired links.
    pub fn expire_links(&self) {
        let now = Instant::now();
        self.links.retain(|_, l| l.expires > now);
    }
}

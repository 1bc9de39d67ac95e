//! The server's behaviour, independent of transport: registration, authentication, sending,
//! directory and devices. The WebSocket session (`session.rs`) decodes frames and calls in here.
//!
//! Every method that acts for a device takes the [`Authed`] it was given by
//! [`Service::authenticate`], so no code path can act without having checked who is asking.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use rand::Rng;
use sirr_proto::{
    AccountId, DeviceAddress, DeviceId, DeviceInfo, DirectoryEntry, ErrorBody, ErrorCode, MessageId,
    PROTOCOL_VERSION, Phone, Recipient, Response, Secret,
};
use sirr_store::{DeviceKey, NewDevice, NewMessage, Pending, Store, StoreError, Verification};

use crate::config::Config;
use crate::hub::Hub;
use crate::keys::{ServerKey, hashes_match, random_secret, secret_hash};
use crate::limits::{IpKey, Limits, RetryAfter};
use crate::metrics::Metrics;
use crate::verify::VerificationSender;

/// The code every number accepts in development mode.
pub const DEV_CODE: &str = "000000";
/// Most recipient accounts in one send (a group of 1,024 members has 1,023 others).
pub const MAX_RECIPIENT_ACCOUNTS: usize = 1_024;
/// Most numbers in one lookup request.
pub const MAX_LOOKUP: usize = 500;
/// Accounts whose device lists are cached before the cache is reset.
const DEVICE_CACHE_CAP: usize = 1_000_000;

/// A session's proof of authentication.
#[derive(Clone, Copy, Debug)]
pub struct Authed {
    pub address: DeviceAddress,
    pub key: DeviceKey,
}

pub type Answer = Result<Response, ErrorBody>;

pub struct Service {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    pub limits: Limits,
    pub metrics: Metrics,
    key: ServerKey,
    sender: Arc<dyn VerificationSender>,
    /// account → its devices, filled on demand; invalidated on every device change.
    devices: DashMap<AccountId, Arc<Vec<(DeviceId, DeviceKey)>>>,
    /// Bumped after every device change, so a cache fill that raced a change is not stored.
    device_generation: std::sync::atomic::AtomicU64,
    /// Admission control for registration: a surge is shed here, quickly, instead of queueing.
    registration_slots: tokio::sync::Semaphore,
    /// Device links waiting for approval (see `link.rs`).
    pub(crate) links: DashMap<[u8; 16], Arc<crate::link::PendingLink>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn err(code: ErrorCode, msg: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, msg)
}

impl Service {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        key: ServerKey,
        sender: Arc<dyn VerificationSender>,
    ) -> Self {
        Self {
            limits: Limits::new(&config.limits),
            registration_slots: tokio::sync::Semaphore::new(config.limits.registrations_in_flight),
            config,
            store,
            hub,
            key,
            sender,
            metrics: Metrics::default(),
            devices: DashMap::new(),
            device_generation: std::sync::atomic::AtomicU64::new(0),
            links: DashMap::new(),
        }
    }

    pub fn store_backlog(&self) -> usize {
        self.store.write_backlog()
    }

    pub(crate) fn store_error(&self, e: StoreError) -> ErrorBody {
        match e {
            StoreError::Overloaded => {
                self.metrics.rejected_overload.inc();
                err(ErrorCode::Overloaded, "server is at capacity; nothing was stored").retry_after(100)
            }
            StoreError::DeviceLimit => err(
                ErrorCode::DeviceLimit,
                format!(
                    "this account already has {} devices; remove one first",
                    sirr_proto::MAX_DEVICES_PER_ACCOUNT
                ),
            ),
            StoreError::Conflict(_) => err(
                ErrorCode::CodeExpired,
                "this code was already used; request a new one",
            ),
            other => {
                // Details go to the operator's log, never to the client.
                tracing::error!(error = %other, "storage failure");
                err(ErrorCode::Internal, "internal error; try again").retry_after(1000)
            }
        }
    }

    /// A registration slot, or an immediate "retry after" when the server is at capacity.
    fn admit_registration(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ErrorBody> {
        self.registration_slots.try_acquire().map_err(|_| {
            self.metrics.rejected_overload.inc();
            err(
                ErrorCode::Overloaded,
                "registration is at capacity; nothing was done",
            )
            .retry_after(250)
        })
    }

    pub(crate) fn rate_limited(&self, what: &str, r: RetryAfter) -> ErrorBody {
        self.metrics.rejected_rate_limit.inc();
        err(ErrorCode::RateLimited, format!("too many {what}; slow down")).retry_after(r.millis())
    }

    // ----- registration ---------------------------------------------------------------------

    /// `RequestCode`: send a fresh code to `phone`.
    pub async fn request_code(&self, phone: Phone, ip: IpAddr) -> Answer {
        let _slot = self.admit_registration()?;
        self.limits
            .registration_per_ip
            .check(&IpKey::from(ip))
            .map_err(|r| self.rate_limited("registration requests from this address", r))?;
        self.limits
            .code_per_phone
            .check(&phone.as_str().to_owned())
            .map_err(|r| self.rate_limited("codes for this number", r))?;
        self.limits
            .code_per_prefix
            .check(&phone.prefix(self.limits.prefix_digits).to_owned())
            .map_err(|r| self.rate_limited("codes for numbers like this one", r))?;
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let ttl = self.config.verification.code_ttl_secs;
        let phone_key = self.key.phone_key(&phone);
        let v = Verification {
            code_hash: self.key.code_hash(&phone, &code),
            expires_at: now_ms() + ttl * 1000,
            attempts: 0,
        };
        self.store
            .put_verification(phone_key, v)
            .await
            .map_err(|e| self.store_error(e))?;
        if let Err(e) = self.sender.send(&phone, &code).await {
            tracing::warn!(error = %e, "could not send a verification code");
            let _ = self.store.delete_verification(phone_key).await;
            return Err(
                err(ErrorCode::Internal, "could not send the code; try again later").retry_after(30_000),
            );
        }
        Ok(Response::CodeSent {
            expires_in: ttl.min(u32::MAX as u64) as u32,
        })
    }

    /// `Register`: check the code and create a device (and the account if new).
    pub async fn register(&self, phone: Phone, code: String, device_name: String, ip: IpAddr) -> Answer {
        let _slot = self.admit_registration()?;
        self.limits
            .registration_per_ip
            .check(&IpKey::from(ip))
            .map_err(|r| self.rate_limited("registration requests from this address", r))?;
        let name = device_name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(err(
                ErrorCode::BadRequest,
                "device name must be 1-64 printable characters",
            ));
        }
        let phone_key = self.key.phone_key(&phone);
        let dev_bypass = self.config.dev && code == DEV_CODE;
        if !dev_bypass {
            let max = self.config.verification.max_attempts;
            let v = self
                .store
                .take_attempt(phone_key, now_ms(), max)
                .await
                .map_err(|e| self.store_error(e))?
                .ok_or_else(|| {
                    err(
                        ErrorCode::CodeExpired,
                        "no valid code for this number; request a new one",
                    )
                })?;
            if !hashes_match(&v.code_hash, &self.key.code_hash(&phone, &code)) {
                let left = max.saturating_sub(v.attempts);
                return Err(err(
                    ErrorCode::InvalidCode,
                    format!("wrong code; {left} attempts left"),
                ));
            }
        }
        let secret = random_secret();
        let mut fresh = [0u8; 16];
        rand::rng().fill(&mut fresh);
        let reg = self
            .store
            .register_device(NewDevice {
                phone_key,
                fresh_account_id: AccountId(fresh),
                name: name.to_owned(),
                secret_hash: secret_hash(&secret),
                day: (now_ms() / 86_400_000) as u32,
                consume_verification: !dev_bypass,
            })
            .await
            .map_err(|e| self.store_error(e))?;
        self.devices_changed(reg.account);
        self.metrics.registrations.inc();
        tracing::info!(account = %reg.account, device = %reg.device.address.device, new = reg.new_account, "device registered");
        Ok(Response::Registered {
            account: reg.account,
            device: reg.device.address.device,
            secret,
            new_account: reg.new_account,
        })
    }

    /// `Hello`: check a device credential. Failed attempts count against the IP's budget.
    pub async fn authenticate(
        &self,
        protocol: u16,
        account: AccountId,
        device: DeviceId,
        secret: &Secret,
        ip: IpAddr,
    ) -> Result<(Authed, Response), ErrorBody> {
        if protocol != PROTOCOL_VERSION {
            return Err(err(
                ErrorCode::UnsupportedProtocol,
                format!("server speaks protocol {PROTOCOL_VERSION}, client {protocol}; update the client"),
            ));
        }
        let address = DeviceAddress { account, device };
        let record = self
            .store
            .device(address)
            .await
            .map_err(|e| self.store_error(e))?;
        // Hash even when the device is unknown, so timing does not tell which it was.
        let presented = secret_hash(secret);
        let ok = record
            .as_ref()
            .is_some_and(|r| hashes_match(&r.secret_hash, &presented));
        let Some(record) = record.filter(|_| ok) else {
            if let Err(r) = self.limits.registration_per_ip.check(&IpKey::from(ip)) {
                return Err(self.rate_limited("failed logins from this address", r));
            }
            return Err(err(
                ErrorCode::Unauthorized,
                "unknown device or wrong credential; register again",
            ));
        };
        let queued = self
            .store
            .queue_len(record.key)
            .await
            .map_err(|e| self.store_error(e))?;
        let key_packages = self.key_package_stock(record.key).await?;
        let authed = Authed {
            address,
            key: record.key,
        };
        Ok((
            authed,
            Response::Welcome {
                account,
                device,
                queued,
                key_packages,
            },
        ))
    }

    // ----- messaging ------------------------------------------------------------------------

    pub(crate) async fn devices_of(
        &self,
        account: AccountId,
    ) -> Result<Option<Arc<Vec<(DeviceId, DeviceKey)>>>, ErrorBody> {
        if let Some(d) = self.devices.get(&account) {
            return Ok(Some(d.clone()));
        }
        let generation = self.device_generation.load(std::sync::atomic::Ordering::Acquire);
        let list: Vec<_> = self
            .store
            .devices(account)
            .await
            .map_err(|e| self.store_error(e))?
            .into_iter()
            .map(|r| (r.address.device, r.key))
            .collect();
        if list.is_empty() {
            return Ok(None);
        }
        if self.devices.len() >= DEVICE_CACHE_CAP {
            self.devices.clear();
        }
        let list = Arc::new(list);
        // A device change since the read began may have made `list` stale: use it for this
        // request only.
        if self.device_generation.load(std::sync::atomic::Ordering::Acquire) == generation {
            self.devices.insert(account, list.clone());
        }
        Ok(Some(list))
    }

    /// `Send`, first half: check the request and submit it to storage. Called in request order
    /// within a session, so one device's messages are queued in the order it sent them. The
    /// returned future completes when the message is durable.
    pub async fn submit_send(
        &self,
        me: Authed,
        message_id: MessageId,
        to: Vec<Recipient>,
        payload: Vec<u8>,
        epoch: Option<sirr_proto::EpochRef>,
    ) -> Result<Pending, ErrorBody> {
        if payload.len() > self.config.delivery.max_payload {
            return Err(err(
                ErrorCode::TooLarge,
                format!(
                    "payload of {} bytes exceeds the limit of {} bytes",
                    payload.len(),
                    self.config.delivery.max_payload
                ),
            ));
        }
        if to.is_empty() || to.len() > MAX_RECIPIENT_ACCOUNTS {
            return Err(err(
                ErrorCode::BadRequest,
                format!("a message needs 1 to {MAX_RECIPIENT_ACCOUNTS} recipient accounts"),
            ));
        }
        self.limits
            .send
            .check(&me.address.account)
            .map_err(|r| self.rate_limited("messages", r))?;

        let mut keys = Vec::with_capacity(to.len());
        let mut stale = Vec::new();
        let mut seen = HashSet::with_capacity(to.len());
        let own = self.own_account_if_missing(me, &to);
        for r in to.iter().chain(own.as_ref()) {
            if !seen.insert(r.account) {
                return Err(err(ErrorCode::BadRequest, "a recipient account is listed twice"));
            }
            let Some(current) = self.devices_of(r.account).await? else {
                return Err(err(
                    ErrorCode::UnknownRecipient,
                    format!("no account {}", r.account),
                ));
            };
            let expected: Vec<(DeviceId, DeviceKey)> = current
                .iter()
                .copied()
                .filter(|(id, _)| r.account != me.address.account || *id != me.address.device)
                .collect();
            let claimed: HashSet<DeviceId> = r.devices.iter().copied().collect();
            if claimed.len() != r.devices.len()
                || claimed.len() != expected.len()
                || expected.iter().any(|(id, _)| !claimed.contains(id))
            {
                stale.push(Recipient {
                    account: r.account,
                    devices: expected.iter().map(|(id, _)| *id).collect(),
                });
                continue;
            }
            keys.extend(expected.iter().map(|(_, k)| *k));
        }
        if !stale.is_empty() {
            let mut e = err(
                ErrorCode::StaleDevices,
                "recipient device lists changed; resend to the listed devices",
            );
            e.devices = stale;
            return Err(e);
        }
        if keys.is_empty() {
            return Err(err(ErrorCode::BadRequest, "no recipient devices"));
        }
        let message = NewMessage {
            message_id,
            from: me.address,
            server_ts: now_ms(),
            payload: payload.into(),
        };
        Ok(match epoch {
            None => self.store.enqueue(message, keys),
            Some(e) => {
                self.store
                    .enqueue_checked(message, keys, Self::epoch_check(me, e.conversation, e.epoch))
            }
        })
    }

    /// Forget the cached device list of `account` after a committed change.
    pub(crate) fn devices_changed(&self, account: AccountId) {
        self.device_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.devices.remove(&account);
    }

    /// The sender's own account, when the request left it out: its other devices must get a copy.
    fn own_account_if_missing(&self, me: Authed, to: &[Recipient]) -> Option<Recipient> {
        if to.iter().any(|r| r.account == me.address.account) {
            return None;
        }
        let others = self.devices.get(&me.address.account).map(|d| d.len() > 1);
        // Unknown (not cached) counts as "check it": `submit_send` loads and compares.
        (others != Some(false)).then(|| Recipient {
            account: me.address.account,
            devices: vec![],
        })
    }

    /// `Send`, second half: the answer once storage has committed.
    pub async fn finish_send(&self, pending: Pending, started: Instant) -> Answer {
        pending.await.map_err(|e| self.e2e_error(e))?;
        self.metrics.messages_in.inc();
        self.metrics.send_latency.observe(started.elapsed().as_secs_f64());
        Ok(Response::Sent { server_ts: now_ms() })
    }

    pub async fn ack(&self, me: Authed, seqs: Vec<u64>) {
        let n = seqs.len() as u64;
        match self.store.ack(me.key, seqs).await {
            Ok(()) => {
                self.metrics.acks.inc_by(n);
            }
            Err(e) => tracing::warn!(error = %e, "ack not stored; the messages will be delivered again"),
        }
    }

    // ----- directory and devices ------------------------------------------------------------

    pub async fn lookup(&self, me: Authed, phones: Vec<Phone>) -> Answer {
        if phones.len() > MAX_LOOKUP {
            return Err(err(
                ErrorCode::BadRequest,
                format!("at most {MAX_LOOKUP} numbers per lookup"),
            ));
        }
        self.limits
            .lookup
            .check_n(&me.address.account, phones.len() as u32)
            .map_err(|r| self.rate_limited("lookups", r))?;
        let mut entries = Vec::new();
        for phone in phones {
            let key = self.key.phone_key(&phone);
            if let Some((account, devices)) = self
                .store
                .account_by_phone(key)
                .await
                .map_err(|e| self.store_error(e))?
            {
                entries.push(DirectoryEntry {
                    phone,
                    account,
                    devices,
                });
            }
        }
        Ok(Response::Directory { entries })
    }

    pub async fn list_devices(&self, me: Authed) -> Answer {
        let devices = self
            .store
            .devices(me.address.account)
            .await
            .map_err(|e| self.store_error(e))?
            .into_iter()
            .map(|r| DeviceInfo {
                id: r.address.device,
                name: r.name,
                created_day: r.created_day,
            })
            .collect();
        Ok(Response::Devices { devices })
    }

    pub async fn remove_device(&self, me: Authed, device: DeviceId) -> Answer {
        let address = DeviceAddress {
            account: me.address.account,
            device,
        };
        let Some(record) = self
            .store
            .device(address)
            .await
            .map_err(|e| self.store_error(e))?
        else {
            return Err(err(
                ErrorCode::BadRequest,
                format!("this account has no device {device}"),
            ));
        };
        self.store
            .remove_device(address)
            .await
            .map_err(|e| self.store_error(e))?;
        self.devices_changed(me.address.account);
        if record.key != me.key {
            self.hub.evict(record.key);
        }
        tracing::info!(account = %me.address.account, %device, "device removed");
        Ok(Response::Done)
    }

    /// `ExportAccount`: everything held about the account, laid out by the privacy manifest.
    pub async fn export_account(&self, me: Authed) -> Answer {
        let tables = self
            .store
            .export_account(me.address.account)
            .await
            .map_err(|e| self.store_error(e))?;
        let internal = |e: crate::privacy::ManifestError| {
            tracing::error!(error = %e, "data export does not match the privacy manifest");
            err(ErrorCode::Internal, "internal error; try again")
        };
        let manifest = crate::privacy::Manifest::load().map_err(internal)?;
        let json =
            crate::privacy::export(&manifest, me.address.account, &tables, now_ms()).map_err(internal)?;
        Ok(Response::AccountExport {
            json: serde_json::to_string_pretty(&json).unwrap_or_default(),
        })
    }

    /// `Disclosures`: the account's own ledger.
    pub async fn disclosures(&self, me: Authed) -> Answer {
        let entries = self
            .store
            .disclosures(me.address.account)
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(Response::Disclosures { entries })
    }

    /// `DeleteAccount`: everything tied to the account goes; its other sessions end.
    pub async fn delete_account(&self, me: Authed) -> Answer {
        let keys = self
            .store
            .delete_account(me.address.account)
            .await
            .map_err(|e| self.store_error(e))?;
        self.devices_changed(me.address.account);
        for key in keys.into_iter().filter(|k| *k != me.key) {
            self.hub.evict(key);
        }
        tracing::info!(account = %me.address.account, "account deleted");
        Ok(Response::Done)
    }

    /// Periodic upkeep: expire old messages and codes, forget idle rate-limit state.
    pub async fn housekeeping(&self) {
        let retention = Duration::from_secs(u64::from(self.config.delivery.retention_days) * 86_400);
        let cutoff = now_ms().saturating_sub(retention.as_millis() as u64);
        match self.store.expire(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "expired undelivered messages"),
            Err(e) => tracing::warn!(error = %e, "message expiry failed"),
        }
        if let Err(e) = self.store.purge_verifications(now_ms()).await {
            tracing::warn!(error = %e, "verification purge failed");
        }
        if let Err(e) = self.store.purge_key_packages(now_ms()).await {
            tracing::warn!(error = %e, "KeyPackage purge failed");
        }
        self.expire_links();
        self.limits.forget_idle();
        if let Ok(n) = self.store.queued_total().await {
            self.metrics.queued_messages.set(n as i64);
        }
    }
}

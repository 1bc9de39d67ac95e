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
    AccountId, ConsentState, DeviceAddress, DeviceId, DeviceInfo, DirectoryEntry, ErrorBody, ErrorCode,
    MessageId, PROTOCOL_VERSION, Phone, Purpose, Recipient, Response, Secret,
};
use sirr_store::{ConsentRecord, DeviceKey, NewDevice, NewMessage, Pending, Store, StoreError, Verification};

use crate::abuse::Abuse;
use crate::config::{Config, RegionRules};
use crate::hub::Hub;
use crate::keys::{ServerKey, hashes_match, random_secret, secret_hash, secret_hash_16};
use crate::limits::{IpKey, Limits, RetryAfter};
use crate::metrics::CodeRefusal;
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
/// Largest sealed device name accepted (the crypto crate's bound for its longest name).
const MAX_SEALED_DEVICE_NAME: usize = sirr_crypto::account::MAX_SEALED_DEVICE_NAME;

/// A session's proof of authentication.
#[derive(Clone, Copy, Debug)]
pub struct Authed {
    pub address: DeviceAddress,
    pub key: DeviceKey,
    /// The address the session connected from (for per-IP limits; never stored).
    pub ip: IpAddr,
}

pub type Answer = Result<Response, ErrorBody>;

/// What a send carries besides its recipients (the fields `Send` and `SendSealed` share).
pub struct Delivery {
    pub message_id: MessageId,
    pub payload: Vec<u8>,
    pub epoch: Option<sirr_proto::EpochRef>,
    pub ttl_secs: Option<u32>,
    pub franking: Option<[u8; 32]>,
}

pub struct Service {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub hub: Arc<Hub>,
    pub limits: Limits,
    pub metrics: Metrics,
    pub(crate) key: ServerKey,
    sender: Arc<dyn VerificationSender>,
    /// account → its devices, filled on demand; invalidated on every device change.
    devices: DashMap<AccountId, Arc<Vec<(DeviceId, DeviceKey)>>>,
    /// Bumped after every device change, so a cache fill that raced a change is not stored.
    device_generation: std::sync::atomic::AtomicU64,
    /// Admission control for registration: a surge is shed here, quickly, instead of queueing.
    registration_slots: tokio::sync::Semaphore,
    /// Device links waiting for approval (see `link.rs`).
    pub(crate) links: crate::link::Links,
    /// The last-connection day already recorded per account, so a day costs one write.
    connection_days: DashMap<AccountId, u32>,
    /// account → the hash of its sealed-sender delivery token (`None`: it has none), filled on
    /// demand, replaced when the account sets a new one.
    access_keys: DashMap<AccountId, Option<[u8; 32]>>,
    /// The abuse engine and every account's standing (see `abuse.rs`).
    pub abuse: Abuse,
    /// The challenge nonce handed to each device of a challenged account: one per device, handed
    /// again on every refused send until that device solves it (single use), so two devices of
    /// one account, or one device's pipelined sends, never invalidate each other's work.
    challenges: DashMap<DeviceAddress, [u8; 16]>,
    /// Sends of throttled accounts.
    throttled: crate::limits::Bucket<AccountId>,
    /// The newest stored abuse decision already applied (operators' reviews are followed).
    abuse_seen: std::sync::atomic::AtomicI64,
    /// Anonymous tokens that pay for sealed sends (see `sealed_tokens.rs`).
    pub sealed_tokens: crate::sealed_tokens::SealedTokens,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Days since the Unix epoch.
pub fn today() -> u32 {
    (now_ms() / 86_400_000) as u32
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
        let abuse = Abuse::new(&config.abuse).unwrap_or_else(|e| {
            // `Config::validate` builds the engine first, so this is not reached.
            tracing::error!(error = %e, "abuse engine disabled: invalid configuration");
            Abuse::disabled()
        });
        let throttled = crate::limits::Bucket::new(config.abuse.throttled_send);
        // Only a broken system RNG makes this fail: then nothing could be served safely.
        let sealed_tokens = crate::sealed_tokens::SealedTokens::new(&config.sealed_tokens)
            .expect("a sealed-send token key from the system RNG");
        Self {
            sealed_tokens,
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
            links: crate::link::Links::default(),
            connection_days: DashMap::new(),
            access_keys: DashMap::new(),
            abuse,
            challenges: DashMap::new(),
            throttled,
            abuse_seen: std::sync::atomic::AtomicI64::new(0),
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
        let refused = |reason: CodeRefusal, what: &str, r| {
            self.metrics.code_refused(reason);
            self.rate_limited(what, r)
        };
        self.limits
            .registration_per_ip
            .check(&IpKey::from(ip))
            .map_err(|r| refused(CodeRefusal::Address, "registration requests from this address", r))?;
        self.limits
            .code_per_phone
            .check(&phone.as_str().to_owned())
            .map_err(|r| refused(CodeRefusal::Number, "codes for this number", r))?;
        self.limits
            .code_per_prefix
            .check(&phone.prefix(self.limits.prefix_digits).to_owned())
            .map_err(|r| refused(CodeRefusal::Prefix, "codes for numbers like this one", r))?;
        // Last, so requests the narrower limits refuse do not use up everyone's budget.
        self.limits
            .code_global
            .check(&())
            .map_err(|r| refused(CodeRefusal::Global, "verification codes (server-wide)", r))?;
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

    /// `Register`: check the code and create a device: in a new account, or as the first of
    /// the number's account identity started anew, once its registration lock lets it
    /// (see `reglock.rs`).
    pub async fn register(
        &self,
        phone: Phone,
        code: String,
        pin: Option<sirr_proto::Pin>,
        ip: IpAddr,
    ) -> Answer {
        let _slot = self.admit_registration()?;
        self.limits
            .registration_per_ip
            .check(&IpKey::from(ip))
            .map_err(|r| self.rate_limited("registration requests from this address", r))?;
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
        // A code proves the number, not the account: an existing account is never joined.
        let (retire, keep_lock) = match self
            .store
            .account_by_phone(phone_key)
            .await
            .map_err(|e| self.store_error(e))?
        {
            None => (None, None),
            Some((old, _)) => {
                // A banned number cannot shed its ban by starting anew.
                self.refuse_banned(old)?;
                (Some(old), self.pass_registration_lock(old, pin.as_ref()).await?)
            }
        };
        let secret = random_secret();
        let mut fresh = [0u8; 16];
        rand::rng().fill(&mut fresh);
        let fresh = AccountId(fresh);
        // Decided before done: a new account's registration is shown to the engine under the id
        // it is about to get, before anything is stored, so a farm ban stops this very one.
        let mine = self.decide_registration(&phone, phone_key, fresh, ip).await?;
        let reg = self
            .store
            .register_device(NewDevice {
                phone_key,
                fresh_account_id: fresh,
                secret_hash: secret_hash(&secret),
                day: today(),
                consume_verification: !dev_bypass,
                retire,
                keep_lock,
            })
            .await
            .map_err(|e| self.store_error(e))?;
        self.devices_changed(reg.account);
        if retire.is_some() {
            // The old identity's devices are signed out now; its cached state goes with it.
            for key in &reg.retired {
                self.hub.evict(*key);
            }
            self.access_keys.remove(&reg.account);
            self.connection_days.remove(&reg.account);
            tracing::info!(account = %self.key.log_tag(&reg.account), signed_out = reg.retired.len(), "account identity started anew");
        }
        self.metrics.registrations.inc();
        // A standing short of a ban (challenge, throttle) is the new account's to keep; had
        // the number been registered concurrently, the fresh id went unused and so does it.
        if reg.account == fresh && !mine.is_empty() {
            self.enforce(mine);
        }
        tracing::info!(account = %self.key.log_tag(&reg.account), new = reg.new_account, "device registered");
        Ok(Response::Registered {
            account: reg.account,
            device: reg.device.address.device,
            secret,
            new_account: reg.new_account,
        })
    }

    /// Show the engine a registration that would create account `fresh` (nothing if the number
    /// already has an account: a new device of it is not a new sign-up). Decisions about other
    /// accounts are carried out at once; a ban of `fresh` refuses the registration before any
    /// row exists; other decisions about `fresh` are returned, to be stored once it does.
    async fn decide_registration(
        &self,
        phone: &Phone,
        phone_key: sirr_store::PhoneKey,
        fresh: AccountId,
        ip: IpAddr,
    ) -> Result<Vec<(AccountId, sirr_abuse::Decision)>, ErrorBody> {
        if !self.abuse.enabled() {
            return Ok(Vec::new());
        }
        let existing = self
            .store
            .account_by_phone(phone_key)
            .await
            .map_err(|e| self.store_error(e))?;
        if existing.is_some() {
            return Ok(Vec::new());
        }
        let decisions = self.abuse.observe(sirr_abuse::Event::Register {
            t: now_ms(),
            account: crate::abuse::name(fresh),
            phone: phone.as_str().to_owned(),
            ip: crate::abuse::network(ip),
            // Sirr collects no client string (device names are sealed and come later), so
            // this registration forms no client cluster: the account's own name is unique.
            client: crate::abuse::name(fresh),
        });
        let (mine, others): (Vec<_>, Vec<_>) = decisions.into_iter().partition(|(a, _)| *a == fresh);
        self.enforce(others);
        if let Some((_, d)) = mine.iter().find(|(_, d)| d.action == sirr_abuse::Action::Ban) {
            // No account exists to hold the standing: forget it (the id is never used).
            self.abuse.apply(fresh, sirr_abuse::Action::Allow, Vec::new());
            tracing::info!(reasons = ?d.reasons, "registration refused by the abuse engine");
            return Err(err(
                ErrorCode::Banned,
                format!(
                    "registration refused: it looks automated (signals: {}); nothing was created",
                    d.reasons.join(", ")
                ),
            ));
        }
        Ok(mine)
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
        if let Some(st) = self.abuse.standing(account)
            && st.action == sirr_abuse::Action::Ban
        {
            return Err(banned(&st.reasons));
        }
        let queued = self
            .store
            .queue_len(record.key)
            .await
            .map_err(|e| self.store_error(e))?;
        let key_packages = self.key_package_stock(record.key).await?;
        self.note_connection(account).await;
        let authed = Authed {
            address,
            key: record.key,
            ip,
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

    /// Record the day of this connection: one write per account and day.
    async fn note_connection(&self, account: AccountId) {
        let day = today();
        if self.connection_days.get(&account).is_some_and(|d| *d == day) {
            return;
        }
        match self.store.record_connection(account, day).await {
            Ok(()) => {
                if self.connection_days.len() >= DEVICE_CACHE_CAP {
                    self.connection_days.clear();
                }
                self.connection_days.insert(account, day);
            }
            // A login does not fail for it; the next one tries again.
            Err(e) => tracing::warn!(error = %e, "could not record the day of a connection"),
        }
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
        to: Vec<Recipient>,
        d: Delivery,
    ) -> Result<Pending, ErrorBody> {
        self.check_message(&d, to.len())?;
        self.limits
            .send
            .check(&me.address.account)
            .map_err(|r| self.rate_limited("messages", r))?;
        self.refuse_banned(me.address.account)?;
        // The recipients are checked before the engine hears of them: it keeps state for every
        // account named, so only accounts that exist (with their current devices) may reach it.
        let own = self.own_account_if_missing(me, &to);
        let listed = to.iter().chain(own.as_ref()).map(|r| (r.account, &r.devices[..]));
        let keys = self.recipient_devices(listed, Some(me.address)).await?;
        let others: Vec<String> = if self.abuse.enabled() {
            to.iter()
                .filter(|r| r.account != me.address.account)
                .map(|r| crate::abuse::name(r.account))
                .collect()
        } else {
            Vec::new()
        };
        if !others.is_empty() {
            let decisions = self.abuse.observe(sirr_abuse::Event::Message {
                t: now_ms(),
                from: crate::abuse::name(me.address.account),
                to: others,
                conversation: d.epoch.map(|e| e.conversation.to_string()).unwrap_or_default(),
                bytes: d.payload.len() as u64,
                media: false,
            });
            self.enforce(decisions);
        }
        self.gate(me.address)?;
        Ok(self.submit(Some(me.address), d, keys))
    }

    /// `SendSealed`, first half: like [`Service::submit_send`], for a sender the server does
    /// not know. Each recipient must be named with its delivery token; a wrong token and an
    /// account without one are refused alike, so the answer does not tell them apart.
    /// Every copy must be paid for with an anonymous token (`sealed_tokens.rs`), checked
    /// after the delivery tokens and spent only once the device lists are found current.
    pub async fn submit_sealed(
        &self,
        to: Vec<sirr_proto::SealedRecipient>,
        tokens: Vec<sirr_proto::SealedToken>,
        d: Delivery,
        ip: IpAddr,
    ) -> Result<Pending, ErrorBody> {
        self.check_message(&d, to.len())?;
        self.limits
            .sealed_send
            .check(&IpKey::from(ip))
            .map_err(|r| self.rate_limited("sealed messages from this address", r))?;
        let mut refused = Vec::new();
        for r in &to {
            let presented = secret_hash_16(&r.access_key);
            let ok = self
                .access_key_hash(r.account)
                .await?
                .is_some_and(|stored| hashes_match(&stored, &presented));
            if !ok {
                refused.push(Recipient {
                    account: r.account,
                    devices: Vec::new(),
                });
            }
        }
        if !refused.is_empty() {
            // The sender may learn which: it presented their tokens.
            return Err(err(
                ErrorCode::Unauthorized,
                "not authorised to deliver sealed messages to these recipients; send identified",
            )
            .with_devices(refused));
        }
        let paid = self.sealed_tokens.check(&tokens, to.len())?;
        let listed = to.iter().map(|r| (r.account, &r.devices[..]));
        let keys = self.recipient_devices(listed, None).await?;
        self.sealed_tokens.spend(paid)?;
        Ok(self.submit(None, d, keys))
    }

    /// The hash of `account`'s delivery token, cached.
    async fn access_key_hash(&self, account: AccountId) -> Result<Option<[u8; 32]>, ErrorBody> {
        if let Some(h) = self.access_keys.get(&account) {
            return Ok(*h);
        }
        let h = self
            .store
            .access_key_hash(account)
            .await
            .map_err(|e| self.store_error(e))?;
        if self.access_keys.len() >= DEVICE_CACHE_CAP {
            self.access_keys.clear();
        }
        self.access_keys.insert(account, h);
        Ok(h)
    }

    /// `SetAccessKey`: this account's new delivery token for sealed sender.
    pub async fn set_access_key(&self, me: Authed, access_key: [u8; 16]) -> Answer {
        let hash = secret_hash_16(&access_key);
        self.store
            .set_access_key_hash(me.address.account, hash)
            .await
            .map_err(|e| self.store_error(e))?;
        self.access_keys.insert(me.address.account, Some(hash));
        Ok(Response::Done)
    }

    /// Size, recipient count and timer of a message, before anything is looked up.
    fn check_message(&self, d: &Delivery, recipients: usize) -> Result<(), ErrorBody> {
        let payload_len = d.payload.len();
        if payload_len > self.config.delivery.max_payload {
            return Err(err(
                ErrorCode::TooLarge,
                format!(
                    "payload of {payload_len} bytes exceeds the limit of {} bytes",
                    self.config.delivery.max_payload
                ),
            ));
        }
        if recipients == 0 || recipients > MAX_RECIPIENT_ACCOUNTS {
            return Err(err(
                ErrorCode::BadRequest,
                format!("a message needs 1 to {MAX_RECIPIENT_ACCOUNTS} recipient accounts"),
            ));
        }
        let max_ttl = u64::from(self.config.retention_days()) * 86_400;
        if let Some(ttl) = d.ttl_secs
            && (ttl == 0 || u64::from(ttl) > max_ttl)
        {
            return Err(err(
                ErrorCode::BadRequest,
                format!("a disappearing message lives 1 to {max_ttl} seconds"),
            ));
        }
        Ok(())
    }

    /// The storage keys of every listed device, if each account's list is exactly its current
    /// devices (less `sender`, which gets no copy of its own message); otherwise
    /// `StaleDevices` with the current lists of the accounts that differ.
    async fn recipient_devices<'a>(
        &self,
        listed: impl Iterator<Item = (AccountId, &'a [DeviceId])>,
        sender: Option<DeviceAddress>,
    ) -> Result<Vec<DeviceKey>, ErrorBody> {
        let mut keys = Vec::new();
        let mut stale = Vec::new();
        let mut seen = HashSet::new();
        for (account, devices) in listed {
            if !seen.insert(account) {
                return Err(err(ErrorCode::BadRequest, "a recipient account is listed twice"));
            }
            let Some(current) = self.devices_of(account).await? else {
                return Err(err(ErrorCode::UnknownRecipient, format!("no account {account}")));
            };
            let expected: Vec<(DeviceId, DeviceKey)> = current
                .iter()
                .copied()
                .filter(|(id, _)| sender != Some(DeviceAddress { account, device: *id }))
                .collect();
            let claimed: HashSet<DeviceId> = devices.iter().copied().collect();
            if claimed.len() != devices.len()
                || claimed.len() != expected.len()
                || expected.iter().any(|(id, _)| !claimed.contains(id))
            {
                stale.push(Recipient {
                    account,
                    devices: expected.iter().map(|(id, _)| *id).collect(),
                });
                continue;
            }
            keys.extend(expected.iter().map(|(_, k)| *k));
        }
        if !stale.is_empty() {
            return Err(err(
                ErrorCode::StaleDevices,
                "recipient device lists changed; resend to the listed devices",
            )
            .with_devices(stale));
        }
        if keys.is_empty() {
            return Err(err(ErrorCode::BadRequest, "no recipient devices"));
        }
        Ok(keys)
    }

    /// Hand the message to storage for `keys`: with its epoch and membership token checked in
    /// commit order when it has one (identified or sealed alike).
    fn submit(&self, from: Option<DeviceAddress>, d: Delivery, keys: Vec<DeviceKey>) -> Pending {
        let server_ts = now_ms();
        let message = NewMessage {
            message_id: d.message_id,
            from,
            server_ts,
            payload: d.payload.into(),
            expires_at: d.ttl_secs.map(|t| server_ts + u64::from(t) * 1000),
            franking: d.franking,
        };
        match d.epoch {
            None => self.store.enqueue(message, keys),
            Some(e) => self.store.enqueue_checked(
                message,
                keys,
                sirr_store::EpochCheck {
                    conversation: e.conversation,
                    epoch: e.epoch,
                    token_hash: e.token.hash(),
                    day: (server_ts / 86_400_000) as u32,
                },
            ),
        }
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
            Err(StoreError::Overloaded) => {
                // Acks never wait for room in the write queue (sends need it); these copies
                // stay queued and are delivered again at the next connection.
                self.metrics.rejected_overload.inc();
                tracing::debug!("ack refused at capacity; the messages will be delivered again");
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
        self.refuse_banned(me.address.account)?;
        let count = phones.len() as u64;
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
        let decisions = self.abuse.observe(sirr_abuse::Event::Lookup {
            t: now_ms(),
            account: crate::abuse::name(me.address.account),
            count,
            found: entries.len() as u64,
        });
        self.enforce(decisions);
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
                sealed_name: r.sealed_name.map(Into::into),
                created_day: r.created_day,
            })
            .collect();
        Ok(Response::Devices { devices })
    }

    /// `SetDeviceName`: store this device's sealed name (opaque; only its size is checked).
    pub async fn set_device_name(&self, me: Authed, sealed: Vec<u8>) -> Answer {
        if sealed.is_empty() || sealed.len() > MAX_SEALED_DEVICE_NAME {
            return Err(err(
                ErrorCode::BadRequest,
                format!("a sealed device name is 1 to {MAX_SEALED_DEVICE_NAME} bytes"),
            ));
        }
        self.store
            .set_device_name(me.key, sealed)
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(Response::Done)
    }

    pub async fn remove_device(&self, me: Authed, device: DeviceId) -> Answer {
        if device != me.address.device {
            self.require_approved(me, "remove other devices").await?;
        }
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
        tracing::info!(account = %self.key.log_tag(&me.address.account), "device removed");
        Ok(Response::Done)
    }

    /// `ExportAccount`: everything held about the account, laid out by the privacy manifest.
    pub async fn export_account(&self, me: Authed) -> Answer {
        self.limits
            .export
            .check(&me.address.account)
            .map_err(|r| self.rate_limited("data exports", r))?;
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

    /// `Consents`: where each optional use of the account's data stands.
    pub async fn consents(&self, me: Authed) -> Answer {
        Ok(Response::Consents {
            region: self.config.privacy.region.clone(),
            consents: self.consent_states(me.address.account).await?,
        })
    }

    /// Every purpose's state for `account`: the latest change in force, unless the region does
    /// not offer the purpose or the consent has lapsed under the region's rules.
    async fn consent_states(&self, account: AccountId) -> Result<Vec<ConsentState>, ErrorBody> {
        let history = self
            .store
            .consents(account)
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(consent_states(self.config.privacy.rules(), &history, now_ms()))
    }

    /// `SetConsent`: record the change; it is in force for the next request that depends on it.
    pub async fn set_consent(&self, me: Authed, purpose: Purpose, granted: bool) -> Answer {
        self.limits
            .consent
            .check(&me.address.account)
            .map_err(|r| self.rate_limited("consent changes", r))?;
        let offered = self
            .config
            .privacy
            .rules()
            .offered
            .iter()
            .any(|n| n == purpose.name());
        if granted && !offered {
            return Err(err(
                ErrorCode::NotOffered,
                format!(
                    "{} is not offered in this server's region ({})",
                    purpose.name(),
                    self.config.privacy.region
                ),
            ));
        }
        let record = ConsentRecord {
            purpose: purpose.name().to_owned(),
            granted,
            at_ms: now_ms(),
        };
        self.store
            .record_consent(me.address.account, record)
            .await
            .map_err(|e| self.store_error(e))?;
        self.consents(me).await
    }

    /// Whether `account` currently allows `purpose`.
    async fn allows(&self, account: AccountId, purpose: Purpose) -> Result<bool, ErrorBody> {
        Ok(self
            .consent_states(account)
            .await?
            .iter()
            .any(|c| c.purpose == purpose && c.granted))
    }

    /// `LastSeen`: `account`'s last connection day, only with its consent and only to someone
    /// holding its current delivery token (derived from the profile key it sends only to the
    /// people it writes to); anyone else learns nothing, not even which rule held.
    pub async fn last_seen(&self, me: Authed, account: AccountId, access_key: Option<[u8; 16]>) -> Answer {
        self.limits
            .lookup
            .check(&me.address.account)
            .map_err(|r| self.rate_limited("lookups", r))?;
        let visible = account == me.address.account || {
            let holds_token = match access_key {
                Some(k) => self
                    .access_key_hash(account)
                    .await?
                    .is_some_and(|stored| hashes_match(&stored, &secret_hash_16(&k))),
                None => false,
            };
            holds_token && self.allows(account, Purpose::LastSeen).await?
        };
        let day = if visible {
            self.store
                .last_seen_day(account)
                .await
                .map_err(|e| self.store_error(e))?
        } else {
            None
        };
        Ok(Response::LastSeen { day })
    }

    /// `DeleteAccount`: everything tied to the account goes; its other sessions end.
    pub async fn delete_account(&self, me: Authed) -> Answer {
        self.require_approved(me, "delete the account").await?;
        let keys = self
            .store
            .delete_account(me.address.account)
            .await
            .map_err(|e| self.store_error(e))?;
        self.devices_changed(me.address.account);
        self.abuse.forget(me.address.account);
        let account = me.address.account;
        self.challenges.retain(|device, _| device.account != account);
        self.access_keys.remove(&me.address.account);
        self.connection_days.remove(&me.address.account);
        for key in keys.into_iter().filter(|k| *k != me.key) {
            self.hub.evict(key);
        }
        tracing::info!(account = %self.key.log_tag(&me.address.account), "account deleted");
        Ok(Response::Done)
    }

    // ----- abuse ------------------------------------------------------------------------------

    /// Refuse anything a banned account asks.
    pub(crate) fn refuse_banned(&self, account: AccountId) -> Result<(), ErrorBody> {
        match self.abuse.standing(account) {
            Some(st) if st.action == sirr_abuse::Action::Ban => Err(banned(&st.reasons)),
            _ => Ok(()),
        }
    }

    /// Refuse a message `account` may not send now: anything when banned; when challenged
    /// (until solved) or throttled (beyond the throttled rate). The error says why and what
    /// the client can do.
    pub(crate) fn gate(&self, me: DeviceAddress) -> Result<(), ErrorBody> {
        let account = me.account;
        let Some(st) = self.abuse.standing(account) else {
            return Ok(());
        };
        let why = st.reasons.join(", ");
        match st.action {
            sirr_abuse::Action::Ban => Err(banned(&st.reasons)),
            sirr_abuse::Action::Challenge if !self.abuse.has_passed(account, now_ms()) => {
                let nonce = *self.challenges.entry(me).or_insert_with(|| {
                    let mut nonce = [0u8; 16];
                    rand::rng().fill(&mut nonce);
                    nonce
                });
                let mut e = err(
                    ErrorCode::ChallengeRequired,
                    format!(
                        "this account shows signs of automated use ({why}); solve the challenge to go on"
                    ),
                );
                e.challenge = Some(sirr_proto::Challenge {
                    nonce,
                    bits: self.config.abuse.challenge_bits,
                });
                Err(e)
            }
            sirr_abuse::Action::Throttle => self.throttled.check(&account).map_err(|r| {
                self.metrics.rejected_rate_limit.inc();
                err(
                    ErrorCode::RateLimited,
                    format!("this account is throttled ({why}): its messages are slowed down"),
                )
                .retry_after(r.millis())
            }),
            _ => Ok(()),
        }
    }

    /// `SolveChallenge`: a correct solution to the nonce this device was handed lets its
    /// account send for `abuse.challenge_pass_secs`.
    pub async fn solve_challenge(&self, me: Authed, nonce: [u8; 16], solution: u64) -> Answer {
        let account = me.address.account;
        let handed = self.challenges.get(&me.address).map(|n| *n);
        if handed != Some(nonce) {
            return Err(err(
                ErrorCode::BadRequest,
                "no such challenge; send again to get one",
            ));
        }
        if !sirr_proto::challenge::check(&nonce, self.config.abuse.challenge_bits, account, solution) {
            return Err(err(ErrorCode::BadRequest, "that does not solve the challenge"));
        }
        self.challenges.remove(&me.address);
        self.metrics.challenges_solved.inc();
        self.abuse
            .pass(account, now_ms() + self.config.abuse.challenge_pass_secs * 1000);
        Ok(Response::Done)
    }

    /// Store what the engine decided and carry out bans: the account's queued messages are
    /// dropped (in the same write) and its sessions end. Not awaited: the request that caused
    /// the decision has already been refused through the standing.
    pub(crate) fn enforce(&self, decisions: Vec<(AccountId, sirr_abuse::Decision)>) {
        for (account, d) in decisions {
            let ban = d.action == sirr_abuse::Action::Ban;
            let tag = self.key.log_tag(&account);
            tracing::info!(account = %tag, action = ?d.action, reasons = ?d.reasons, "abuse decision");
            let record = sirr_store::AbuseRecord {
                id: 0,
                at_ms: d.t,
                action: stored_action(d.action),
                reasons: d.reasons,
                by: "engine".into(),
            };
            let (store, hub) = (self.store.clone(), self.hub.clone());
            tokio::spawn(async move {
                match store.record_abuse(account, record, ban).await {
                    Ok(n) if ban => {
                        tracing::info!(account = %tag, dropped = n, "banned; queued messages dropped")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not store an abuse decision"),
                }
                if ban && let Ok(devices) = store.devices(account).await {
                    for d in devices {
                        hub.evict(d.key);
                    }
                }
            });
        }
    }

    /// Load every account's stored standing (at start-up), then follow operators' reviews
    /// (`sirrd admin abuse unban`) at each housekeeping run. A decision that cannot be read (an
    /// unknown action) is an error and changes nothing: start-up refuses to go on, a later run
    /// keeps every standing as it was, so a corrupt row never lifts a ban.
    pub async fn follow_abuse_reviews(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let after = self.abuse_seen.load(Ordering::Acquire);
        let latest = self.store.latest_abuse(after).await?;
        for (account, r) in latest {
            self.abuse_seen.fetch_max(r.id, Ordering::AcqRel);
            let action = engine_action(r.action);
            if after > 0 && r.by == "engine" {
                continue; // already applied when it was decided
            }
            if r.by == "operator" && action == sirr_abuse::Action::Allow {
                self.abuse.unban(account);
            } else {
                self.abuse.apply(account, action, r.reasons);
            }
        }
        Ok(())
    }

    /// `Appeal`: a banned device asks for review, proving it is the account's with its
    /// credential (which no longer signs it in).
    pub async fn appeal(
        &self,
        account: AccountId,
        device: DeviceId,
        secret: &Secret,
        text: String,
        ip: IpAddr,
    ) -> Answer {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 2_000 {
            return Err(err(ErrorCode::BadRequest, "an appeal is 1 to 2000 characters"));
        }
        let record = self
            .store
            .device(DeviceAddress { account, device })
            .await
            .map_err(|e| self.store_error(e))?;
        let presented = secret_hash(secret);
        if !record.is_some_and(|r| hashes_match(&r.secret_hash, &presented)) {
            if let Err(r) = self.limits.registration_per_ip.check(&IpKey::from(ip)) {
                return Err(self.rate_limited("failed logins from this address", r));
            }
            return Err(err(ErrorCode::Unauthorized, "unknown device or wrong credential"));
        }
        if self
            .abuse
            .standing(account)
            .is_none_or(|s| s.action != sirr_abuse::Action::Ban)
        {
            return Err(err(ErrorCode::BadRequest, "this account is not banned"));
        }
        self.limits
            .appeal
            .check(&account)
            .map_err(|r| self.rate_limited("appeals", r))?;
        let kept = self.config.limits.appeals_kept;
        let stored = self
            .store
            .record_appeal(
                account,
                sirr_store::Appeal {
                    at_ms: now_ms(),
                    text: text.to_owned(),
                },
                kept,
            )
            .await
            .map_err(|e| self.store_error(e))?;
        if !stored {
            return Err(err(
                ErrorCode::RateLimited,
                format!("this account already has {kept} appeals awaiting review; nothing was stored"),
            ));
        }
        tracing::info!(account = %self.key.log_tag(&account), "ban appealed");
        Ok(Response::Done)
    }

    /// `Block`: a signal about `peer` for the engine (the server keeps no block list). Rate
    /// limited, and only about an account that exists: the engine keeps state per account named.
    pub async fn block(&self, me: Authed, peer: AccountId) -> Answer {
        self.limits
            .block
            .check(&me.address.account)
            .map_err(|r| self.rate_limited("blocks", r))?;
        self.existing_peer(me, peer).await?;
        let decisions = self.abuse.observe(sirr_abuse::Event::Block {
            t: now_ms(),
            account: crate::abuse::name(me.address.account),
            peer: crate::abuse::name(peer),
        });
        self.enforce(decisions);
        Ok(Response::Done)
    }

    /// Refuse a block or report about oneself or about an account that does not exist.
    pub(crate) async fn existing_peer(&self, me: Authed, peer: AccountId) -> Result<(), ErrorBody> {
        if peer == me.address.account {
            return Err(err(
                ErrorCode::BadRequest,
                "an account cannot block or report itself",
            ));
        }
        if self.devices_of(peer).await?.is_none() {
            return Err(err(ErrorCode::UnknownRecipient, format!("no account {peer}")));
        }
        Ok(())
    }

    /// Periodic upkeep: expire old messages and codes, forget idle rate-limit state.
    pub async fn housekeeping(&self) {
        let retention = Duration::from_secs(u64::from(self.config.retention_days()) * 86_400);
        let now = now_ms();
        let cutoff = now.saturating_sub(retention.as_millis() as u64);
        self.purge_reports().await;
        match self.store.expire(cutoff, now).await {
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
        let idle = today().saturating_sub(self.config.delivery.conversation_idle_days);
        match self.store.purge_conversations(idle).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(forgotten = n, "forgot abandoned conversations"),
            Err(e) => tracing::warn!(error = %e, "conversation purge failed"),
        }
        self.expire_links();
        self.limits.forget_idle();
        self.sealed_tokens.forget_idle();
        if let Err(e) = self.follow_abuse_reviews().await {
            tracing::error!(error = %e, "could not read abuse decisions; standings kept as they were");
        }
        if let Ok(n) = self.store.queued_total().await {
            self.metrics.queued_messages.set(n as i64);
        }
    }
}

/// The refusal a banned account gets: why, and what it can do.
pub fn banned(reasons: &[String]) -> ErrorBody {
    err(
        ErrorCode::Banned,
        format!(
            "this account is banned for bulk or automated messaging (signals: {}); if this is a mistake, appeal with `sirr account appeal TEXT`",
            reasons.join(", ")
        ),
    )
}

/// The engine's action as storage records it (the two enums are kept apart because
/// `sirr-store` and `sirr-abuse` do not know each other).
pub fn stored_action(a: sirr_abuse::Action) -> sirr_store::AbuseAction {
    match a {
        sirr_abuse::Action::Allow => sirr_store::AbuseAction::Allow,
        sirr_abuse::Action::Throttle => sirr_store::AbuseAction::Throttle,
        sirr_abuse::Action::Challenge => sirr_store::AbuseAction::Challenge,
        sirr_abuse::Action::Ban => sirr_store::AbuseAction::Ban,
    }
}

/// A stored action as the engine's (total: storage refuses unknown names when it reads them).
pub fn engine_action(a: sirr_store::AbuseAction) -> sirr_abuse::Action {
    match a {
        sirr_store::AbuseAction::Allow => sirr_abuse::Action::Allow,
        sirr_store::AbuseAction::Throttle => sirr_abuse::Action::Throttle,
        sirr_store::AbuseAction::Challenge => sirr_abuse::Action::Challenge,
        sirr_store::AbuseAction::Ban => sirr_abuse::Action::Ban,
    }
}

/// Where each purpose stands at `now_ms`, given an account's consent history (oldest first)
/// and the region's rules: the latest change is in force, unless the region does not offer the
/// purpose, or a granted consent is older than the region lets consents last.
pub fn consent_states(rules: &RegionRules, history: &[ConsentRecord], now_ms: u64) -> Vec<ConsentState> {
    let lapse_ms = u64::from(rules.consent_lapses_after_days) * 86_400_000;
    let lapsed = |at: u64| lapse_ms > 0 && now_ms.saturating_sub(at) >= lapse_ms;
    Purpose::ALL
        .into_iter()
        .map(|purpose| {
            let offered = rules.offered.iter().any(|n| n == purpose.name());
            let last = history.iter().rev().find(|c| c.purpose == purpose.name());
            ConsentState {
                purpose,
                granted: offered && last.is_some_and(|c| c.granted && !lapsed(c.at_ms)),
                changed_at_ms: last.map(|c| c.at_ms),
                offered,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(purpose: Purpose, granted: bool, at_ms: u64) -> ConsentRecord {
        ConsentRecord {
            purpose: purpose.name().into(),
            granted,
            at_ms,
        }
    }

    fn granted(states: &[ConsentState], p: Purpose) -> bool {
        states.iter().find(|c| c.purpose == p).unwrap().granted
    }

    #[test]
    fn consents_start_off_follow_the_latest_change_and_lapse_by_region() {
        let regions = crate::config::PrivacyConfig::default().regions;
        let (default, eu) = (&regions["default"], &regions["eu"]);
        let none = consent_states(default, &[], 0);
        assert!(
            none.iter()
                .all(|c| !c.granted && c.changed_at_ms.is_none() && c.offered)
        );

        let day = 86_400_000;
        let history = [
            change(Purpose::LastSeen, true, day),
            change(Purpose::ReadReceipts, true, day),
            change(Purpose::ReadReceipts, false, 2 * day),
        ];
        let now = consent_states(default, &history, 3 * day);
        assert!(granted(&now, Purpose::LastSeen));
        assert!(
            !granted(&now, Purpose::ReadReceipts),
            "the withdrawal is in force"
        );
        // Under the default rules a consent holds; under the EU's it lapses after a year.
        let later = 400 * day;
        assert!(granted(
            &consent_states(default, &history, later),
            Purpose::LastSeen
        ));
        assert!(granted(
            &consent_states(eu, &history, 300 * day),
            Purpose::LastSeen
        ));
        let lapsed = consent_states(eu, &history, later);
        assert!(!granted(&lapsed, Purpose::LastSeen));
        assert_eq!(
            lapsed
                .iter()
                .find(|c| c.purpose == Purpose::LastSeen)
                .unwrap()
                .changed_at_ms,
            Some(day)
        );
        // A purpose the region does not offer is off whatever was recorded.
        let mut strict = default.clone();
        strict.offered.retain(|n| n != Purpose::LastSeen.name());
        let s = consent_states(&strict, &history, 3 * day);
        let ls = s.iter().find(|c| c.purpose == Purpose::LastSeen).unwrap();
        assert!(!ls.offered && !ls.granted);
    }
}

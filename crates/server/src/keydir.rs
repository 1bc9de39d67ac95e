//! The end-to-end side of the service: the key directory (KeyPackages and signed device lists)
//! and the order of each conversation's commits.
//!
//! The server checks what it can without reading content: a KeyPackage must carry a valid
//! signature and the uploading device's own credential (so no device can publish keys in
//! another's name), commits must name the conversation's current epoch, and only member accounts
//! may commit or send in a conversation. Device lists are opaque here: clients verify them with
//! the account key they pinned.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sirr_proto::{
    AccountId, ClaimedKeyPackage, ConversationId, DeviceId, ErrorBody, ErrorCode, MembershipToken, Outgoing,
    Recipient, Response,
};
use sirr_store::{DeviceKey, NewCommit, NewKeyPackage, NewMessage, StoreError};

use crate::service::{Answer, Authed, MAX_RECIPIENT_ACCOUNTS, Service, err, now_ms};

/// Largest KeyPackage accepted (a Sirr KeyPackage is about 300 bytes).
pub const MAX_KEY_PACKAGE: usize = 8 * 1024;
/// Largest signed device list accepted.
pub const MAX_DEVICE_LIST: usize = 16 * 1024;

/// A commit submitted to storage, awaiting its durable outcome (the new epoch).
pub type PendingCommit = Pin<Box<dyn Future<Output = Result<u64, StoreError>> + Send>>;

impl Service {
    /// Map the refusals specific to conversations; everything else as usual.
    pub fn e2e_error(&self, e: StoreError) -> ErrorBody {
        match e {
            StoreError::StaleEpoch { current } => {
                let mut b = err(
                    ErrorCode::StaleEpoch,
                    format!("the conversation is at epoch {current}; process what you missed and retry"),
                );
                b.epoch = Some(current);
                b
            }
            StoreError::NotMember => err(
                ErrorCode::NotMember,
                "your account is not a member of that conversation",
            ),
            StoreError::StaleVersion { offered, stored } => err(
                ErrorCode::BadRequest,
                format!("stale device list version {offered}: the server has version {stored}"),
            ),
            other => self.store_error(other),
        }
    }

    /// `UploadKeyPackages`: every package is checked before any is stored.
    pub async fn upload_key_packages(
        &self,
        me: Authed,
        one_time: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    ) -> Answer {
        let max = self.config.limits.key_packages_per_device;
        if one_time.len() > max {
            return Err(err(
                ErrorCode::BadRequest,
                format!("at most {max} KeyPackages per upload"),
            ));
        }
        if one_time.is_empty() && last_resort.is_none() {
            return Err(err(ErrorCode::BadRequest, "no KeyPackage in the upload"));
        }
        let all: Vec<(bool, Vec<u8>)> = one_time
            .into_iter()
            .map(|b| (false, b))
            .chain(last_resort.map(|b| (true, b)))
            .collect();
        if let Some(i) = all.iter().position(|(_, b)| b.len() > MAX_KEY_PACKAGE) {
            return Err(err(
                ErrorCode::BadKeyPackage,
                format!("KeyPackage {i} exceeds {MAX_KEY_PACKAGE} bytes"),
            ));
        }
        let address = me.address;
        // Signature checks cost ~0.1 ms each: keep them off the async workers.
        let checked = tokio::task::spawn_blocking(move || {
            let store = sirr_crypto::MlsStore::new();
            let now = now_ms() / 1000;
            let mut out = Vec::with_capacity(all.len());
            for (i, (last, bytes)) in all.into_iter().enumerate() {
                let kp = sirr_crypto::KeyPackages::validate(&store, &bytes, address, now)
                    .map_err(|e| (i, e.to_string()))?;
                let expires_at = kp.not_after().saturating_mul(1000);
                out.push((last, NewKeyPackage { bytes, expires_at }));
            }
            Ok::<_, (usize, String)>(out)
        })
        .await
        .map_err(|_| err(ErrorCode::Internal, "internal error; try again"))?
        .map_err(|(i, why)| {
            err(
                ErrorCode::BadKeyPackage,
                format!("KeyPackage {i} was refused, nothing was stored: {why}"),
            )
        })?;
        let mut one_time = Vec::with_capacity(checked.len());
        let mut last_resort = None;
        for (last, kp) in checked {
            if last {
                last_resort = Some(kp);
            } else {
                one_time.push(kp);
            }
        }
        let stock = self
            .store
            .add_key_packages(me.key, one_time, last_resort, max)
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(Response::KeyStock { one_time: stock })
    }

    /// One-time KeyPackages a device has left, for `Welcome`.
    pub async fn key_package_stock(&self, device: DeviceKey) -> Result<u32, ErrorBody> {
        self.store
            .key_package_stock(device, now_ms())
            .await
            .map_err(|e| self.store_error(e))
    }

    /// `ClaimKeyPackages`: one package per device, consumed; rate-limited per claimer.
    pub async fn claim_key_packages(&self, me: Authed, account: AccountId, devices: Vec<DeviceId>) -> Answer {
        let Some(current) = self.devices_of(account).await? else {
            return Err(err(ErrorCode::UnknownRecipient, format!("no account {account}")));
        };
        let wanted: Vec<(DeviceId, DeviceKey)> = current
            .iter()
            .copied()
            .filter(|(id, _)| devices.is_empty() || devices.contains(id))
            .collect();
        self.limits
            .claim
            .check_n(&me.address.account, wanted.len().max(1) as u32)
            .map_err(|r| self.rate_limited("key claims", r))?;
        let packages = self
            .store
            .claim_key_packages(wanted, now_ms())
            .await
            .map_err(|e| self.store_error(e))?
            .into_iter()
            .map(|(device, key_package)| ClaimedKeyPackage { device, key_package })
            .collect();
        let device_list = self
            .store
            .device_list(account)
            .await
            .map_err(|e| self.store_error(e))?
            .map(Into::into);
        Ok(Response::KeyPackages {
            packages,
            device_list,
        })
    }

    /// `PublishDeviceList`: stored if newer, and only if it verifies under the account key of
    /// the list stored before (see `approval.rs`).
    pub async fn publish_device_list(&self, me: Authed, version: u64, list: Vec<u8>) -> Answer {
        if list.is_empty() || list.len() > MAX_DEVICE_LIST {
            return Err(err(
                ErrorCode::BadRequest,
                format!("a device list has 1 to {MAX_DEVICE_LIST} bytes"),
            ));
        }
        self.check_published_list(me, &list).await?;
        self.store
            .put_device_list(me.address.account, version, list)
            .await
            .map_err(|e| self.e2e_error(e))?;
        Ok(Response::Done)
    }

    /// The storage handles of the listed devices that exist (others are skipped), minus the
    /// sender's own device.
    async fn existing_devices(&self, me: Authed, to: &[Recipient]) -> Result<Vec<DeviceKey>, ErrorBody> {
        if to.len() > MAX_RECIPIENT_ACCOUNTS + 1 {
            return Err(err(
                ErrorCode::BadRequest,
                format!("at most {MAX_RECIPIENT_ACCOUNTS} recipient accounts"),
            ));
        }
        let mut keys = Vec::new();
        for r in to {
            let Some(current) = self.devices_of(r.account).await? else {
                continue;
            };
            keys.extend(
                current
                    .iter()
                    .filter_map(|(id, key)| (r.devices.contains(id) && *key != me.key).then_some(*key)),
            );
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// `Commit`, first half: check and submit; the future resolves with the new epoch.
    /// Membership is proven by `token` (checked by storage, in commit order); the server is
    /// never told who the members are.
    #[allow(clippy::too_many_arguments)]
    pub async fn submit_commit(
        &self,
        me: Authed,
        conversation: ConversationId,
        epoch: u64,
        token: Option<MembershipToken>,
        next: [u8; 32],
        commit: Outgoing,
        welcome: Option<Outgoing>,
    ) -> Result<PendingCommit, ErrorBody> {
        if token.is_none() && epoch != 0 {
            return Err(err(
                ErrorCode::NotMember,
                "a commit needs the membership token of the epoch it changes",
            ));
        }
        let max = self.config.delivery.max_payload;
        for o in std::iter::once(&commit).chain(welcome.as_ref()) {
            if o.payload.len() > max {
                return Err(err(
                    ErrorCode::TooLarge,
                    format!(
                        "payload of {} bytes exceeds the limit of {max} bytes",
                        o.payload.len()
                    ),
                ));
            }
            if o.to.len() > MAX_RECIPIENT_ACCOUNTS + 1 {
                return Err(err(
                    ErrorCode::BadRequest,
                    format!(
                        "a conversation has at most {} member accounts",
                        MAX_RECIPIENT_ACCOUNTS + 1
                    ),
                ));
            }
        }
        self.limits
            .send
            .check(&me.address.account)
            .map_err(|r| self.rate_limited("messages", r))?;
        if let Some(w) = welcome.as_ref().filter(|_| self.abuse.enabled()) {
            self.observe_additions(me, conversation, epoch, &commit, w)
                .await?;
        }
        self.refuse_banned(me.address.account)?;
        let server_ts = now_ms();
        let mut messages = Vec::with_capacity(2);
        for o in std::iter::once(commit).chain(welcome) {
            let keys = self.existing_devices(me, &o.to).await?;
            if keys.is_empty() {
                continue;
            }
            messages.push((
                NewMessage {
                    message_id: o.message_id,
                    from: Some(me.address),
                    server_ts,
                    payload: Arc::from(o.payload),
                    expires_at: None,
                    franking: None,
                },
                keys,
            ));
        }
        Ok(self.store.commit(NewCommit {
            conversation,
            epoch,
            token_hash: token.map(|t| t.hash()),
            next_hash: next,
            day: (server_ts / 86_400_000) as u32,
            messages,
        }))
    }

    /// Tell the abuse engine about a group's creation or the accounts added to it. What the
    /// commit itself shows, in memory only: the accounts the Welcome goes to that none of the
    /// commit's recipients belong to are new to the conversation. A one-to-one chat (one
    /// other account at creation) is not a group. Only accounts that exist are named: the
    /// engine keeps state for every account it hears of, so made-up ids must not reach it.
    async fn observe_additions(
        &self,
        me: Authed,
        conversation: ConversationId,
        epoch: u64,
        commit: &Outgoing,
        welcome: &Outgoing,
    ) -> Result<(), ErrorBody> {
        let mut named: Vec<AccountId> = welcome
            .to
            .iter()
            .map(|r| r.account)
            .filter(|a| *a != me.address.account && !commit.to.iter().any(|r| r.account == *a))
            .collect();
        named.sort();
        named.dedup();
        let mut added = Vec::with_capacity(named.len());
        for a in named {
            if self.devices_of(a).await?.is_some() {
                added.push(a);
            }
        }
        if added.is_empty() || (epoch == 0 && added.len() < 2) {
            return Ok(());
        }
        let event = sirr_abuse::Event::group(
            epoch == 0,
            now_ms(),
            crate::abuse::name(me.address.account),
            conversation.to_string(),
            added.into_iter().map(crate::abuse::name).collect(),
        );
        let decisions = self.abuse.observe(event);
        self.enforce(decisions);
        Ok(())
    }

    /// `Commit`, second half: the answer once storage has ordered it.
    pub async fn finish_commit(&self, pending: PendingCommit) -> Answer {
        let epoch = pending.await.map_err(|e| self.e2e_error(e))?;
        self.metrics.commits.inc();
        Ok(Response::Committed {
            epoch,
            server_ts: now_ms(),
        })
    }
}

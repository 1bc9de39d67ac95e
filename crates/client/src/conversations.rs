//! End-to-end encrypted conversations: MLS groups whose leaves are devices.
//!
//! A one-to-one chat is the group of both accounts' devices; it has a random id like a group
//! (see [`Client::open_direct`]), so no id reveals which accounts are in it. The server orders every commit of
//! a conversation (one per epoch) and refuses messages from a stale epoch, so the flow of each
//! operation is: stage locally, ask the server, then merge (accepted) or discard and catch up
//! (refused), and retry.
//!
//! The server's device lists are the truth about which devices an account has; when they differ
//! from a conversation's leaves the server refuses a send with `StaleDevices`, and
//! [`Client::reconcile`] adds the missing devices and removes the departed ones before the retry.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::RngCore;
use sirr_crypto::{
    Conversation, Incoming, KeyPackages, ProfileKey, ProposalKind, ValidatedKeyPackage, franking,
};
use sirr_proto::content::{Body, Content, Member, Sealed};
use sirr_proto::{
    AccountId, ConversationId, DeviceAddress, DeviceId, Envelope, EpochRef, ErrorCode, MessageId, Outgoing,
    Phone, Recipient, Request, Response, SealedRecipient,
};

use crate::error::{ClientError, Result};
use crate::receive::Changes;
use crate::state::{self, ConversationRow, StoredMessage};
use crate::{Client, Connection, unexpected};

/// How many one-time KeyPackages to keep at the server; refill below [`KEY_PACKAGES_LOW`].
pub(crate) const KEY_PACKAGE_BATCH: usize = 50;
pub(crate) const KEY_PACKAGES_LOW: u32 = 10;
/// KeyPackage lifetime.
const KEY_PACKAGE_LIFETIME_SECS: u64 = 30 * 86_400;
/// How many times an operation is retried after the server said the conversation moved on.
const ATTEMPTS: usize = 6;
/// How long to wait for the queue while catching up after a refusal.
const CATCH_UP: Duration = Duration::from_millis(300);

fn random_id() -> MessageId {
    let mut id = [0u8; 16];
    rand::rng().fill_bytes(&mut id);
    MessageId(id)
}

/// Group devices by account, as `Send` and `Commit` want them.
/// Frank `content` for `conversation`: a fresh franking key, the commitment to the bytes a
/// recipient will recompute ([`Content::committed`]) under this device's account, and this
/// device's signature over it. Returns the content to seal and the commitment to send.
fn frank(
    mut content: Content,
    identity: &sirr_crypto::DeviceIdentity,
    conversation: ConversationId,
) -> (Content, [u8; 32]) {
    let key = franking::franking_key(&mut rand::rng());
    content.franking_key = Some(key);
    content.franking_sig = None;
    let commitment = franking::commit(&key, identity.account(), &content.committed());
    content.franking_sig = Some(franking::sign(identity, &commitment, conversation));
    (content, commitment)
}

/// Check a received message's franking (pure): the envelope carries a commitment and the
/// server's tag, the content its key and signature, the commitment opens to the content for
/// the MLS-authenticated sender account, and the signature is the sending device's (its MLS
/// signature key `sender_key`) for this conversation. Returns what a report of it reveals, or
/// why it is refused.
fn check_franking(
    env: &Envelope,
    content: &Content,
    sender: DeviceAddress,
    sender_key: Option<[u8; 32]>,
    conversation: ConversationId,
) -> std::result::Result<sirr_proto::ReportedMessage, &'static str> {
    let (Some(franking), Some(key), Some(signature)) =
        (env.franking, content.franking_key, content.franking_sig)
    else {
        return Err("it carries no franking, so it could not be reported");
    };
    let plaintext = content.committed();
    if !franking::opens(&franking.commitment, &key, sender.account, &plaintext) {
        return Err("its franking does not match its content");
    }
    let signed =
        sender_key.is_some_and(|k| franking::signed_by(&k, &franking.commitment, conversation, &signature));
    if !signed {
        return Err("its franking is not signed by the device that sent it");
    }
    Ok(sirr_proto::ReportedMessage {
        message_id: env.message_id,
        server_ts: env.server_ts,
        plaintext,
        franking_key: key,
        franking,
        sender_device: sender.device,
        sealed: env.from.is_none(),
        conversation,
        signature,
    })
}

fn recipients(devices: impl IntoIterator<Item = DeviceAddress>) -> Vec<Recipient> {
    let mut by_account: BTreeMap<AccountId, Vec<DeviceId>> = BTreeMap::new();
    for d in devices {
        by_account.entry(d.account).or_default().push(d.device);
    }
    by_account
        .into_iter()
        .map(|(account, mut devices)| {
            devices.sort();
            Recipient { account, devices }
        })
        .collect()
}

/// What [`Client::process`] learnt from one envelope, beyond what it stored.
#[derive(Default)]
pub(crate) struct Followups {
    /// Conversations with proposals (someone leaving) that this device should commit.
    pub commit_proposals: BTreeSet<ConversationId>,
    /// Conversations this device should leave because another device of its account left.
    pub leave: BTreeSet<ConversationId>,
}

impl Client {
    fn me(&self) -> DeviceAddress {
        DeviceAddress {
            account: self.creds.account,
            device: self.creds.device,
        }
    }

    /// Generate and upload KeyPackages if the server's stock is low. The private halves are
    /// saved before the upload, so a Welcome made for any uploaded package can be opened.
    pub(crate) async fn refill_key_packages(&mut self, stock: u32) -> Result<()> {
        if stock >= KEY_PACKAGES_LOW {
            return Ok(());
        }
        let batch = KeyPackages::generate(
            &self.keys.store,
            &self.keys.identity,
            KEY_PACKAGE_BATCH,
            self.now_ms() / 1000,
            KEY_PACKAGE_LIFETIME_SECS,
        )?;
        self.keys.save(&self.state).await?;
        let r = self
            .conn()?
            .request(Request::UploadKeyPackages {
                one_time: batch.one_time.into_iter().map(Into::into).collect(),
                last_resort: Some(batch.last_resort.into()),
            })
            .await?;
        match r {
            Response::KeyStock { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Claim and check one KeyPackage per named device of `account` (all of them if empty):
    /// each must be valid and belong to a device the account approved.
    pub(crate) async fn claim(
        &self,
        account: AccountId,
        devices: Vec<DeviceId>,
    ) -> Result<Vec<ValidatedKeyPackage>> {
        let wanted = devices.len();
        let r = self
            .conn()?
            .request(Request::ClaimKeyPackages { account, devices })
            .await?;
        let Response::KeyPackages {
            packages,
            device_list,
        } = r
        else {
            return Err(unexpected(r));
        };
        if wanted > 0 && packages.len() < wanted {
            return Err(ClientError::Invalid(format!(
                "account {account} has devices without keys at the server; try again later"
            )));
        }
        let mut out = Vec::with_capacity(packages.len());
        for p in packages {
            let address = DeviceAddress {
                account,
                device: p.device,
            };
            let kp = sirr_crypto::KeyPackages::validate(
                &self.keys.store,
                &p.key_package,
                address,
                self.now_ms() / 1000,
            )
            .map_err(|e| {
                ClientError::Invalid(format!("device {address} offered an invalid key package: {e}"))
            })?;
            out.push(kp);
        }
        self.check_approved(account, device_list.as_deref().map(|b| &b[..]), &out)
            .await?;
        Ok(out)
    }

    /// Ask the server to order a staged commit; merge it if accepted. Returns false if another
    /// commit won the epoch (the local one is discarded; catch up and retry).
    async fn order_commit(
        &mut self,
        conv: &mut Conversation,
        commit: Vec<u8>,
        commit_to: Vec<Recipient>,
        welcome: Option<(Vec<u8>, Vec<Recipient>)>,
    ) -> Result<bool> {
        let id = ConversationId(conv.id());
        let next = conv
            .pending_membership_token()
            .ok_or_else(|| ClientError::Protocol("no staged commit to order".into()))?;
        self.keys.save(&self.state).await?;
        let r = self
            .conn()?
            .request(Request::Commit {
                conversation: id,
                epoch: conv.epoch(),
                // Epoch 0 is this device's own, before the server has seen the conversation.
                token: (conv.epoch() > 0).then(|| conv.membership_token()),
                next: next.hash(),
                commit: Outgoing {
                    message_id: random_id(),
                    to: commit_to,
                    payload: Sealed::Mls {
                        conversation: id,
                        message: commit,
                    }
                    .encode(),
                },
                welcome: welcome.map(|(welcome, to)| {
                    Box::new(Outgoing {
                        message_id: random_id(),
                        to,
                        payload: Sealed::Welcome {
                            conversation: id,
                            welcome,
                        }
                        .encode(),
                    })
                }),
            })
            .await;
        match r {
            Ok(Response::Committed { .. }) => {
                conv.merge_pending_commit(&self.keys.store)?;
                self.keys.save(&self.state).await?;
                Ok(true)
            }
            Ok(other) => Err(unexpected(other)),
            Err(ClientError::Server(e)) if e.code == ErrorCode::StaleEpoch => {
                conv.clear_pending_commit(&self.keys.store)?;
                self.keys.save(&self.state).await?;
                Ok(false)
            }
            Err(e) => {
                // Unknown outcome (e.g. the connection broke). Discarding is safe if the server
                // refused; if it accepted, the next send is refused as stale and catching up
                // cannot decrypt our own commit, which is the one known gap (see ARCHITECTURE).
                conv.clear_pending_commit(&self.keys.store)?;
                self.keys.save(&self.state).await?;
                Err(e)
            }
        }
    }

    /// Create conversation `id` with the devices of `others` and this account's other devices,
    /// unless it already exists here. Returns once the server has ordered the creating commit,
    /// or once this device has joined the conversation another device created first.
    pub(crate) async fn establish(
        &mut self,
        id: ConversationId,
        name: Option<String>,
        others: Vec<Member>,
    ) -> Result<()> {
        for _ in 0..ATTEMPTS {
            if let Some(c) = Conversation::load(&self.keys.store, id.0)? {
                if c.is_active() && c.epoch() > 0 {
                    return Ok(());
                }
                // A local attempt that never got ordered, or a conversation we were removed from.
                c.delete(&self.keys.store)?;
                self.keys.save(&self.state).await?;
            }
            let me = self.me();
            let mut kps = Vec::new();
            for m in &others {
                let claimed = self.claim(m.account, Vec::new()).await?;
                if claimed.is_empty() {
                    return Err(ClientError::Invalid(format!(
                        "{} has no device keys at the server yet; they need to connect once",
                        m.phone
                    )));
                }
                kps.extend(claimed);
            }
            // This account's other devices (the server's StaleDevices answer corrects a stale list).
            let own: Vec<DeviceId> = self
                .state
                .own_devices()
                .await?
                .into_iter()
                .filter(|d| *d != me.device)
                .collect();
            if !own.is_empty() {
                kps.extend(self.claim(me.account, own).await?);
            }
            let mut conv = Conversation::create(&self.keys.store, &self.keys.identity, id.0)?;
            let added = conv.add_members(&self.keys.store, &self.keys.identity, &kps)?;
            let welcome_to = recipients(kps.iter().map(|k| k.address()));
            if self
                .order_commit(
                    &mut conv,
                    added.commit,
                    Vec::new(),
                    Some((added.welcome, welcome_to)),
                )
                .await?
            {
                let mut members = others;
                members.push(Member {
                    phone: self.creds.phone.clone(),
                    account: me.account,
                });
                let row = ConversationRow {
                    id,
                    peer: if name.is_none() {
                        members
                            .iter()
                            .find(|m| m.account != me.account)
                            .map(|m| m.phone.to_string())
                    } else {
                        None
                    },
                    name: name.clone(),
                    members: members.clone(),
                    active: true,
                };
                self.state.save_conversation(&row).await?;
                self.send_content(id, Body::Info { name, members }).await?;
                return Ok(());
            }
            // Someone created it first: drop ours, take their Welcome from the queue.
            if let Some(c) = Conversation::load(&self.keys.store, id.0)? {
                c.delete(&self.keys.store)?;
                self.keys.save(&self.state).await?;
            }
            Box::pin(self.receive(CATCH_UP)).await?;
        }
        Err(ClientError::Protocol(
            "the conversation kept changing; try again".into(),
        ))
    }

    fn load_active(&self, id: ConversationId) -> Result<Conversation> {
        match Conversation::load(&self.keys.store, id.0)? {
            Some(c) if c.is_active() => Ok(c),
            _ => Err(ClientError::Invalid(
                "this device is not (or no longer) a member of that conversation".into(),
            )),
        }
    }

    /// Encrypt `body` for every member device of conversation `id` and send it; retries after
    /// catching up with commits, and after bringing the members in line with the server's
    /// device lists. Returns the message id once the server has stored it for every device.
    pub(crate) async fn send_content(&mut self, id: ConversationId, body: Body) -> Result<MessageId> {
        let message_id = random_id();
        for _ in 0..ATTEMPTS {
            let mut conv = self.load_active(id)?;
            if conv.has_pending_commit() {
                conv.clear_pending_commit(&self.keys.store)?;
            }
            // Only messages people write disappear; control messages (receipts, timer, details) do not.
            let timer = match body {
                Body::Text(_) => self.state.timer(id).await?,
                _ => None,
            };
            // What this account writes carries its profile key, so the people it writes to (in
            // any conversation) may write to it sealed and, with its consent, see its last-seen
            // day. Only what the user writes: receipts and conversation details can go out by
            // themselves (say, to a stranger's newly linked device) and must not hand the key
            // to someone the user never answered.
            let content = Content {
                from: self.creds.phone.clone(),
                sent_at: self.now_ms(),
                body: body.clone(),
                disappears_after_secs: timer,
                profile_key: matches!(body, Body::Text(_))
                    .then(|| self.keys.profile_key.as_ref().map(|p| p.0))
                    .flatten(),
                franking_key: None,
                franking_sig: None,
            };
            let (content, commitment) = frank(content, &self.keys.identity, id);
            let plaintext = content.seal();
            let ciphertext = conv.encrypt(&self.keys.store, &self.keys.identity, &plaintext)?;
            // The sender ratchet moved: persist before the ciphertext leaves the device.
            self.keys.save(&self.state).await?;
            let me = self.me();
            let to = recipients(conv.members().into_iter().filter(|d| *d != me));
            let outgoing = Outgoing {
                message_id,
                to,
                payload: Sealed::Mls {
                    conversation: id,
                    message: ciphertext,
                }
                .encode(),
            };
            let epoch = EpochRef {
                conversation: id,
                epoch: conv.epoch(),
                token: conv.membership_token(),
            };
            let r = self.deliver(outgoing, epoch, timer, Some(commitment)).await;
            match r {
                Ok(Response::Sent { .. }) => {
                    if let Body::Text(text) = &content.body {
                        let row = self.state.conversation(id).await?;
                        let to = row
                            .as_ref()
                            .and_then(|r| r.peer.clone().or_else(|| r.name.clone()))
                            .unwrap_or_default();
                        let stored = StoredMessage {
                            message_id: String::new(),
                            conversation: String::new(),
                            direction: "out".into(),
                            from: self.creds.phone.to_string(),
                            to,
                            from_device: self.creds.device.0,
                            text: text.clone(),
                            group: None,
                            sent_at: content.sent_at,
                            received_at: self.now_ms(),
                            verified: true,
                            expires_at: timer.map(|t| self.now_ms() + u64::from(t) * 1000),
                        };
                        self.state.store_messages(&[(message_id, stored, id.0)]).await?;
                        self.state.mark_printed(&message_id).await?;
                    }
                    return Ok(message_id);
                }
                Ok(other) => return Err(unexpected(other)),
                Err(ClientError::Server(e)) if e.code == ErrorCode::StaleEpoch => {
                    Box::pin(self.receive(CATCH_UP)).await?;
                }
                Err(ClientError::Server(e)) if e.code == ErrorCode::StaleDevices => {
                    Box::pin(self.reconcile(id, &e.devices)).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Protocol(
            "the conversation kept changing; try again".into(),
        ))
    }

    /// Hand one MLS message to the server. To every other account whose profile key we hold
    /// (it wrote to us, in any conversation) it goes **sealed**, over an unauthenticated
    /// connection, so the server does not learn who sends it; the rest (strangers, and this
    /// account's other devices: the server sees this account write to itself) goes identified,
    /// as a second copy with its own id. A token the server refuses (its owner changed its
    /// profile key) is forgotten and that recipient is written to identified.
    async fn deliver(
        &mut self,
        out: Outgoing,
        epoch: EpochRef,
        ttl_secs: Option<u32>,
        franking: Option<[u8; 32]>,
    ) -> Result<Response> {
        if out.to.is_empty() {
            // Everyone else left: no one to deliver to, only the local copy to keep.
            return Ok(Response::Sent {
                server_ts: self.now_ms(),
            });
        }
        let mut sealed = Vec::new();
        let mut identified = Vec::new();
        for r in out.to {
            let token = if r.account == self.creds.account {
                None
            } else {
                self.state
                    .profile_key(r.account)
                    .await?
                    .map(|k| ProfileKey(k).access_key())
            };
            match token {
                Some(access_key) => sealed.push(SealedRecipient {
                    account: r.account,
                    devices: r.devices,
                    access_key,
                }),
                None => identified.push(r),
            }
        }
        // Each sealed copy is paid for with an anonymous token; without enough of them (the
        // server gives none to a throttled or challenged account) every copy goes identified.
        let mut tokens = None;
        if !sealed.is_empty() {
            tokens = self.take_sealed_tokens(sealed.len()).await?;
            if tokens.is_none() {
                identified.extend(sealed.drain(..).map(|r| Recipient {
                    account: r.account,
                    devices: r.devices,
                }));
                identified.sort_by_key(|r| r.account);
            }
        }
        if let Some(mut paid) = tokens {
            let (mut retried, mut reopened) = (false, false);
            let result = loop {
                let request = Request::SendSealed {
                    message_id: out.message_id,
                    to: sealed.clone(),
                    payload: out.payload.clone(),
                    epoch: Some(epoch),
                    ttl_secs,
                    franking,
                    tokens: paid.clone(),
                };
                match self.anon().await?.request(request).await {
                    // The server closes a sealed-sender session that stayed idle: open another
                    // once (a copy that did arrive is stored once by its message id, and a
                    // token it spent is refused, so the retry below goes identified).
                    Err(ClientError::Connection(_)) if !reopened => {
                        reopened = true;
                        self.anon = None;
                    }
                    // The wallet's tokens are stale (their key expired, or the server
                    // restarted): start a fresh wallet once, then go identified.
                    Err(ClientError::Server(e)) if e.code == ErrorCode::BadSealedToken && !retried => {
                        retried = true;
                        self.drop_sealed_tokens().await?;
                        match self.take_sealed_tokens(sealed.len()).await? {
                            Some(fresh) => paid = fresh,
                            None => break Err(ClientError::Server(e)),
                        }
                    }
                    r => break r,
                }
            };
            match result {
                Ok(Response::Sent { .. }) => {}
                Ok(other) => return Err(unexpected(other)),
                Err(ClientError::Server(e)) if e.code == ErrorCode::BadSealedToken => {
                    // Nothing was stored: everyone gets the identified copy.
                    identified.extend(sealed.drain(..).map(|r| Recipient {
                        account: r.account,
                        devices: r.devices,
                    }));
                    identified.sort_by_key(|r| r.account);
                }
                Err(ClientError::Server(e)) if e.code == ErrorCode::Unauthorized => {
                    // Nothing was stored. Forget the refused tokens (the server names their
                    // accounts; all of them if it did not) and write to everyone identified.
                    for r in &sealed {
                        if e.devices.is_empty() || e.devices.iter().any(|d| d.account == r.account) {
                            self.state.set_profile_key(r.account, None).await?;
                        }
                    }
                    identified.extend(sealed.into_iter().map(|r| Recipient {
                        account: r.account,
                        devices: r.devices,
                    }));
                    identified.sort_by_key(|r| r.account);
                    return self
                        .send_identified(
                            Outgoing {
                                message_id: out.message_id,
                                to: identified,
                                payload: out.payload,
                            },
                            epoch,
                            ttl_secs,
                            franking,
                        )
                        .await;
                }
                Err(e) => return Err(e),
            }
        }
        if identified.is_empty() {
            return Ok(Response::Sent {
                server_ts: self.now_ms(),
            });
        }
        let copy = Outgoing {
            // The sealed copies already used the message's id.
            message_id: if sealed.is_empty() {
                out.message_id
            } else {
                random_id()
            },
            to: identified,
            payload: out.payload,
        };
        self.send_identified(copy, epoch, ttl_secs, franking).await
    }

    /// An identified `Send`; a challenge (the server suspects automated use) is solved and the
    /// send tried again.
    async fn send_identified(
        &self,
        out: Outgoing,
        epoch: EpochRef,
        ttl_secs: Option<u32>,
        franking: Option<[u8; 32]>,
    ) -> Result<Response> {
        let request = Request::Send {
            message_id: out.message_id,
            to: out.to,
            payload: out.payload,
            epoch: Some(epoch),
            ttl_secs,
            franking,
        };
        match self.conn()?.request(request.clone()).await {
            Err(ClientError::Server(e)) if e.code == ErrorCode::ChallengeRequired => {
                let Some(ch) = e.challenge else {
                    return Err(ClientError::Server(e));
                };
                let account = self.creds.account;
                let solution = self
                    .platform
                    .blocking(move || sirr_proto::challenge::solve(&ch.nonce, ch.bits, account))
                    .await?;
                match self
                    .conn()?
                    .request(Request::SolveChallenge {
                        nonce: ch.nonce,
                        solution,
                    })
                    .await?
                {
                    Response::Done => self.conn()?.request(request).await,
                    other => Err(unexpected(other)),
                }
            }
            r => r,
        }
    }

    /// The sealed-sender connection: unauthenticated, opened on first use.
    pub(crate) async fn anon(&mut self) -> Result<&Connection> {
        if self.anon.is_none() {
            let c = Connection::open(
                &self.platform,
                &self.creds.server,
                self.state.server_ca().as_deref(),
            )
            .await?;
            match c.request(Request::SealedSession).await? {
                Response::Done => {}
                other => return Err(unexpected(other)),
            }
            self.anon = Some(c);
        }
        self.anon
            .as_ref()
            .ok_or_else(|| ClientError::State("no sealed-sender connection".into()))
    }

    /// After this account gained or lost a device: add it to, or take it out of, every
    /// conversation.
    pub(crate) async fn sync_own_devices_everywhere(&mut self, own_devices: Vec<DeviceId>) -> Result<()> {
        let current = [Recipient {
            account: self.creds.account,
            devices: own_devices,
        }];
        for row in self.state.conversations().await? {
            if row.active && Conversation::load(&self.keys.store, row.id.0)?.is_some_and(|c| c.is_active()) {
                self.reconcile(row.id, &current).await?;
            }
        }
        Ok(())
    }

    /// Bring conversation `id`'s leaves in line with the server's current device lists:
    /// remove departed devices, add new ones (claiming their KeyPackages).
    async fn reconcile(&mut self, id: ConversationId, current: &[Recipient]) -> Result<()> {
        let me = self.me();
        let mut conv = self.load_active(id)?;
        let leaves = conv.members();
        let gone: Vec<DeviceAddress> = leaves
            .iter()
            .copied()
            .filter(|d| {
                *d != me
                    && current
                        .iter()
                        .any(|r| r.account == d.account && !r.devices.contains(&d.device))
            })
            .collect();
        if !gone.is_empty() {
            let commit = conv.remove_members(&self.keys.store, &self.keys.identity, &gone)?;
            let to = recipients(leaves.iter().copied().filter(|d| *d != me));
            if !self.order_commit(&mut conv, commit, to, None).await? {
                return Box::pin(self.receive(CATCH_UP)).await.map(|_| ());
            }
        }
        let mut kps = Vec::new();
        for r in current {
            let missing: Vec<DeviceId> = r
                .devices
                .iter()
                .copied()
                .filter(|d| {
                    let a = DeviceAddress {
                        account: r.account,
                        device: *d,
                    };
                    a != me && !leaves.contains(&a)
                })
                .collect();
            if !missing.is_empty() {
                kps.extend(self.claim(r.account, missing).await?);
            }
        }
        if !kps.is_empty() {
            let added = conv.add_members(&self.keys.store, &self.keys.identity, &kps)?;
            let to = recipients(conv.members().into_iter().filter(|d| *d != me));
            let welcome_to = recipients(kps.iter().map(|k| k.address()));
            if !self
                .order_commit(&mut conv, added.commit, to, Some((added.welcome, welcome_to)))
                .await?
            {
                return Box::pin(self.receive(CATCH_UP)).await.map(|_| ());
            }
            self.resend_info(id).await?;
        }
        Ok(())
    }

    /// Tell the conversation (and its newest devices) its name and members again.
    async fn resend_info(&mut self, id: ConversationId) -> Result<()> {
        if let Some(row) = self.state.conversation(id).await? {
            self.send_content(
                id,
                Body::Info {
                    name: row.name,
                    members: row.members,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Send a text to `to` in your one-to-one conversation, creating it on first use.
    pub async fn send_text(&mut self, to: &Phone, text: &str) -> Result<MessageId> {
        crate::check_text(text)?;
        let id = self.open_direct(to).await?;
        self.send_content(id, Body::Text(text.to_owned())).await
    }

    /// The one-to-one conversation with `to`, created if this device has none yet.
    ///
    /// Its id is random, like a group's, so the server cannot work out who talks to whom from
    /// the two account ids. If both sides create one at the same time, each also joins the
    /// other's; both then write in the one with the lower id (and still read both).
    pub async fn open_direct(&mut self, to: &Phone) -> Result<ConversationId> {
        let account = self.account_of(to).await?;
        for id in self.state.direct_conversations(&to.to_string()).await? {
            if Conversation::load(&self.keys.store, id.0)?.is_some_and(|c| c.is_active() && c.epoch() > 0) {
                return Ok(id);
            }
        }
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let id = ConversationId(id);
        let peer = Member {
            phone: to.clone(),
            account,
        };
        self.establish(id, None, vec![peer]).await?;
        Ok(id)
    }

    /// Encrypt a text for `to` without sending it: returns a ready `Send` request (recipients,
    /// payload, epoch). For tools that pipeline their own frames, such as load generators and
    /// tests; the sender ratchet has advanced and is saved, so each result is sent once.
    pub async fn encrypt_text(&mut self, to: &Phone, text: &str) -> Result<Request> {
        crate::check_text(text)?;
        let id = self.open_direct(to).await?;
        let mut conv = self.load_active(id)?;
        let timer = self.state.timer(id).await?;
        let content = Content {
            from: self.creds.phone.clone(),
            sent_at: self.now_ms(),
            body: Body::Text(text.to_owned()),
            disappears_after_secs: timer,
            profile_key: None,
            franking_key: None,
            franking_sig: None,
        };
        let (content, commitment) = frank(content, &self.keys.identity, id);
        let ciphertext = conv.encrypt(&self.keys.store, &self.keys.identity, &content.seal())?;
        self.keys.save(&self.state).await?;
        let me = self.me();
        Ok(Request::Send {
            message_id: random_id(),
            to: recipients(conv.members().into_iter().filter(|d| *d != me)),
            payload: Sealed::Mls {
                conversation: id,
                message: ciphertext,
            }
            .encode(),
            epoch: Some(EpochRef {
                conversation: id,
                epoch: conv.epoch(),
                token: conv.membership_token(),
            }),
            ttl_secs: timer,
            franking: Some(commitment),
        })
    }

    /// The account behind `phone` (from contacts, else the directory).
    pub(crate) async fn account_of(&self, phone: &Phone) -> Result<AccountId> {
        if let Some((a, _)) = self.state.contact(phone).await? {
            return Ok(a);
        }
        self.lookup(phone)
            .await?
            .map(|(a, _)| a)
            .ok_or_else(|| ClientError::NotOnSirr(phone.to_string()))
    }

    pub(crate) async fn group(&self, name: &str) -> Result<ConversationRow> {
        self.state
            .group_named(name)
            .await?
            .ok_or_else(|| ClientError::Invalid(format!("no group named {name:?} on this device")))
    }

    /// Create a group called `name` with these people; returns its id.
    pub async fn group_create(&mut self, name: &str, phones: &[Phone]) -> Result<ConversationId> {
        if name.trim().is_empty() || name.len() > 100 {
            return Err(ClientError::Invalid("a group name has 1 to 100 bytes".into()));
        }
        if self.state.group_named(name).await?.is_some() {
            return Err(ClientError::Invalid(format!(
                "a group named {name:?} already exists"
            )));
        }
        let mut members = Vec::new();
        for p in phones {
            if p == &self.creds.phone {
                continue;
            }
            let account = self.account_of(p).await?;
            if !members.iter().any(|m: &Member| m.account == account) {
                members.push(Member {
                    phone: p.clone(),
                    account,
                });
            }
        }
        let mut raw = [0u8; 16];
        rand::rng().fill_bytes(&mut raw);
        let id = ConversationId(raw);
        self.establish(id, Some(name.to_owned()), members).await?;
        Ok(id)
    }

    pub async fn group_send(&mut self, name: &str, text: &str) -> Result<MessageId> {
        crate::check_text(text)?;
        let id = self.group(name).await?.id;
        self.send_content(id, Body::Text(text.to_owned())).await
    }

    /// Add `phone`'s devices to the group.
    pub async fn group_add(&mut self, name: &str, phone: &Phone) -> Result<()> {
        let row = self.group(name).await?;
        let account = self.account_of(phone).await?;
        let me = self.me();
        for _ in 0..ATTEMPTS {
            let mut conv = self.load_active(row.id)?;
            if conv.members().iter().any(|d| d.account == account) {
                return Err(ClientError::Invalid(format!("{phone} is already in {name:?}")));
            }
            let kps = self.claim(account, Vec::new()).await?;
            if kps.is_empty() {
                return Err(ClientError::Invalid(format!(
                    "{phone} has no device keys at the server yet"
                )));
            }
            let added = conv.add_members(&self.keys.store, &self.keys.identity, &kps)?;
            let to = recipients(conv.members().into_iter().filter(|d| *d != me));
            let welcome_to = recipients(kps.iter().map(|k| k.address()));
            if self
                .order_commit(&mut conv, added.commit, to, Some((added.welcome, welcome_to)))
                .await?
            {
                let mut row = self.state.conversation(row.id).await?.unwrap_or(row);
                row.members.retain(|m| m.account != account);
                row.members.push(Member {
                    phone: phone.clone(),
                    account,
                });
                self.state.save_conversation(&row).await?;
                return self.resend_info(row.id).await;
            }
            Box::pin(self.receive(CATCH_UP)).await?;
        }
        Err(ClientError::Protocol("the group kept changing; try again".into()))
    }

    /// Remove `phone`'s devices from the group. From the next epoch on they cannot decrypt.
    pub async fn group_remove(&mut self, name: &str, phone: &Phone) -> Result<()> {
        let row = self.group(name).await?;
        let account = self.account_of(phone).await?;
        if account == self.creds.account {
            return Err(ClientError::Invalid("to leave a group, use `group leave`".into()));
        }
        let me = self.me();
        for _ in 0..ATTEMPTS {
            let mut conv = self.load_active(row.id)?;
            let leaves = conv.members();
            let gone: Vec<DeviceAddress> = leaves.iter().copied().filter(|d| d.account == account).collect();
            if gone.is_empty() {
                return Err(ClientError::Invalid(format!("{phone} is not in {name:?}")));
            }
            let commit = conv.remove_members(&self.keys.store, &self.keys.identity, &gone)?;
            // The removed devices get the commit too, so they learn they were removed.
            let to = recipients(leaves.into_iter().filter(|d| *d != me));
            if self.order_commit(&mut conv, commit, to, None).await? {
                let mut row = self.state.conversation(row.id).await?.unwrap_or(row);
                row.members.retain(|m| m.account != account);
                self.state.save_conversation(&row).await?;
                return self.resend_info(row.id).await;
            }
            Box::pin(self.receive(CATCH_UP)).await?;
        }
        Err(ClientError::Protocol("the group kept changing; try again".into()))
    }

    /// Rename the group, for every member (the name travels encrypted, as an `Info` message).
    pub async fn group_rename(&mut self, name: &str, new_name: &str) -> Result<()> {
        if new_name.trim().is_empty() || new_name.len() > 100 {
            return Err(ClientError::Invalid("a group name has 1 to 100 bytes".into()));
        }
        if self.state.group_named(new_name).await?.is_some() {
            return Err(ClientError::Invalid(format!(
                "a group named {new_name:?} already exists"
            )));
        }
        let mut row = self.group(name).await?;
        row.name = Some(new_name.to_owned());
        self.send_content(
            row.id,
            Body::Info {
                name: row.name.clone(),
                members: row.members.clone(),
            },
        )
        .await?;
        self.state.save_conversation(&row).await
    }

    /// Leave the group: send a proposal removing this device (a member commits it); this
    /// account's other devices follow when they see it.
    pub async fn group_leave(&mut self, name: &str) -> Result<()> {
        let mut row = self.group(name).await?;
        self.leave(row.id).await?;
        row.active = false;
        self.state.save_conversation(&row).await?;
        Ok(())
    }

    async fn leave(&mut self, id: ConversationId) -> Result<()> {
        let me = self.me();
        for _ in 0..ATTEMPTS {
            let mut conv = self.load_active(id)?;
            let proposal = conv.leave(&self.keys.store, &self.keys.identity)?;
            self.keys.save(&self.state).await?;
            let to = recipients(conv.members().into_iter().filter(|d| *d != me));
            let r = self
                .conn()?
                .request(Request::Send {
                    message_id: random_id(),
                    to,
                    payload: Sealed::Mls {
                        conversation: id,
                        message: proposal,
                    }
                    .encode(),
                    epoch: Some(EpochRef {
                        conversation: id,
                        epoch: conv.epoch(),
                        token: conv.membership_token(),
                    }),
                    ttl_secs: None,
                    franking: None,
                })
                .await;
            match r {
                Ok(Response::Sent { .. }) => return Ok(()),
                Ok(other) => return Err(unexpected(other)),
                Err(ClientError::Server(e)) if e.code == ErrorCode::StaleEpoch => {
                    Box::pin(self.receive(CATCH_UP)).await?;
                }
                Err(ClientError::Server(e)) if e.code == ErrorCode::StaleDevices => {
                    Box::pin(self.reconcile(id, &e.devices)).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Protocol("the group kept changing; try again".into()))
    }

    /// The groups and chats this device is in.
    pub async fn conversations(&self) -> Result<Vec<(ConversationRow, u64, usize)>> {
        let mut out = Vec::new();
        for row in self.state.conversations().await? {
            if let Some(c) = Conversation::load(&self.keys.store, row.id.0)?
                && c.is_active()
                && row.active
            {
                out.push((row, c.epoch(), c.members().len()));
            }
        }
        Ok(out)
    }

    /// Run what processing a batch asked for: commit others' leave proposals, follow this
    /// account's other devices out of groups they left.
    pub(crate) async fn run_followups(&mut self, f: Followups) -> Result<()> {
        let me = self.me();
        for id in f.leave {
            if let Err(e) = self.leave(id).await {
                tracing::warn!(conversation = %id, error = %e, "could not follow this account out of a group");
            }
        }
        for id in f.commit_proposals {
            let Ok(mut conv) = self.load_active(id) else {
                continue;
            };
            let leaves = conv.members();
            let (commit, _welcome) =
                match conv.commit_pending_proposals(&self.keys.store, &self.keys.identity) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(conversation = %id, error = %e, "could not commit pending proposals");
                        continue;
                    }
                };
            let to = recipients(leaves.into_iter().filter(|d| *d != me));
            // Someone else may commit first: then ours is refused and theirs arrives in the queue.
            // (Only leave proposals are accepted, so there is never a Welcome to send.)
            self.order_commit(&mut conv, commit, to, None).await?;
        }
        Ok(())
    }

    /// Decrypt one pushed envelope and decide what it changes, into `ch`; writes nothing to
    /// `state.db` (see [`crate::receive`], which applies `ch` in one transaction). Its only
    /// effect is on the in-memory MLS state, which the caller rolls back if this fails.
    /// Errors that concern only this envelope (it does not decode, decrypt or verify) become a
    /// `notice` row for the user, never a failure: one bad message must not block the queue.
    /// A failure (the sender's number could not be looked up, the connection broke) leaves the
    /// envelope unacknowledged, to be decrypted again from the rolled-back state.
    pub(crate) async fn classify(
        &mut self,
        env: &Envelope,
        ch: &mut Changes,
        followups: &mut Followups,
    ) -> Result<()> {
        let rows = &mut ch.rows;
        let (from, message_id, payload) = (env.from, env.message_id, &env.payload[..]);
        let me = self.me();
        let from_device = from.map_or(0, |f| f.device.0);
        // How a message is named before it is decrypted: a sealed one carries no sender.
        let who = from.map_or_else(|| "a sealed sender".to_owned(), |f| format!("device {f}"));
        let notice = |rows: &mut Vec<_>, conversation: [u8; 16], text: String| {
            rows.push((
                message_id,
                StoredMessage {
                    message_id: String::new(),
                    conversation: String::new(),
                    direction: "notice".into(),
                    from: String::new(),
                    to: String::new(),
                    from_device,
                    text,
                    group: None,
                    sent_at: self.now_ms(),
                    received_at: self.now_ms(),
                    verified: false,
                    expires_at: None,
                },
                conversation,
            ));
        };
        let sealed = match Sealed::decode(payload) {
            Ok(s) => s,
            Err(e) => {
                notice(
                    rows,
                    [0; 16],
                    format!("a message from {who} could not be read: {e}"),
                );
                return Ok(());
            }
        };
        match sealed {
            Sealed::Welcome {
                conversation,
                welcome,
            } => {
                if from.is_none() {
                    // Invitations come with commits, which are always identified.
                    notice(
                        rows,
                        conversation.0,
                        "ignored an invitation from a sealed sender".into(),
                    );
                    return Ok(());
                }
                if let Some(c) = Conversation::load(&self.keys.store, conversation.0)? {
                    if c.is_active() && c.epoch() > 0 {
                        notice(
                            rows,
                            conversation.0,
                            format!(
                                "ignored an invitation from {who} to a conversation this device is already in"
                            ),
                        );
                        return Ok(());
                    }
                    c.delete(&self.keys.store)?;
                }
                match Conversation::join(&self.keys.store, &welcome) {
                    Ok(c) if ConversationId(c.id()) == conversation => {
                        let mut row =
                            self.state
                                .conversation(conversation)
                                .await?
                                .unwrap_or(ConversationRow {
                                    id: conversation,
                                    name: None,
                                    peer: None,
                                    members: Vec::new(),
                                    active: true,
                                });
                        row.active = true;
                        ch.conversations.push(row);
                    }
                    Ok(c) => {
                        c.delete(&self.keys.store)?;
                        notice(
                            rows,
                            conversation.0,
                            format!("rejected an invitation from {who}: its conversation id does not match"),
                        );
                    }
                    Err(e) => notice(
                        rows,
                        conversation.0,
                        format!("rejected an invitation from {who}: {e}"),
                    ),
                }
            }
            Sealed::Mls {
                conversation,
                message,
            } => {
                let Some(mut conv) = Conversation::load(&self.keys.store, conversation.0)? else {
                    notice(
                        rows,
                        conversation.0,
                        format!("a message from {who} is for a conversation this device is not in"),
                    );
                    return Ok(());
                };
                let incoming = match conv.process_incoming(&self.keys.store, &message) {
                    Ok(i) => i,
                    Err(e) => {
                        notice(
                            rows,
                            conversation.0,
                            format!("rejected a message from {who}: {e}"),
                        );
                        return Ok(());
                    }
                };
                match incoming {
                    Incoming::ApplicationMessage { sender, plaintext } => {
                        if let Some(from) = from
                            && sender.account != from.account
                        {
                            notice(
                                rows,
                                conversation.0,
                                format!("rejected a message relayed as {who} but signed by {sender}"),
                            );
                            return Ok(());
                        }
                        let content = match Content::open(&plaintext) {
                            Ok(c) => c,
                            Err(e) => {
                                notice(
                                    rows,
                                    conversation.0,
                                    format!("a message from device {sender} could not be read: {e}"),
                                );
                                return Ok(());
                            }
                        };
                        // Every message must carry franking that opens to what was decrypted,
                        // to its MLS sender account, and is signed by its MLS sender device:
                        // anything else could not be reported, so it is refused.
                        let opening = match check_franking(
                            env,
                            &content,
                            sender,
                            conv.signature_key_of(sender),
                            conversation,
                        ) {
                            Ok(o) => o,
                            Err(why) => {
                                notice(
                                    rows,
                                    conversation.0,
                                    format!("rejected a message from {sender}: {why}"),
                                );
                                return Ok(());
                            }
                        };
                        if sender.account != me.account && matches!(content.body, Body::Text(_)) {
                            ch.franked.push(state::Franked {
                                sender: sender.account,
                                opening,
                            });
                        }
                        if self.state.is_blocked(sender.account).await? {
                            return Ok(());
                        }
                        let verified = self
                            .sender_matches(&content.from, sender.account, &mut ch.contacts)
                            .await?;
                        // The sender's profile key, from any conversation we share: we may
                        // write to it sealed.
                        if let Some(k) = content.profile_key
                            && sender.account != me.account
                        {
                            ch.profile_keys.push((sender.account, k));
                        }
                        match content.body {
                            Body::Text(text) => {
                                let row = self.state.conversation(conversation).await?;
                                let to = match &row {
                                    Some(r) if r.name.is_some() => r.name.clone().unwrap_or_default(),
                                    Some(r) if sender.account == me.account => {
                                        r.peer.clone().unwrap_or_default()
                                    }
                                    _ => self.creds.phone.to_string(),
                                };
                                rows.push((
                                    message_id,
                                    StoredMessage {
                                        message_id: String::new(),
                                        conversation: String::new(),
                                        direction: if sender.account == me.account { "out" } else { "in" }
                                            .into(),
                                        from: content.from.to_string(),
                                        to,
                                        from_device: sender.device.0,
                                        text,
                                        group: None,
                                        sent_at: content.sent_at,
                                        received_at: self.now_ms(),
                                        verified,
                                        expires_at: content
                                            .disappears_after_secs
                                            .map(|t| self.now_ms() + u64::from(t) * 1000),
                                    },
                                    conversation.0,
                                ));
                            }
                            Body::Read(ids) => {
                                // Receipts are shown only from the other party of a 1:1 chat.
                                let row = self.state.conversation(conversation).await?;
                                if sender.account == me.account
                                    || row.as_ref().is_none_or(|r| r.name.is_some())
                                {
                                    return Ok(());
                                }
                                rows.push((
                                    message_id,
                                    StoredMessage {
                                        message_id: String::new(),
                                        conversation: String::new(),
                                        direction: "read".into(),
                                        from: content.from.to_string(),
                                        to: self.creds.phone.to_string(),
                                        from_device: sender.device.0,
                                        text: ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" "),
                                        group: None,
                                        sent_at: content.sent_at,
                                        received_at: self.now_ms(),
                                        verified,
                                        expires_at: None,
                                    },
                                    conversation.0,
                                ));
                            }
                            Body::Timer(seconds) => {
                                ch.timers.push((conversation, seconds));
                                let who = if sender.account == me.account {
                                    "you".to_owned()
                                } else {
                                    content.from.to_string()
                                };
                                let what = match seconds {
                                    Some(t) => format!("messages now disappear {t} s after they arrive"),
                                    None => "disappearing messages are off".into(),
                                };
                                notice(rows, conversation.0, format!("{what} (set by {who})"));
                            }
                            Body::Info { name, members } => {
                                if !verified {
                                    notice(
                                        rows,
                                        conversation.0,
                                        format!(
                                            "ignored group details from device {sender}: its stated number does not match its account"
                                        ),
                                    );
                                    return Ok(());
                                }
                                let leaves: BTreeSet<AccountId> =
                                    conv.members().into_iter().map(|d| d.account).collect();
                                let members: Vec<Member> = members
                                    .into_iter()
                                    .filter(|m| leaves.contains(&m.account))
                                    .collect();
                                for m in &members {
                                    if m.account != me.account
                                        && !ch.contacts.iter().any(|(p, ..)| p == &m.phone)
                                        && self.state.contact(&m.phone).await?.is_none()
                                    {
                                        ch.contacts.push((m.phone.clone(), m.account, Vec::new()));
                                    }
                                }
                                let mut row =
                                    self.state
                                        .conversation(conversation)
                                        .await?
                                        .unwrap_or(ConversationRow {
                                            id: conversation,
                                            name: None,
                                            peer: None,
                                            members: Vec::new(),
                                            active: true,
                                        });
                                row.peer = if name.is_none() {
                                    members
                                        .iter()
                                        .find(|m| m.account != me.account)
                                        .map(|m| m.phone.to_string())
                                } else {
                                    None
                                };
                                row.name = match name {
                                    Some(n) => Some(self.unique_name(conversation, n).await?),
                                    None => None,
                                };
                                row.members = members;
                                ch.conversations.push(row);
                            }
                        }
                    }
                    Incoming::CommitApplied {
                        added, self_removed, ..
                    } => {
                        if self_removed && let Some(mut row) = self.state.conversation(conversation).await? {
                            row.active = false;
                            ch.conversations.push(row.clone());
                            let what = row
                                .name
                                .map(|n| format!("the group {n:?}"))
                                .or(row.peer.map(|p| format!("the chat with {p}")))
                                .unwrap_or_else(|| "a conversation".into());
                            notice(
                                rows,
                                conversation.0,
                                format!("this device was removed from {what}"),
                            );
                        }
                        for d in added.iter().filter(|d| d.account != me.account) {
                            if let Some(p) = self.state.contact_phone(d.account).await? {
                                notice(
                                    rows,
                                    conversation.0,
                                    format!(
                                        "{p} has a new device ({}), approved by their account (your safety number is unchanged)",
                                        d.device
                                    ),
                                );
                            }
                        }
                    }
                    Incoming::Proposal { sender, proposal } => {
                        if let ProposalKind::Remove(_) = proposal {
                            if sender.account == me.account && sender != me {
                                // Follow this account's other device out, unless already leaving.
                                if let Some(mut row) = self.state.conversation(conversation).await?
                                    && row.active
                                {
                                    followups.leave.insert(conversation);
                                    row.active = false;
                                    ch.conversations.push(row);
                                }
                            } else if sender.account != me.account {
                                followups.commit_proposals.insert(conversation);
                            }
                        }
                    }
                    Incoming::OwnCommitMerged { .. } | Incoming::OwnMessage => {}
                }
            }
        }
        Ok(())
    }

    /// A group name not used by another active group here (names are local labels).
    async fn unique_name(&self, id: ConversationId, name: String) -> Result<String> {
        match self.state.group_named(&name).await? {
            Some(other) if other.id != id => Ok(format!("{name} ({})", &id.to_string()[..6])),
            _ => Ok(name),
        }
    }
}

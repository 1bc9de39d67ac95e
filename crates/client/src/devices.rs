//! This account's devices: the signed device list, linking a new device, and checking the
//! devices of other accounts before encrypting to them.
//!
//! Linking, step by step (the server relays, but cannot read or forge anything that matters):
//! 1. the new device makes its identity key and an ephemeral link key, asks the server for a
//!    link id and shows a code holding `link id || link key || identity key` ([`PendingLink`]);
//! 2. the user types that code into an approved device ([`Client::approve_link`]), which seals
//!    the account key, the phone number and the contacts to the link key, asks the server to
//!    create the device, signs a new device list naming the new device's identity key, and
//!    then adds the new device to every conversation as soon as it has uploaded KeyPackages;
//! 3. the new device receives its credential and the sealed bundle, opens it, and connects.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sirr_crypto::seal::{LinkKey, seal_to_link};
use sirr_crypto::{AccountKey, CryptoError, DeviceIdentity, ValidatedKeyPackage, verify_device_list};
use sirr_proto::content::{LinkBundle, Member};
use sirr_proto::{AccountId, ConversationId, DeviceId, MessageId, Request, Response};

use crate::connection::Connection;
use crate::error::{ClientError, Result};
use crate::platform::Platform;
use crate::state::{Credentials, State, StoredMessage};
use crate::{Client, keys, unexpected};

const OWN_LIST: &str = "device list";
/// Set at registration of a new account, until its first device list is published.
pub(crate) const FIRST_DEVICE: &str = "first device";
/// This device's name, until it is at the server (sealed under the account key).
pub(crate) const PENDING_NAME: &str = "device name to upload";

/// One of this account's devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub id: DeviceId,
    /// Its name, opened with the account key; `None` if it set none or this device cannot
    /// open it (a device registered by phone number alone holds no account key).
    pub name: Option<String>,
    /// Day of registration, days since the Unix epoch.
    pub created_day: u32,
}
const CODE_LEN: usize = 16 + 32 + 32;
/// How long the approving device waits for the new one to upload its keys.
const NEW_DEVICE_WAIT: Duration = Duration::from_secs(60);

impl Client {
    /// Name this device. The name goes to the server sealed under the account key, so only
    /// the account's devices can read it; it is uploaded now if connected, else at the next
    /// connection.
    pub async fn set_device_name(&mut self, name: &str) -> Result<()> {
        sirr_crypto::account::check_device_name(name).map_err(|e| ClientError::Invalid(e.to_string()))?;
        if self.keys.account_key.is_none() {
            return Err(ClientError::Invalid(
                "this device holds no account key (it was never approved), so it cannot seal a name".into(),
            ));
        }
        self.state.set(PENDING_NAME, name.as_bytes()).await?;
        if self.conn.is_some() {
            self.upload_device_name().await?;
        }
        Ok(())
    }

    /// Upload this device's pending name, sealed, if it has one and holds the account key.
    pub(crate) async fn upload_device_name(&self) -> Result<()> {
        let (Some(name), Some(key)) = (self.state.get(PENDING_NAME).await?, &self.keys.account_key) else {
            return Ok(());
        };
        let name = String::from_utf8(name).map_err(|e| ClientError::State(e.to_string()))?;
        let me = sirr_proto::DeviceAddress {
            account: self.creds.account,
            device: self.creds.device,
        };
        let sealed = key
            .seal_device_name(me, &name)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        match self
            .conn()?
            .request(Request::SetDeviceName {
                sealed: sealed.into(),
            })
            .await?
        {
            Response::Done => self.state.delete(PENDING_NAME).await,
            other => Err(unexpected(other)),
        }
    }

    /// The name of this account's device `id`, from its sealed form.
    pub(crate) fn open_device_name(&self, id: DeviceId, sealed: Option<&[u8]>) -> Option<String> {
        let device = sirr_proto::DeviceAddress {
            account: self.creds.account,
            device: id,
        };
        self.keys
            .account_key
            .as_ref()?
            .open_device_name(device, sealed?)
            .ok()
    }

    /// Record something the user must see that is not a message.
    pub(crate) async fn notice(&self, conversation: Option<ConversationId>, text: String) -> Result<()> {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let row = StoredMessage {
            message_id: String::new(),
            conversation: String::new(),
            direction: "notice".into(),
            from: String::new(),
            to: String::new(),
            from_device: 0,
            text,
            group: None,
            sent_at: self.now_ms(),
            received_at: self.now_ms(),
            verified: false,
            expires_at: None,
        };
        self.state
            .store_messages(&[(MessageId(id), row, conversation.map(|c| c.0).unwrap_or_default())])
            .await?;
        Ok(())
    }

    /// How the user knows `account`.
    pub(crate) async fn label(&self, account: AccountId) -> Result<String> {
        if account == self.creds.account {
            return Ok("your own account".into());
        }
        Ok(self
            .state
            .contact_phone(account)
            .await?
            .map(|p| p.to_string())
            .unwrap_or_else(|| format!("account {account}")))
    }

    /// The devices this account approved, from the list it last signed.
    async fn own_list(&self) -> Result<Vec<(DeviceId, [u8; 32])>> {
        Ok(match self.state.get(OWN_LIST).await? {
            Some(b) => verify_device_list(&b, self.creds.account, None)?.devices,
            None => Vec::new(),
        })
    }

    /// Sign and publish this account's device list with `devices`.
    async fn publish_list(&mut self, devices: Vec<(DeviceId, [u8; 32])>) -> Result<()> {
        let Some(key) = &self.keys.account_key else {
            return Err(ClientError::Invalid(
                "this device holds no account key: approve or remove devices from the account's first device"
                    .into(),
            ));
        };
        let version = match self.state.get(OWN_LIST).await? {
            Some(b) => verify_device_list(&b, self.creds.account, None)?.version + 1,
            None => 1,
        };
        let list = key.sign_device_list(self.creds.account, version, &devices)?;
        self.conn()?
            .request(Request::PublishDeviceList {
                version,
                list: list.clone().into(),
            })
            .await?;
        self.state.set(OWN_LIST, &list).await?;
        Ok(())
    }

    /// The first device of a new account publishes the list naming itself (once).
    pub(crate) async fn publish_first_device_list(&mut self) -> Result<()> {
        if self.state.get(FIRST_DEVICE).await?.is_none() {
            return Ok(());
        }
        let me = (self.creds.device, self.keys.identity.public().signature_key);
        self.publish_list(vec![me]).await?;
        self.state.delete(FIRST_DEVICE).await
    }

    /// Fetch this account's current signed list from the server (another device of the
    /// account may have changed it) and keep it if it verifies under our account key.
    async fn refresh_own_list(&mut self) -> Result<()> {
        let Some(key) = &self.keys.account_key else {
            return Ok(());
        };
        let public = key.public();
        let r = self
            .conn()?
            .request(Request::ClaimKeyPackages {
                account: self.creds.account,
                devices: vec![self.creds.device],
            })
            .await?;
        let Response::KeyPackages {
            device_list: Some(list),
            ..
        } = r
        else {
            return Ok(());
        };
        let fetched = verify_device_list(&list, self.creds.account, Some(public))?;
        let local = match self.state.get(OWN_LIST).await? {
            Some(b) => verify_device_list(&b, self.creds.account, Some(public))?.version,
            None => 0,
        };
        if fetched.version > local {
            self.state.set(OWN_LIST, &list).await?;
        }
        Ok(())
    }

    /// Take a removed device off the signed list (if this device holds the account key).
    pub(crate) async fn unlist_device(&mut self, device: DeviceId) -> Result<()> {
        if self.keys.account_key.is_none() {
            return Ok(());
        }
        self.refresh_own_list().await?;
        let devices: Vec<_> = self
            .own_list()
            .await?
            .into_iter()
            .filter(|(d, _)| *d != device)
            .collect();
        self.publish_list(devices).await
    }

    /// Check claimed KeyPackages of `account` against its signed device list: the list must
    /// verify under the pinned account key (pinned on first sight; a change is shown to the
    /// user) and name each device with the very key its KeyPackage carries.
    pub(crate) async fn check_approved(
        &self,
        account: AccountId,
        device_list: Option<&[u8]>,
        kps: &[ValidatedKeyPackage],
    ) -> Result<()> {
        let label = self.label(account).await?;
        let Some(bytes) = device_list else {
            return Err(ClientError::Invalid(format!(
                "{label} has no signed device list, so none of its devices can be trusted"
            )));
        };
        let pinned = match (&self.keys.account_key, account == self.creds.account) {
            (Some(k), true) => Some(k.public()),
            _ => self.state.pinned_key(account).await?,
        };
        let list = match verify_device_list(bytes, account, pinned) {
            Ok(l) => l,
            Err(CryptoError::AccountKeyChanged) if account != self.creds.account => {
                let l = verify_device_list(bytes, account, None)?;
                self.state.pin_key(account, l.account_key).await?;
                self.notice(
                    None,
                    format!("the safety number with {label} changed: their account was registered anew or someone is in the middle; compare it again with `sirr safety`"),
                ).await?;
                l
            }
            Err(e) => {
                return Err(ClientError::Invalid(format!(
                    "the device list of {label} does not verify: {e}"
                )));
            }
        };
        if pinned.is_none() {
            self.state.pin_key(account, list.account_key).await?;
        }
        for kp in kps {
            let address = kp.address();
            if list.key_of(address.device).as_ref().map(|k| &k[..]) != Some(kp.signature_key()) {
                return Err(ClientError::Invalid(format!(
                    "device {} of {label} was never approved by that account (it may have been added with the phone number alone, or by someone in the middle); not encrypting to it. {}",
                    address.device,
                    if account == self.creds.account {
                        "Remove it with `sirr device remove`, or link it with `sirr device link`."
                    } else {
                        "They can remove it, or approve it from their first device."
                    }
                )));
            }
        }
        Ok(())
    }

    /// Approve a new device from its link code: it joins this account and every conversation.
    pub async fn approve_link(&mut self, code: &str) -> Result<DeviceId> {
        let raw = URL_SAFE_NO_PAD
            .decode(code.trim().trim_start_matches("sirr-link:"))
            .ok()
            .filter(|r| r.len() == CODE_LEN)
            .ok_or_else(|| ClientError::Invalid("that is not a Sirr link code".into()))?;
        let link_id: [u8; 16] = raw[..16].try_into().expect("length checked");
        let link_key: [u8; 32] = raw[16..48].try_into().expect("length checked");
        let identity_key: [u8; 32] = raw[48..].try_into().expect("length checked");
        if self.keys.account_key.is_none() {
            return Err(ClientError::Invalid(
                "this device holds no account key; approve from the account's first device".into(),
            ));
        }
        let bundle = LinkBundle {
            phone: self.creds.phone.clone(),
            account_key: self.keys.account_key.as_ref().map(AccountKey::to_bytes),
            profile_key: self.keys.profile_key.as_ref().map(|p| p.0),
            contacts: self
                .state
                .contacts()
                .await?
                .into_iter()
                .map(|(phone, account)| Member { phone, account })
                .collect(),
        };
        let sealed = seal_to_link(&link_key, &sirr_proto::encode(&bundle))?;
        let r = self
            .conn()?
            .request(Request::ApproveLink {
                link_id,
                sealed: sealed.into(),
            })
            .await?;
        let Response::Linked { device } = r else {
            return Err(unexpected(r));
        };
        self.refresh_own_list().await?;
        let mut list = self.own_list().await?;
        list.push((device, identity_key));
        self.publish_list(list).await?;
        self.refresh_own_devices().await?;
        // Wait for the new device to upload its keys, then add it everywhere.
        let deadline = self.now_ms() + NEW_DEVICE_WAIT.as_millis() as u64;
        loop {
            let r = self
                .conn()?
                .request(Request::ClaimKeyPackages {
                    account: self.creds.account,
                    devices: vec![device],
                })
                .await;
            // Claiming consumed one of its packages; that is the price of knowing it is ready.
            if let Ok(Response::KeyPackages { packages, .. }) = r
                && !packages.is_empty()
            {
                break;
            }
            if self.now_ms() >= deadline {
                return Err(ClientError::Connection(format!(
                    "device {device} was added to the account but did not come online within {} s; \
                     it joins your conversations the next time someone writes in them",
                    NEW_DEVICE_WAIT.as_secs()
                )));
            }
            self.platform.clock.sleep(200).await;
        }
        let own = self.state.own_devices().await?;
        self.sync_own_devices_everywhere(own).await?;
        Ok(device)
    }

    /// The safety number of this account and `phone`'s account: a fingerprint of both account
    /// keys. Both sides see the same digits; it changes only if an account is registered anew
    /// (or someone is in the middle), not when a device is linked.
    pub async fn safety_number(&mut self, phone: &sirr_proto::Phone) -> Result<String> {
        let account = self.account_of(phone).await?;
        if self.state.pinned_key(account).await?.is_none() {
            // Fetch and pin their list by claiming (which checks it).
            self.claim(account, Vec::new()).await?;
        }
        if account != self.creds.account
            && self.keys.account_key.is_none()
            && self.state.pinned_key(self.creds.account).await?.is_none()
        {
            self.claim(self.creds.account, Vec::new()).await?;
        }
        let a = sirr_crypto::DevicePublicSet::from_account_key(
            self.creds.account,
            self.account_key_of(self.creds.account).await?,
        );
        let b = sirr_crypto::DevicePublicSet::from_account_key(account, self.account_key_of(account).await?);
        Ok(sirr_crypto::safety_number(&a, &b))
    }

    /// The account key of `account`: this account's own, or the one pinned for a contact.
    async fn account_key_of(&self, account: AccountId) -> Result<[u8; 32]> {
        if account == self.creds.account
            && let Some(k) = &self.keys.account_key
        {
            return Ok(k.public());
        }
        match self.state.pinned_key(account).await? {
            Some(k) => Ok(k),
            None => Err(ClientError::Invalid(format!(
                "no keys known for {}; send them a message first",
                self.label(account).await.unwrap_or_default()
            ))),
        }
    }
}

/// A device waiting for its link to be approved. Show [`PendingLink::code`] to the user, then
/// call [`PendingLink::finish`].
pub struct PendingLink {
    conn: Connection,
    device_name: String,
    link_id: [u8; 16],
    /// Proves to the server that this device requested the link (never shown).
    secret: sirr_proto::Secret,
    /// How long the server keeps the link: the wait for approval lasts that long.
    expires_in: Duration,
    link_key: LinkKey,
    identity: DeviceIdentity,
    platform: Platform,
    state: State,
    server: String,
    ca: Option<Vec<u8>>,
    code: String,
}

impl PendingLink {
    /// The code to type into an approved device: `sirr-link:` and 80 bytes in base64url.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// How long the server keeps this link pending, from when it was requested.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// Wait for approval, then set up this home directory as the new device.
    pub async fn finish(self) -> Result<Client> {
        // The server answers at the approval or the link's expiry, not sooner: wait as long
        // as the link lives (and a little longer for the expiry's own answer).
        let r = self
            .conn
            .request_within(
                Request::AwaitLink {
                    link_id: self.link_id,
                    secret: self.secret.clone(),
                },
                self.expires_in + Duration::from_secs(10),
            )
            .await;
        self.conn.close().await;
        let Response::LinkApproved {
            account,
            device,
            secret,
            sealed,
        } = r?
        else {
            return Err(ClientError::Protocol("unexpected answer to AwaitLink".into()));
        };
        let bundle = self.link_key.open(&sealed).map_err(|e| {
            ClientError::Invalid(format!(
                "the approving device's bundle does not open ({e}); link again"
            ))
        })?;
        let bundle: LinkBundle = postcard_decode(&bundle)?;
        let mut state = self.state;
        if let Some(pem) = &self.ca {
            state.save_server_ca(pem).await?;
        }
        for m in &bundle.contacts {
            state.set_contact(&m.phone, m.account, &[]).await?;
        }
        let account_key = bundle.account_key.map(|k| AccountKey::from_bytes(&k));
        let profile_key = bundle.profile_key.map(sirr_crypto::ProfileKey);
        let keys = keys::Keys::create(
            &state,
            self.identity.rebind(account, device),
            account_key,
            profile_key,
        )
        .await?;
        let creds = Credentials {
            server: self.server,
            phone: bundle.phone,
            account,
            device,
            secret: secret.to_hex(),
        };
        // Named at the first connection, sealed under the account key it just received.
        state.set(PENDING_NAME, self.device_name.as_bytes()).await?;
        state.save_credentials(&creds).await?;
        Ok(Client {
            platform: self.platform,
            state,
            creds,
            keys,
            conn: None,
            anon: None,
            drained: false,
        })
    }
}

fn postcard_decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    sirr_proto::codec::decode_exact(b).map_err(|e| ClientError::Protocol(format!("link bundle: {e}")))
}

impl Client {
    /// Start linking `state` (a fresh home directory or store) as a new device of an existing
    /// account.
    pub async fn start_link(
        platform: Platform,
        state: State,
        server: &str,
        device_name: &str,
        ca: Option<&[u8]>,
    ) -> Result<PendingLink> {
        if state.is_registered() {
            return Err(ClientError::State(
                "this home is already registered; use another --home for another device".into(),
            ));
        }
        sirr_crypto::account::check_device_name(device_name)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let link_key = LinkKey::generate()?;
        // The address is filled in once the account approves; the key is what it signs.
        let identity = keys::Keys::new_identity(AccountId([0; 16]), DeviceId(0));
        let conn = Connection::open(&platform, server, ca).await?;
        let r = conn
            .request(Request::RequestLink {
                public_key: link_key.public(),
            })
            .await?;
        let Response::LinkCode {
            link_id,
            expires_in,
            secret,
        } = r
        else {
            return Err(unexpected(r));
        };
        let mut raw = Vec::with_capacity(CODE_LEN);
        raw.extend_from_slice(&link_id);
        raw.extend_from_slice(&link_key.public());
        raw.extend_from_slice(&identity.public().signature_key);
        Ok(PendingLink {
            conn,
            device_name: device_name.to_owned(),
            link_id,
            secret,
            expires_in: Duration::from_secs(expires_in.into()),
            link_key,
            identity,
            platform,
            state,
            server: server.to_owned(),
            ca: ca.map(<[u8]>::to_vec),
            code: format!("sirr-link:{}", URL_SAFE_NO_PAD.encode(raw)),
        })
    }
}

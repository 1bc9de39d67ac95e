//! The Sirr client SDK.
//!
//! [`Client`] is one registered device with its local state. It talks to `sirrd` only through
//! the wire protocol in `sirr-proto` (it never depends on the server crate), and keeps its state
//! in a [`store::Store`] (see [`state`]).
//!
//! The same code runs natively and in the browser (wasm32-unknown-unknown): everything it needs
//! from where it runs comes through [`platform`] (clock, spawner, WebSocket connector) and the
//! store. The `native` feature (default) provides tokio, tokio-tungstenite and SQLite
//! implementations ([`Platform::native`], [`store::SqliteStore`]); the `wasm` feature makes the
//! crypto core build for the browser.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sirr_client::ClientError> {
//! use sirr_client::{Client, Platform, state::State};
//! use sirr_proto::Phone;
//! let state = State::open(std::path::Path::new("/tmp/alice"))?;
//! let mut alice = Client::register(Platform::native(), state, "http://127.0.0.1:7700", Phone::parse("+15550000001").unwrap(), "000000", None, "laptop", None).await?;
//! alice.connect().await?;
//! alice.send_text(&Phone::parse("+15550000002").unwrap(), "hello").await?;
//! # Ok(()) }
//! ```

mod connection;
mod conversations;
mod devices;
mod error;
pub mod export;
mod keys;
#[cfg(feature = "native")]
pub mod native;
pub mod outbox;
pub mod platform;
mod privacy;
mod receive;
mod reports;
mod sealed_tokens;
pub mod state;
pub mod store;

#[cfg(feature = "native")]
use std::path::Path;
use std::time::Duration;

use sirr_proto::{AccountId, DeviceId, DeviceInfo, PROTOCOL_VERSION, Phone, Request, Response};

pub use connection::{Connection, Event, websocket_url};
pub use devices::{Device, PendingLink};
pub use error::{ClientError, Result};
#[cfg(feature = "native")]
pub use native::ws::tls_config;
pub use platform::Platform;
pub use privacy::Chat;
use state::{Credentials, State, StoredMessage};

/// Longest text message, in bytes. Longer content belongs in an attachment.
pub const MAX_TEXT: usize = 64 * 1024;
/// How long `receive` keeps reading after the last message before it returns.
const IDLE: Duration = Duration::from_millis(250);

/// Who this client is.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Identity {
    pub server: String,
    pub phone: String,
    pub account: String,
    pub device: u32,
}

/// One device's client.
pub struct Client {
    /// Clock, spawner and connector: everything platform-specific besides the store.
    platform: Platform,
    state: State,
    creds: Credentials,
    keys: keys::Keys,
    conn: Option<Connection>,
    /// An unauthenticated connection for sealed-sender messages, opened when first needed.
    anon: Option<Connection>,
    /// The server said this session's initial queue has been pushed (it says so once).
    drained: bool,
}

impl Client {
    /// Ask the server to send a verification code to `phone`. Returns seconds until it expires.
    pub async fn request_code(
        platform: &Platform,
        server: &str,
        phone: &Phone,
        ca: Option<&[u8]>,
    ) -> Result<u32> {
        let conn = Connection::open(platform, server, ca).await?;
        let r = conn.request(Request::RequestCode { phone: phone.clone() }).await;
        conn.close().await;
        match r? {
            Response::CodeSent { expires_in } => Ok(expires_in),
            other => Err(unexpected(other)),
        }
    }

    /// Register `state` (a fresh home directory or store) as `phone`'s device. A number with no account gets one; a
    /// number that has one gets it started anew, with this device as its first (the old
    /// devices are signed out and contacts see a new safety number), which needs `pin` if the
    /// account has a registration lock ([`ClientError::Server`] with
    /// `ErrorCode::RegistrationLocked` otherwise).
    #[allow(clippy::too_many_arguments)]
    pub async fn register(
        platform: Platform,
        mut state: State,
        server: &str,
        phone: Phone,
        code: &str,
        pin: Option<&str>,
        device_name: &str,
        ca: Option<&[u8]>,
    ) -> Result<Client> {
        if state.is_registered() {
            return Err(ClientError::State(
                "this home is already registered; use another --home for another device".into(),
            ));
        }
        sirr_crypto::account::check_device_name(device_name)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let conn = Connection::open(&platform, server, ca).await?;
        let r = conn
            .request(Request::Register {
                phone: phone.clone(),
                code: code.to_owned(),
                pin: pin.map(|p| sirr_proto::Pin(p.to_owned())),
            })
            .await;
        conn.close().await;
        let Response::Registered {
            account,
            device,
            secret,
            new_account,
        } = r?
        else {
            return Err(ClientError::Protocol("unexpected answer to Register".into()));
        };
        if let Some(pem) = ca {
            state.save_server_ca(pem).await?;
        }
        let creds = Credentials {
            server: server.to_owned(),
            phone,
            account,
            device,
            secret: secret.to_hex(),
        };
        // The identity first: a home with credentials but no identity could not be opened.
        // A new account gets its account key here; a device added to an existing account by
        // phone alone has none, and contacts refuse it until the account approves it.
        let account_key = new_account.then(|| sirr_crypto::AccountKey::generate(&mut rand::rng()));
        let profile_key = account_key
            .is_some()
            .then(|| sirr_crypto::ProfileKey::generate(&mut rand::rng()));
        let keys = keys::Keys::create(
            &state,
            keys::Keys::new_identity(account, device),
            account_key,
            profile_key,
        )
        .await?;
        if new_account {
            state.set(devices::FIRST_DEVICE, b"1").await?;
        }
        state.set(devices::PENDING_NAME, device_name.as_bytes()).await?;
        state.save_credentials(&creds).await?;
        let mut client = Client {
            platform,
            state,
            creds,
            keys,
            conn: None,
            anon: None,
            drained: false,
        };
        // Publish the device list and upload KeyPackages now, so others can write at once.
        client.connect().await?;
        client.disconnect().await;
        Ok(client)
    }

    /// Delete this account at the server (every device, key and queued message of it), then
    /// this home directory's state. Irreversible: the number can register anew, as a new
    /// account with a new safety number.
    pub async fn delete_account(mut self) -> Result<()> {
        match self.conn()?.request(Request::DeleteAccount).await? {
            Response::Done => {}
            other => return Err(unexpected(other)),
        }
        self.disconnect().await;
        self.state.wipe().await
    }

    /// Everything the server holds about this account, as the server's JSON document.
    pub async fn export_account(&self) -> Result<serde_json::Value> {
        match self.conn()?.request(Request::ExportAccount).await? {
            Response::AccountExport { json } => {
                serde_json::from_str(&json).map_err(|e| ClientError::Protocol(format!("export: {e}")))
            }
            other => Err(unexpected(other)),
        }
    }

    /// This account's disclosure ledger, verified: each entry's hash is recomputed, each links to
    /// the one before, and the newest entry this device saw last time must still be there
    /// unchanged (so the server cannot rewrite history it already showed). The newest head is
    /// then remembered.
    pub async fn disclosures(&self) -> Result<Vec<sirr_proto::Disclosure>> {
        let entries = match self.conn()?.request(Request::Disclosures).await? {
            Response::Disclosures { entries } => entries,
            other => return Err(unexpected(other)),
        };
        verify_ledger(&entries, self.state.get(LEDGER_HEAD).await?.as_deref())?;
        if let Some(last) = entries.last() {
            let mut head = last.seq.to_be_bytes().to_vec();
            head.extend_from_slice(&last.hash);
            self.state.set(LEDGER_HEAD, &head).await?;
        }
        Ok(entries)
    }

    /// Lock this device's keys with a passphrase (or remove it with `None`).
    pub async fn set_passphrase(&mut self, passphrase: Option<&str>) -> Result<()> {
        if passphrase.is_some_and(|p| p.chars().count() < 8) {
            return Err(ClientError::Invalid(
                "a passphrase has at least 8 characters".into(),
            ));
        }
        self.state.set_passphrase(passphrase).await
    }

    /// Turn this account's registration lock on with `pin`, or off with `None`: while on,
    /// registering the number on a new device needs the PIN. Only a device on the account's
    /// signed device list may change it. Returns whether the lock is now on.
    pub async fn set_registration_lock(&self, pin: Option<&str>) -> Result<bool> {
        let pin = pin.map(|p| sirr_proto::Pin(p.to_owned()));
        match self.conn()?.request(Request::SetRegistrationLock { pin }).await? {
            Response::RegistrationLock { enabled } => Ok(enabled),
            other => Err(unexpected(other)),
        }
    }

    /// Whether this account's registration lock is on.
    pub async fn registration_lock(&self) -> Result<bool> {
        match self.conn()?.request(Request::RegistrationLockStatus).await? {
            Response::RegistrationLock { enabled } => Ok(enabled),
            other => Err(unexpected(other)),
        }
    }

    /// Whether this device holds the account key (it can approve and remove devices). A
    /// device registered by phone on an existing account does not, and contacts refuse it.
    pub fn holds_account_key(&self) -> bool {
        self.keys.account_key.is_some()
    }

    /// Open an already registered home directory with the native platform.
    #[cfg(feature = "native")]
    pub async fn open(home: &Path) -> Result<Client> {
        Self::open_with(home, None).await
    }

    /// Open a home directory whose key is locked with `passphrase` (if `Some`), with the
    /// native platform.
    #[cfg(feature = "native")]
    pub async fn open_with(home: &Path, passphrase: Option<&str>) -> Result<Client> {
        if !home.join("credentials.json").exists() {
            return Err(ClientError::State(format!(
                "{} is not registered; run `sirr --home {} register ...` first",
                home.display(),
                home.display()
            )));
        }
        let mut state = State::open(home)?;
        if let Some(p) = passphrase {
            state.unlock(p);
        }
        Self::load(Platform::native(), state).await
    }

    /// A client for the registered `state` (unlocked with [`State::unlock`] first if its key
    /// has a passphrase), running on `platform`.
    pub async fn load(platform: Platform, state: State) -> Result<Client> {
        let creds = state.credentials()?;
        let keys = keys::Keys::load(&state).await?;
        // Disappeared messages go before anything else can show them.
        state.purge_expired(platform.now_ms()).await?;
        Ok(Client {
            platform,
            state,
            creds,
            keys,
            conn: None,
            anon: None,
            drained: false,
        })
    }

    /// The platform this client runs on.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }

    /// Milliseconds since the Unix epoch, by the platform's clock.
    pub(crate) fn now_ms(&self) -> u64 {
        self.platform.now_ms()
    }

    pub fn identity(&self) -> Identity {
        Identity {
            server: self.creds.server.clone(),
            phone: self.creds.phone.to_string(),
            account: self.creds.account.to_string(),
            device: self.creds.device.0,
        }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Open an authenticated session. The server starts pushing queued messages at once.
    pub async fn connect(&mut self) -> Result<()> {
        let conn = Connection::open(
            &self.platform,
            &self.creds.server,
            self.state.server_ca().as_deref(),
        )
        .await?;
        let r = conn
            .request(Request::Hello {
                protocol: PROTOCOL_VERSION,
                account: self.creds.account,
                device: self.creds.device,
                secret: self.creds.secret()?,
            })
            .await?;
        let Response::Welcome { key_packages, .. } = r else {
            return Err(unexpected(r));
        };
        self.conn = Some(conn);
        self.drained = false;
        self.refresh_own_devices().await?;
        self.publish_first_device_list().await?;
        self.refill_key_packages(key_packages).await?;
        self.upload_access_key().await?;
        self.upload_device_name().await?;
        Ok(())
    }

    fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_ref()
            .ok_or_else(|| ClientError::State("not connected".into()))
    }

    pub async fn disconnect(&mut self) {
        if let Some(c) = self.conn.take() {
            c.close().await;
        }
        if let Some(c) = self.anon.take() {
            c.close().await;
        }
    }

    /// This account's devices, as the server lists them, with their names opened.
    pub async fn devices(&self) -> Result<Vec<devices::Device>> {
        Ok(self
            .listed_devices()
            .await?
            .into_iter()
            .map(|d| devices::Device {
                id: d.id,
                name: self.open_device_name(d.id, d.sealed_name.as_ref().map(|b| &b[..])),
                created_day: d.created_day,
            })
            .collect())
    }

    async fn listed_devices(&self) -> Result<Vec<DeviceInfo>> {
        match self.conn()?.request(Request::ListDevices).await? {
            Response::Devices { devices } => Ok(devices),
            other => Err(unexpected(other)),
        }
    }

    async fn refresh_own_devices(&self) -> Result<()> {
        let ids: Vec<DeviceId> = self.listed_devices().await?.into_iter().map(|d| d.id).collect();
        self.state.set_own_devices(&ids).await
    }

    /// Remove one of this account's devices. Removing this very device ends the session: its
    /// credential stops working, and this home directory must register again to be used.
    pub async fn remove_device(&mut self, device: DeviceId) -> Result<()> {
        self.conn()?.request(Request::RemoveDevice { device }).await?;
        if device == self.creds.device {
            self.disconnect().await;
            return Ok(());
        }
        self.refresh_own_devices().await?;
        self.unlist_device(device).await?;
        let own = self.state.own_devices().await?;
        self.sync_own_devices_everywhere(own).await
    }

    /// Find `phone`'s account via the directory and remember it.
    async fn lookup(&self, phone: &Phone) -> Result<Option<(AccountId, Vec<DeviceId>)>> {
        let found = self.directory(phone).await?;
        if let Some((account, devices)) = &found {
            self.state.set_contact(phone, *account, devices).await?;
        }
        Ok(found)
    }

    /// Ask the directory for `phone`'s account, without storing the answer.
    async fn directory(&self, phone: &Phone) -> Result<Option<(AccountId, Vec<DeviceId>)>> {
        let r = self
            .conn()?
            .request(Request::Lookup {
                phones: vec![phone.clone()],
            })
            .await?;
        let Response::Directory { entries } = r else {
            return Err(unexpected(r));
        };
        Ok(entries
            .into_iter()
            .find(|e| &e.phone == phone)
            .map(|e| (e.account, e.devices)))
    }

    /// Receive what the server has queued for this device: store each message locally, then
    /// acknowledge it. Waits up to `wait` for a first message if none is queued, then drains what
    /// keeps arriving until the stream is idle. Returns how many new messages were stored.
    pub async fn receive(&mut self, wait: Duration) -> Result<usize> {
        // A handle of its own: `self.conn` is borrowed mutably while the clock is read.
        let clock = self.platform.clock.clone();
        let deadline = clock.now_ms().saturating_add(wait.as_millis() as u64);
        let mut queue_empty = self.drained;
        let mut new = 0;
        let mut got_any = false;
        loop {
            let timeout = if !queue_empty {
                Duration::from_secs(30)
            } else if got_any {
                IDLE
            } else {
                Duration::from_millis(deadline.saturating_sub(clock.now_ms()).max(1))
            };
            let conn = self
                .conn
                .as_mut()
                .ok_or_else(|| ClientError::State("not connected".into()))?;
            let Some(event) = conn.next_event(timeout).await else {
                if !queue_empty {
                    return Err(ClientError::Connection(
                        "the server did not deliver the queue in time".into(),
                    ));
                }
                if got_any || clock.now_ms() >= deadline {
                    return Ok(new);
                }
                continue;
            };
            // Take everything already buffered, file the messages (one store commit each), ack them,
            // then act on any notice that came in between.
            let mut batch = Vec::new();
            let mut notice = None;
            let mut next = Some(event);
            while let Some(ev) = next.take() {
                match ev {
                    Event::Message(env) => {
                        batch.push(env);
                        next = conn.next_event(Duration::ZERO).await;
                    }
                    other => notice = Some(other),
                }
            }
            if !batch.is_empty() {
                new += self.accept(batch).await?;
                if queue_empty {
                    got_any = true;
                }
            }
            match notice {
                None | Some(Event::Message(_)) => {}
                Some(Event::QueueEmpty) => {
                    queue_empty = true;
                    self.drained = true;
                    if new > 0 {
                        got_any = true;
                    }
                }
                Some(Event::Closing(e)) => return Err(ClientError::Server(e)),
                Some(Event::Disconnected(why)) => return Err(ClientError::Connection(why)),
            }
        }
    }

    /// Messages stored but not yet shown, oldest first; they are marked shown.
    pub async fn take_unread(&self) -> Result<Vec<StoredMessage>> {
        self.state.purge_expired(self.now_ms()).await?;
        self.state.take_unprinted().await
    }
}

/// Where the newest verified ledger entry (seq ‖ hash) is remembered.
const LEDGER_HEAD: &str = "ledger head";

/// Check a disclosure ledger's hash chain, and that it still holds `head` (seq ‖ hash) if given.
pub fn verify_ledger(entries: &[sirr_proto::Disclosure], head: Option<&[u8]>) -> Result<()> {
    let broken = |seq: u64, why: &str| {
        Err(ClientError::Invalid(format!(
            "the disclosure ledger does not verify at entry {seq}: {why}"
        )))
    };
    let mut prev = [0u8; 32];
    for (i, e) in entries.iter().enumerate() {
        if e.seq != i as u64 + 1 {
            return broken(e.seq, "an entry is missing or out of order");
        }
        if e.prev_hash != prev {
            return broken(e.seq, "it does not follow the entry before");
        }
        if sirr_proto::disclosure_hash(&e.prev_hash, e.seq, e.at_ms, &e.recipient, &e.what) != e.hash {
            return broken(e.seq, "its content was changed after it was written");
        }
        prev = e.hash;
    }
    if let Some(head) = head.filter(|h| h.len() == 40) {
        let seq = u64::from_be_bytes(head[..8].try_into().expect("length checked"));
        let ok = entries
            .get((seq as usize).wrapping_sub(1))
            .is_some_and(|e| e.hash[..] == head[8..]);
        if !ok {
            return broken(
                seq,
                "this device saw it before, and it has been rewritten or removed since",
            );
        }
    }
    Ok(())
}

pub(crate) fn check_text(text: &str) -> Result<()> {
    if text.len() > MAX_TEXT {
        return Err(ClientError::Invalid(format!(
            "message is {} bytes; the limit is {MAX_TEXT} bytes",
            text.len()
        )));
    }
    Ok(())
}

pub(crate) fn unexpected(r: Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer from server: {r:?}"))
}

//! The Sirr client SDK.
//!
//! [`Client`] is one registered device with its home directory. It talks to `sirrd` only through
//! the wire protocol in `sirr-proto` (it never depends on the server crate), and keeps its state
//! in the home directory (see [`state`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sirr_client::ClientError> {
//! use sirr_client::Client;
//! use sirr_proto::Phone;
//! let home = std::path::Path::new("/tmp/alice");
//! let mut alice = Client::register(home, "http://127.0.0.1:7700", Phone::parse("+15550000001").unwrap(), "000000", "laptop", None).await?;
//! alice.connect().await?;
//! alice.send_text(&Phone::parse("+15550000002").unwrap(), "hello").await?;
//! # Ok(()) }
//! ```

mod connection;
mod error;
pub mod state;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngCore;
use sha2::{Digest, Sha256};
use sirr_proto::content::{Body, Content, ConversationId};
use sirr_proto::{
    AccountId, DeviceId, DeviceInfo, Envelope, ErrorCode, MessageId, PROTOCOL_VERSION, Phone, Recipient,
    Request, Response,
};

pub use connection::{Connection, Event, tls_config, websocket_url};
pub use error::{ClientError, Result};
use state::{Credentials, State, StoredMessage};

/// Longest text message, in bytes. Longer content belongs in an attachment.
pub const MAX_TEXT: usize = 64 * 1024;
/// How long `receive` keeps reading after the last message before it returns.
const IDLE: Duration = Duration::from_millis(250);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The conversation id of a one-to-one chat: the same for both accounts.
pub fn direct_conversation(a: AccountId, b: AccountId) -> ConversationId {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = Sha256::new();
    h.update(b"sirr direct conversation v1");
    h.update(lo.0);
    h.update(hi.0);
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    ConversationId(id)
}

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
    state: State,
    creds: Credentials,
    conn: Option<Connection>,
    /// The server said this session's initial queue has been pushed (it says so once).
    drained: bool,
}

impl Client {
    /// Ask the server to send a verification code to `phone`. Returns seconds until it expires.
    pub async fn request_code(server: &str, phone: &Phone, ca: Option<&[u8]>) -> Result<u32> {
        let conn = Connection::connect(server, ca).await?;
        let r = conn.request(Request::RequestCode { phone: phone.clone() }).await;
        conn.close().await;
        match r? {
            Response::CodeSent { expires_in } => Ok(expires_in),
            other => Err(unexpected(other)),
        }
    }

    /// Register this home directory as a new device of `phone`'s account.
    pub async fn register(
        home: &Path,
        server: &str,
        phone: Phone,
        code: &str,
        device_name: &str,
        ca: Option<&[u8]>,
    ) -> Result<Client> {
        let state = State::open(home)?;
        if state.is_registered() {
            return Err(ClientError::State(format!(
                "{} is already registered; use another --home for another device",
                home.display()
            )));
        }
        let conn = Connection::connect(server, ca).await?;
        let r = conn
            .request(Request::Register {
                phone: phone.clone(),
                code: code.to_owned(),
                device_name: device_name.to_owned(),
            })
            .await;
        conn.close().await;
        let Response::Registered {
            account,
            device,
            secret,
            ..
        } = r?
        else {
            return Err(ClientError::Protocol("unexpected answer to Register".into()));
        };
        if let Some(pem) = ca {
            state.save_server_ca(pem)?;
        }
        let creds = Credentials {
            server: server.to_owned(),
            phone,
            account,
            device,
            secret: secret.to_hex(),
        };
        state.save_credentials(&creds)?;
        Ok(Client {
            state,
            creds,
            conn: None,
            drained: false,
        })
    }

    /// Open an already registered home directory.
    pub fn open(home: &Path) -> Result<Client> {
        if !home.join("credentials.json").exists() {
            return Err(ClientError::State(format!(
                "{} is not registered; run `sirr --home {} register ...` first",
                home.display(),
                home.display()
            )));
        }
        let state = State::open(home)?;
        let creds = state.credentials()?;
        Ok(Client {
            state,
            creds,
            conn: None,
            drained: false,
        })
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
        let conn = Connection::connect(&self.creds.server, self.state.server_ca().as_deref()).await?;
        let r = conn
            .request(Request::Hello {
                protocol: PROTOCOL_VERSION,
                account: self.creds.account,
                device: self.creds.device,
                secret: self.creds.secret()?,
            })
            .await?;
        let Response::Welcome { .. } = r else {
            return Err(unexpected(r));
        };
        self.conn = Some(conn);
        self.drained = false;
        self.refresh_own_devices().await?;
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
    }

    /// This account's devices, as the server lists them.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>> {
        match self.conn()?.request(Request::ListDevices).await? {
            Response::Devices { devices } => Ok(devices),
            other => Err(unexpected(other)),
        }
    }

    async fn refresh_own_devices(&self) -> Result<()> {
        let ids: Vec<DeviceId> = self.devices().await?.into_iter().map(|d| d.id).collect();
        self.state.set_own_devices(&ids)
    }

    /// Remove one of this account's devices. Removing this very device ends the session: its
    /// credential stops working, and this home directory must register again to be used.
    pub async fn remove_device(&mut self, device: DeviceId) -> Result<()> {
        self.conn()?.request(Request::RemoveDevice { device }).await?;
        if device == self.creds.device {
            self.disconnect().await;
            return Ok(());
        }
        self.refresh_own_devices().await
    }

    /// Find `phone`'s account via the directory and remember it.
    async fn lookup(&self, phone: &Phone) -> Result<Option<(AccountId, Vec<DeviceId>)>> {
        let r = self
            .conn()?
            .request(Request::Lookup {
                phones: vec![phone.clone()],
            })
            .await?;
        let Response::Directory { entries } = r else {
            return Err(unexpected(r));
        };
        let Some(e) = entries.into_iter().find(|e| &e.phone == phone) else {
            return Ok(None);
        };
        self.state.set_contact(phone, e.account, &e.devices)?;
        Ok(Some((e.account, e.devices)))
    }

    /// Send a text to `to`. Returns once the server has stored it durably for every device of
    /// the recipient (and this account's other devices).
    pub async fn send_text(&mut self, to: &Phone, text: &str) -> Result<MessageId> {
        if text.len() > MAX_TEXT {
            return Err(ClientError::Invalid(format!(
                "message is {} bytes; the limit is {MAX_TEXT} bytes",
                text.len()
            )));
        }
        let (account, mut devices) = match self.state.contact(to)? {
            Some(c) => c,
            None => self
                .lookup(to)
                .await?
                .ok_or_else(|| ClientError::NotOnSirr(to.to_string()))?,
        };
        let conversation = direct_conversation(self.creds.account, account);
        let content = Content {
            conversation,
            from: self.creds.phone.clone(),
            to: to.clone(),
            sent_at: now_ms(),
            body: Body::Text(text.to_owned()),
        };
        let payload = content.seal();
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let message_id = MessageId(id);
        for _attempt in 0..4 {
            let mut recipients = vec![Recipient {
                account,
                devices: devices.clone(),
            }];
            if account != self.creds.account {
                let mine: Vec<DeviceId> = self
                    .state
                    .own_devices()?
                    .into_iter()
                    .filter(|d| *d != self.creds.device)
                    .collect();
                if !mine.is_empty() {
                    recipients.push(Recipient {
                        account: self.creds.account,
                        devices: mine,
                    });
                }
            } else {
                recipients[0].devices.retain(|d| *d != self.creds.device);
            }
            let r = self
                .conn()?
                .request(Request::Send {
                    message_id,
                    to: recipients,
                    payload: payload.clone(),
                    epoch: None,
                })
                .await;
            match r {
                Ok(Response::Sent { .. }) => {
                    let stored = StoredMessage {
                        message_id: String::new(),
                        conversation: String::new(),
                        direction: "out".into(),
                        from: self.creds.phone.to_string(),
                        to: to.to_string(),
                        from_device: self.creds.device.0,
                        text: text.to_owned(),
                        sent_at: content.sent_at,
                        received_at: now_ms(),
                        verified: true,
                    };
                    self.state
                        .store_messages(&[(message_id, stored, conversation.0)])?;
                    self.state.mark_printed(&message_id)?;
                    return Ok(message_id);
                }
                Ok(other) => return Err(unexpected(other)),
                Err(ClientError::Server(e)) if e.code == ErrorCode::StaleDevices => {
                    for r in &e.devices {
                        if r.account == self.creds.account {
                            let mut all = r.devices.clone();
                            all.push(self.creds.device);
                            all.sort();
                            self.state.set_own_devices(&all)?;
                        }
                        if r.account == account {
                            devices = r.devices.clone();
                            self.state.set_contact_devices(account, &devices)?;
                        }
                    }
                }
                Err(ClientError::Server(e)) if e.code == ErrorCode::UnknownRecipient => {
                    // The number may have re-registered as a new account: look it up afresh.
                    return match self.lookup(to).await? {
                        Some((fresh, _)) if fresh != account => Box::pin(self.send_text(to, text)).await,
                        _ => Err(ClientError::NotOnSirr(to.to_string())),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Protocol(
            "recipient devices kept changing; try again".into(),
        ))
    }

    /// Receive what the server has queued for this device: store each message locally, then
    /// acknowledge it. Waits up to `wait` for a first message if none is queued, then drains what
    /// keeps arriving until the stream is idle. Returns how many new messages were stored.
    pub async fn receive(&mut self, wait: Duration) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut queue_empty = self.drained;
        let mut new = 0;
        let mut got_any = false;
        loop {
            let timeout = if !queue_empty {
                Duration::from_secs(30)
            } else if got_any {
                IDLE
            } else {
                deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_millis(1))
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
                if got_any || tokio::time::Instant::now() >= deadline {
                    return Ok(new);
                }
                continue;
            };
            // Take everything already buffered, store the messages in one transaction, ack them,
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

    async fn accept(&mut self, batch: Vec<Envelope>) -> Result<usize> {
        let mut rows = Vec::with_capacity(batch.len());
        let mut seqs = Vec::with_capacity(batch.len());
        for env in batch {
            seqs.push(env.seq);
            let content = match Content::open(&env.payload) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(from = %env.from, error = %e, "dropping a message that cannot be read");
                    continue;
                }
            };
            let verified = self.sender_matches(&content.from, env.from.account).await?;
            let Body::Text(text) = content.body;
            let direction = if env.from.account == self.creds.account {
                "out"
            } else {
                "in"
            };
            rows.push((
                env.message_id,
                StoredMessage {
                    message_id: String::new(),
                    conversation: String::new(),
                    direction: direction.into(),
                    from: content.from.to_string(),
                    to: content.to.to_string(),
                    from_device: env.from.device.0,
                    text,
                    sent_at: content.sent_at,
                    received_at: now_ms(),
                    verified,
                },
                content.conversation.0,
            ));
        }
        let new = self.state.store_messages(&rows)?;
        // Only after the local commit: a crash before this line means redelivery, not loss.
        self.conn()?.ack(seqs).await?;
        Ok(new)
    }

    /// Does the phone number a message claims belong to the account the server says sent it?
    async fn sender_matches(&self, claimed: &Phone, account: AccountId) -> Result<bool> {
        if claimed == &self.creds.phone {
            return Ok(account == self.creds.account);
        }
        if let Some((a, _)) = self.state.contact(claimed)?
            && a == account
        {
            return Ok(true);
        }
        Ok(self.lookup(claimed).await?.is_some_and(|(a, _)| a == account))
    }

    /// Messages stored but not yet shown, oldest first; they are marked shown.
    pub fn take_unread(&self) -> Result<Vec<StoredMessage>> {
        self.state.take_unprinted()
    }
}

fn unexpected(r: Response) -> ClientError {
    ClientError::Protocol(format!("unexpected answer from server: {r:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_conversation_is_symmetric_and_distinct() {
        let a = AccountId([1; 16]);
        let b = AccountId([2; 16]);
        let c = AccountId([3; 16]);
        assert_eq!(direct_conversation(a, b), direct_conversation(b, a));
        assert_ne!(direct_conversation(a, b), direct_conversation(a, c));
    }
}

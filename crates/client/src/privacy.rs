//! The account's privacy choices as the client applies them: consents (kept at the server, so
//! every device of the account follows the same choice), read receipts (sent only with that
//! consent), last-seen, and disappearing-message timers.

use sirr_proto::content::{Body, ConversationId};
use sirr_proto::{ConsentState, MessageId, Phone, Purpose, Request, Response};

use crate::state::StoredMessage;
use crate::{Client, ClientError, Result, unexpected};

/// Where a disappearing-message timer applies: a one-to-one chat or a group.
#[derive(Clone, Debug)]
pub enum Chat {
    Direct(Phone),
    Group(String),
}

/// Where the delivery token last uploaded is remembered.
const ACCESS_KEY: &str = "access key uploaded";

impl Client {
    /// Give the server this account's sealed-sender delivery token (only its hash is kept),
    /// once per token.
    pub(crate) async fn upload_access_key(&mut self) -> Result<()> {
        let Some(p) = &self.keys.profile_key else {
            return Ok(());
        };
        let token = p.access_key();
        if self.state.get(ACCESS_KEY).await?.as_deref() == Some(&token[..]) {
            return Ok(());
        }
        match self
            .conn()?
            .request(Request::SetAccessKey { access_key: token })
            .await?
        {
            Response::Done => self.state.set(ACCESS_KEY, &token).await,
            other => Err(unexpected(other)),
        }
    }

    /// The server's region and every consent of this account.
    pub async fn consents(&self) -> Result<(String, Vec<ConsentState>)> {
        match self.conn()?.request(Request::Consents).await? {
            Response::Consents { region, consents } => Ok((region, consents)),
            other => Err(unexpected(other)),
        }
    }

    /// Turn an optional use of this account's data on or off; in force from the server's answer.
    pub async fn set_consent(&self, purpose: Purpose, granted: bool) -> Result<Vec<ConsentState>> {
        match self
            .conn()?
            .request(Request::SetConsent { purpose, granted })
            .await?
        {
            Response::Consents { consents, .. } => Ok(consents),
            other => Err(unexpected(other)),
        }
    }

    async fn allows(&self, purpose: Purpose) -> Result<bool> {
        Ok(self
            .consents()
            .await?
            .1
            .iter()
            .any(|c| c.purpose == purpose && c.granted))
    }

    /// The day (days since the Unix epoch) `phone` last connected, if they let you see it:
    /// they must have turned last-seen on and written to you (their messages carry the profile
    /// key whose delivery token the server asks for).
    pub async fn last_seen(&self, phone: &Phone) -> Result<Option<u32>> {
        let account = self.account_of(phone).await?;
        let access_key = self
            .state
            .profile_key(account)
            .await?
            .map(|k| sirr_crypto::ProfileKey(k).access_key());
        match self
            .conn()?
            .request(Request::LastSeen { account, access_key })
            .await?
        {
            Response::LastSeen { day } => Ok(day),
            other => Err(unexpected(other)),
        }
    }

    /// Tell the senders of these shown messages that they were read, if this account allows
    /// read receipts (asked of the server each time, so turning them off takes effect at once).
    /// One-to-one chats only: in a group, a receipt would go to every member. Returns how many
    /// receipts were sent.
    pub async fn send_read_receipts(&mut self, shown: &[StoredMessage]) -> Result<usize> {
        let mut by_chat: Vec<(ConversationId, Vec<MessageId>)> = Vec::new();
        for m in shown.iter().filter(|m| m.direction == "in" && m.group.is_none()) {
            let (Ok(conv), Ok(id)) = (
                m.conversation.parse::<ConversationId>(),
                m.message_id.parse::<MessageId>(),
            ) else {
                continue;
            };
            match by_chat.iter_mut().find(|(c, _)| *c == conv) {
                Some((_, ids)) => ids.push(id),
                None => by_chat.push((conv, vec![id])),
            }
        }
        if by_chat.is_empty() || !self.allows(Purpose::ReadReceipts).await? {
            return Ok(0);
        }
        let n = by_chat.len();
        for (conv, ids) in by_chat {
            self.send_content(conv, Body::Read(ids)).await?;
        }
        Ok(n)
    }

    /// Set (or with `None`, clear) the disappearing-message timer of a chat, for every member:
    /// from now on, messages there disappear that many seconds after they are stored, on every
    /// device, and the server drops undelivered copies after as long.
    pub async fn set_timer(&mut self, chat: &Chat, seconds: Option<u32>) -> Result<()> {
        if seconds == Some(0) {
            return Err(ClientError::Invalid("a timer needs at least one second".into()));
        }
        let id = match chat {
            Chat::Direct(phone) => self.open_direct(phone).await?,
            Chat::Group(name) => self.group(name).await?.id,
        };
        self.send_content(id, Body::Timer(seconds)).await?;
        self.state.set_timer(id, seconds).await
    }
}

//! Standing up to abuse from the client: blocking, reporting with message franking (the
//! reported messages are revealed with the openings that prove who sent them), and appealing a
//! ban of one's own account.

use sirr_proto::{Phone, ReportedMessage, Request, Response};

use crate::{Client, ClientError, Connection, Result, unexpected};

impl Client {
    /// Stop showing `phone`'s messages on this device, and tell the server (a signal about
    /// that account; the server keeps no block list).
    pub async fn block(&self, phone: &Phone) -> Result<()> {
        let account = self.account_of(phone).await?;
        self.state.block(account).await?;
        match self.conn()?.request(Request::Block { account }).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Report the last `n` messages `phone` sent to this device. They are revealed to the
    /// operator; the server checks each against its franking and answers how many it could
    /// verify as really sent by that account.
    pub async fn report(&self, phone: &Phone, n: usize) -> Result<(usize, u32)> {
        let account = self.account_of(phone).await?;
        let franked = self.state.franked_from(account, n.clamp(1, 50)).await?;
        if franked.is_empty() {
            return Err(ClientError::Invalid(format!(
                "no message from {phone} on this device to report"
            )));
        }
        let messages: Vec<ReportedMessage> = franked.into_iter().map(|f| f.opening).collect();
        let sent = messages.len();
        match self
            .conn()?
            .request(Request::Report { account, messages })
            .await?
        {
            Response::Reported { verified } => Ok((sent, verified)),
            other => Err(unexpected(other)),
        }
    }

    /// Ask for this (banned) account's ban to be reviewed. Uses the device credential on an
    /// unauthenticated connection, since a banned device can no longer sign in.
    pub async fn appeal(&self, text: &str) -> Result<()> {
        let conn = Connection::open(
            &self.platform,
            &self.creds.server,
            self.state.server_ca().as_deref(),
        )
        .await?;
        let r = conn
            .request(Request::Appeal {
                account: self.creds.account,
                device: self.creds.device,
                secret: self.creds.secret()?,
                text: text.to_owned(),
            })
            .await;
        conn.close().await;
        match r? {
            Response::Done => Ok(()),
            other => Err(unexpected(other)),
        }
    }
}

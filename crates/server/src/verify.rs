//! Delivery of verification codes to phones, behind a trait so an operator can plug in any SMS
//! gateway.

use std::time::Duration;

use async_trait::async_trait;
use sirr_proto::Phone;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("SMS gateway unreachable: {0}")]
    Unreachable(String),
    #[error("SMS gateway refused the request with status {0}")]
    Refused(u16),
}

/// Sends a verification code to a phone number. Implementations must not log the code, except
/// [`LogSender`], which exists for development only.
#[async_trait]
pub trait VerificationSender: Send + Sync + 'static {
    async fn send(&self, phone: &Phone, code: &str) -> Result<(), SendError>;
}

/// Development sender: writes the code to the server log. Only `--dev` uses it.
pub struct LogSender;

#[async_trait]
impl VerificationSender for LogSender {
    async fn send(&self, phone: &Phone, code: &str) -> Result<(), SendError> {
        tracing::warn!(%phone, code, "DEV MODE verification code (a real server sends this by SMS)");
        Ok(())
    }
}

/// Posts `{"phone","code","message"}` as JSON to an SMS gateway's webhook.
pub struct WebhookSender {
    url: String,
    http: reqwest::Client,
}

impl WebhookSender {
    pub fn new(url: String, tls: rustls::ClientConfig) -> Result<Self, SendError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| SendError::Unreachable(e.to_string()))?;
        Ok(Self { url, http })
    }
}

#[derive(serde::Serialize)]
struct WebhookBody<'a> {
    phone: &'a str,
    code: &'a str,
    message: String,
}

#[async_trait]
impl VerificationSender for WebhookSender {
    async fn send(&self, phone: &Phone, code: &str) -> Result<(), SendError> {
        let body = WebhookBody {
            phone: phone.as_str(),
            code,
            message: format!("Your Sirr code is {code}. Do not share it with anyone."),
        };
        let resp = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::Unreachable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(SendError::Refused(resp.status().as_u16()));
        }
        Ok(())
    }
}

//! What the UI sees: sirr-client's records turned into the plain shapes of `web/src/core.ts`
//! (`Message`, `ConversationSummary`, `CoreError`, ...), as JSON the TypeScript adapter parses.
//! Pure functions only: no store, no network.
#![cfg(target_arch = "wasm32")]

use serde::Serialize;
use sirr_client::ClientError;
use sirr_client::state::{ConversationRow, StoredMessage};
use sirr_proto::ErrorCode;

/// `Identity` of core.ts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityView {
    pub phone: String,
    pub device: String,
    pub device_name: String,
}

/// `Message` of core.ts. Notices (an undecryptable message, a contact's new keys) are
/// `direction: "notice"`: something to read that nobody typed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    pub conversation: String,
    pub direction: &'static str,
    pub from: String,
    pub text: String,
    pub time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

pub fn message(m: &StoredMessage) -> MessageView {
    let direction = match m.direction.as_str() {
        "in" => "in",
        "out" => "out",
        _ => "notice",
    };
    MessageView {
        id: m.message_id.clone(),
        conversation: m.conversation.clone(),
        direction,
        from: m.from.clone(),
        text: m.text.clone(),
        time: m.sent_at,
        // Stored outgoing messages were accepted by the server (send_text returns after that);
        // delivery and read receipts are not tracked yet.
        state: (direction == "out").then_some("sent"),
        expires_at: m.expires_at,
    }
}

/// `ConversationSummary` of core.ts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummaryView {
    pub id: String,
    pub kind: &'static str,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<String>,
    pub unread: usize,
    pub time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timer_seconds: Option<u32>,
}

/// A conversation row with its newest message, how many incoming ones are unread, and its
/// disappearing-message timer.
pub fn summary(
    row: &ConversationRow,
    last: Option<&StoredMessage>,
    unread: usize,
    timer: Option<u32>,
) -> SummaryView {
    let (kind, title) = match (&row.name, &row.peer) {
        (Some(name), _) => ("group", name.clone()),
        (None, Some(peer)) => ("direct", peer.clone()),
        (None, None) => ("direct", String::new()),
    };
    SummaryView {
        id: row.id.to_string(),
        kind,
        title,
        last_message: last.map(|m| m.text.clone()),
        unread,
        time: last.map_or(0, |m| m.received_at),
        timer_seconds: timer.filter(|s| *s > 0),
    }
}

/// Unread messages among `recent` (newest last): incoming ones that arrived after `read_up_to`
/// (ms since the epoch, by this device's clock).
pub fn unread(recent: &[StoredMessage], read_up_to: u64) -> usize {
    recent
        .iter()
        .filter(|m| m.direction == "in" && m.received_at > read_up_to)
        .count()
}

/// `CoreError` of core.ts: a stable code, a message, and for `rate_limited` when to retry.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorView {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u32>,
}

impl ErrorView {
    pub fn new(code: &'static str, message: impl Into<String>) -> ErrorView {
        ErrorView {
            code,
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

/// The UI's reason for a client error.
pub fn error(e: &ClientError) -> ErrorView {
    let code = match e {
        ClientError::Server(body) => {
            let code = match body.code {
                ErrorCode::RateLimited | ErrorCode::Overloaded => "rate_limited",
                ErrorCode::TooLarge => "too_large",
                ErrorCode::UnknownRecipient => "not_found",
                ErrorCode::NotMember => "not_member",
                ErrorCode::LinkExpired | ErrorCode::InvalidCode | ErrorCode::CodeExpired => "invalid_code",
                ErrorCode::Banned => "blocked",
                _ => "internal",
            };
            return ErrorView {
                code,
                message: body.message.clone(),
                retry_after_ms: body.retry_after_ms,
            };
        }
        ClientError::Connection(_) => "offline",
        ClientError::State(why) if why.contains("not connected") => "offline",
        ClientError::NotOnSirr(_) => "not_found",
        ClientError::Invalid(_) => "invalid",
        ClientError::Store(_) => "storage",
        _ => "internal",
    };
    ErrorView::new(code, e.to_string())
}

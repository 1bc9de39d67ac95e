//! What the UI sees: sirr-client's records turned into the plain shapes of `web/src/core.ts`
//! (`Message`, `ConversationSummary`, `CoreError`, ...), as JSON the TypeScript adapter parses.
//! Pure functions only: no store, no network (so they are unit-tested natively too).

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

/// Read receipts are stored as rows of their own (`direction: "read"`, the ids in `text`):
/// the ids of the messages `m` says were read, if it is one.
pub fn read_ids(m: &StoredMessage) -> Option<impl Iterator<Item = &str>> {
    (m.direction == "read").then(|| m.text.split_whitespace())
}

/// A page of stored rows as the UI shows it: receipts are not messages, they mark the
/// outgoing messages of the page they name as `read`.
pub fn page(rows: &[StoredMessage]) -> Vec<MessageView> {
    let read: std::collections::HashSet<&str> = rows.iter().filter_map(read_ids).flatten().collect();
    rows.iter()
        .filter(|m| m.direction != "read")
        .map(|m| {
            let mut v = message(m);
            if v.direction == "out" && read.contains(m.message_id.as_str()) {
                v.state = Some("read");
            }
            v
        })
        .collect()
}

/// The newest row of `recent` (oldest first) that is a message, not a receipt.
pub fn last_shown(recent: &[StoredMessage]) -> Option<&StoredMessage> {
    recent.iter().rev().find(|m| m.direction != "read")
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
        // `page` and the receipt events mark them read. Delivery to a device is not reported
        // to senders by the protocol.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, direction: &str, text: &str, received_at: u64) -> StoredMessage {
        StoredMessage {
            message_id: id.into(),
            conversation: "c".into(),
            direction: direction.into(),
            from: "+15550000002".into(),
            to: "+15550000001".into(),
            from_device: 1,
            text: text.into(),
            group: None,
            sent_at: received_at,
            received_at,
            verified: true,
            expires_at: None,
        }
    }

    #[test]
    fn receipts_mark_the_messages_they_name_and_are_not_shown() {
        let rows = [
            row("a", "out", "one", 1),
            row("b", "out", "two", 2),
            row("c", "in", "three", 3),
            row("r", "read", "a", 4),
            row("n", "weird", "a notice", 5),
        ];
        let shown = page(&rows);
        let ids: Vec<&str> = shown.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "n"]);
        let states: Vec<Option<&str>> = shown.iter().map(|m| m.state).collect();
        assert_eq!(states, [Some("read"), Some("sent"), None, None]);
        assert_eq!(shown[3].direction, "notice");
        assert_eq!(last_shown(&rows).map(|m| m.message_id.as_str()), Some("n"));
        assert_eq!(last_shown(&rows[..4]).map(|m| m.message_id.as_str()), Some("c"));
    }

    #[test]
    fn unread_counts_incoming_messages_after_the_mark_only() {
        let rows = [
            row("a", "in", "x", 5),
            row("b", "out", "y", 6),
            row("c", "in", "z", 7),
            row("r", "read", "b", 8),
        ];
        assert_eq!(unread(&rows, 0), 2);
        assert_eq!(unread(&rows, 5), 1);
        assert_eq!(unread(&rows, 7), 0);
    }

    #[test]
    fn client_errors_keep_their_meaning_for_the_ui() {
        let server = |code| {
            ClientError::Server(sirr_proto::ErrorBody {
                code,
                message: "m".into(),
                retry_after_ms: Some(250),
                devices: Vec::new(),
                epoch: None,
                challenge: None,
            })
        };
        let limited = error(&server(ErrorCode::RateLimited));
        assert_eq!(
            (limited.code, limited.retry_after_ms),
            ("rate_limited", Some(250))
        );
        assert_eq!(error(&server(ErrorCode::NotMember)).code, "not_member");
        assert_eq!(error(&server(ErrorCode::LinkExpired)).code, "invalid_code");
        assert_eq!(error(&ClientError::Connection("reset".into())).code, "offline");
        assert_eq!(error(&ClientError::State("not connected".into())).code, "offline");
        assert_eq!(error(&ClientError::NotOnSirr("+1".into())).code, "not_found");
        assert_eq!(error(&ClientError::Invalid("no".into())).code, "invalid");
    }
}

//! The event log: the engine's only input, online (emitted by `sirrd`) and offline (replayed).
//!
//! One JSON object per line, sorted by `t` (milliseconds since the epoch). The schema is fixed by
//! the abuse-engine issue; unknown fields are ignored so the server can add fields without
//! breaking old replays. Decoding never panics: anything malformed is an [`EventError`] naming
//! the line.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

/// One metadata event. Accounts, groups and conversations are opaque pseudonymous strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// An account registered `phone` from `ip` with client string `client`. The `ip` is used in
    /// memory only (as its /24 for IPv4, /48 for IPv6) and never stored.
    Register {
        t: u64,
        account: String,
        phone: String,
        ip: String,
        client: String,
    },
    /// `from` sent one message to `to` (every member but the sender, for a group message);
    /// `bytes` is the padded size.
    Message {
        t: u64,
        from: String,
        to: Vec<String>,
        conversation: String,
        bytes: u64,
        media: bool,
    },
    /// `account` created `group` with `members`.
    GroupCreate {
        t: u64,
        account: String,
        group: String,
        members: Vec<String>,
    },
    /// `account` added `members` to `group`; `account` alone in `members` means it joined by link.
    GroupAdd {
        t: u64,
        account: String,
        group: String,
        members: Vec<String>,
    },
    /// A contact-discovery query: `count` numbers asked, `found` of them registered.
    Lookup {
        t: u64,
        account: String,
        count: u64,
        found: u64,
    },
    /// `account` blocked `peer`.
    Block { t: u64, account: String, peer: String },
    /// `account` reported `peer`; `verified` when the message franking checked out.
    Report {
        t: u64,
        account: String,
        peer: String,
        verified: bool,
    },
}

impl Event {
    /// A group's creation (`create`) or an addition to it: the two carry the same fields.
    pub fn group(create: bool, t: u64, account: String, group: String, members: Vec<String>) -> Event {
        if create {
            Event::GroupCreate {
                t,
                account,
                group,
                members,
            }
        } else {
            Event::GroupAdd {
                t,
                account,
                group,
                members,
            }
        }
    }

    /// The event's time in milliseconds since the epoch.
    pub fn t(&self) -> u64 {
        match self {
            Event::Register { t, .. }
            | Event::Message { t, .. }
            | Event::GroupCreate { t, .. }
            | Event::GroupAdd { t, .. }
            | Event::Lookup { t, .. }
            | Event::Block { t, .. }
            | Event::Report { t, .. } => *t,
        }
    }

    /// The event as one line of the log (without the newline).
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and booleans cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why a line of the log is not an event. Every variant names the 1-based line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("line {line}: not a JSON event object: {message}")]
    Json { line: u64, message: String },
    #[error("line {line}: event has no `type`")]
    MissingType { line: u64 },
    #[error("line {line}: unknown event type `{kind}`")]
    UnknownType { line: u64, kind: String },
    #[error("line {line}: `{kind}` event lacks field `{field}`")]
    MissingField {
        line: u64,
        kind: &'static str,
        field: &'static str,
    },
    #[error("line {line}: lookup found {found} of only {count} numbers")]
    FoundExceedsCount { line: u64, count: u64, found: u64 },
    #[error("line {line}: t = {t} is before the previous event's t = {previous}; the log must be sorted")]
    OutOfOrder { line: u64, t: u64, previous: u64 },
    #[error("line {line}: cannot read the log: {source}")]
    Io { line: u64, source: std::io::Error },
}

impl EventError {
    /// The 1-based line the error is about.
    pub fn line(&self) -> u64 {
        match self {
            EventError::Json { line, .. }
            | EventError::MissingType { line }
            | EventError::UnknownType { line, .. }
            | EventError::MissingField { line, .. }
            | EventError::FoundExceedsCount { line, .. }
            | EventError::OutOfOrder { line, .. }
            | EventError::Io { line, .. } => *line,
        }
    }
}

/// Every field any event type has; which are required depends on `type`.
#[derive(Deserialize)]
struct Raw {
    t: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<String>,
    account: Option<String>,
    phone: Option<String>,
    ip: Option<String>,
    client: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
    conversation: Option<String>,
    bytes: Option<u64>,
    media: Option<bool>,
    group: Option<String>,
    members: Option<Vec<String>>,
    count: Option<u64>,
    found: Option<u64>,
    peer: Option<String>,
    verified: Option<bool>,
}

/// Decodes one line of the log. `line` (1-based) is only used to name the line in errors.
///
/// `bytes`, `media` and `verified` default to `0`/`false` when absent; every other field of the
/// event's type is required.
pub fn parse_line(text: &str, line: u64) -> Result<Event, EventError> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| EventError::Json {
        line,
        message: e.to_string(),
    })?;
    let kind = raw.kind.ok_or(EventError::MissingType { line })?;
    let name: &'static str = match kind.as_str() {
        "register" => "register",
        "message" => "message",
        "group_create" => "group_create",
        "group_add" => "group_add",
        "lookup" => "lookup",
        "block" => "block",
        "report" => "report",
        _ => return Err(EventError::UnknownType { line, kind }),
    };
    let need = |field: &'static str| EventError::MissingField {
        line,
        kind: name,
        field,
    };
    let t = raw.t.ok_or_else(|| need("t"))?;
    let event = match name {
        "register" => Event::Register {
            t,
            account: raw.account.ok_or_else(|| need("account"))?,
            phone: raw.phone.ok_or_else(|| need("phone"))?,
            ip: raw.ip.ok_or_else(|| need("ip"))?,
            client: raw.client.ok_or_else(|| need("client"))?,
        },
        "message" => Event::Message {
            t,
            from: raw.from.ok_or_else(|| need("from"))?,
            to: raw.to.ok_or_else(|| need("to"))?,
            conversation: raw.conversation.ok_or_else(|| need("conversation"))?,
            bytes: raw.bytes.unwrap_or(0),
            media: raw.media.unwrap_or(false),
        },
        "group_create" | "group_add" => {
            let account = raw.account.ok_or_else(|| need("account"))?;
            let group = raw.group.ok_or_else(|| need("group"))?;
            let members = raw.members.ok_or_else(|| need("members"))?;
            Event::group(name == "group_create", t, account, group, members)
        }
        "lookup" => {
            let count = raw.count.ok_or_else(|| need("count"))?;
            let found = raw.found.ok_or_else(|| need("found"))?;
            if found > count {
                return Err(EventError::FoundExceedsCount { line, count, found });
            }
            Event::Lookup {
                t,
                account: raw.account.ok_or_else(|| need("account"))?,
                count,
                found,
            }
        }
        "block" => Event::Block {
            t,
            account: raw.account.ok_or_else(|| need("account"))?,
            peer: raw.peer.ok_or_else(|| need("peer"))?,
        },
        _ => Event::Report {
            t,
            account: raw.account.ok_or_else(|| need("account"))?,
            peer: raw.peer.ok_or_else(|| need("peer"))?,
            verified: raw.verified.unwrap_or(false),
        },
    };
    Ok(event)
}

/// Streams events from a log, one line at a time (the log is never held whole).
///
/// Blank lines are skipped. A line that is not an event, or whose `t` is before the previous
/// event's, yields an error naming it; the caller decides whether to stop.
pub struct EventReader<R> {
    input: R,
    line: u64,
    buf: String,
    previous: u64,
}

impl<R: BufRead> EventReader<R> {
    pub fn new(input: R) -> Self {
        EventReader {
            input,
            line: 0,
            buf: String::new(),
            previous: 0,
        }
    }
}

impl<R: BufRead> Iterator for EventReader<R> {
    type Item = Result<Event, EventError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            let line = self.line;
            match self.input.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => return Some(Err(EventError::Io { line, source })),
            }
            if self.buf.trim().is_empty() {
                continue;
            }
            return Some(parse_line(&self.buf, line).and_then(|event| {
                let t = event.t();
                if t < self.previous {
                    return Err(EventError::OutOfOrder {
                        line,
                        t,
                        previous: self.previous,
                    });
                }
                self.previous = t;
                Ok(event)
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_and_unknown_fields_are_ignored() {
        let events = [
            Event::Register {
                t: 1,
                account: "a".into(),
                phone: "+4917612345".into(),
                ip: "10.0.0.1".into(),
                client: "c".into(),
            },
            Event::Message {
                t: 2,
                from: "a".into(),
                to: vec!["b".into()],
                conversation: "c1".into(),
                bytes: 256,
                media: false,
            },
            Event::GroupCreate {
                t: 3,
                account: "a".into(),
                group: "g".into(),
                members: vec!["b".into(), "c".into()],
            },
            Event::GroupAdd {
                t: 4,
                account: "d".into(),
                group: "g".into(),
                members: vec!["d".into()],
            },
            Event::Lookup {
                t: 5,
                account: "a".into(),
                count: 10,
                found: 3,
            },
            Event::Block {
                t: 6,
                account: "b".into(),
                peer: "a".into(),
            },
            Event::Report {
                t: 7,
                account: "b".into(),
                peer: "a".into(),
                verified: true,
            },
        ];
        for (i, e) in events.iter().enumerate() {
            let mut json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
            json["future_field"] = serde_json::json!({"x": [1, 2]});
            assert_eq!(&parse_line(&json.to_string(), i as u64 + 1).unwrap(), e);
        }
    }

    #[test]
    fn malformed_lines_are_typed_errors_naming_the_line() {
        let cases = [
            ("not json", "line 3: not a JSON event object"),
            (r#"{"t":1}"#, "line 3: event has no `type`"),
            (
                r#"{"t":1,"type":"teleport"}"#,
                "line 3: unknown event type `teleport`",
            ),
            (
                r#"{"t":1,"type":"message","from":"a","conversation":"c"}"#,
                "line 3: `message` event lacks field `to`",
            ),
            (
                r#"{"type":"block","account":"a","peer":"b"}"#,
                "line 3: `block` event lacks field `t`",
            ),
            (
                r#"{"t":-1,"type":"block","account":"a","peer":"b"}"#,
                "line 3: not a JSON event object",
            ),
            (
                r#"{"t":1,"type":"lookup","account":"a","count":1,"found":2}"#,
                "line 3: lookup found 2 of only 1",
            ),
            (r#"[1,2]"#, "line 3: not a JSON event object"),
        ];
        for (text, want) in cases {
            let err = parse_line(text, 3).unwrap_err();
            assert_eq!(err.line(), 3);
            assert!(err.to_string().starts_with(want), "{text}: {err}");
        }
    }

    #[test]
    fn reader_streams_skips_blank_lines_and_refuses_time_going_back() {
        let log = "{\"t\":5,\"type\":\"block\",\"account\":\"a\",\"peer\":\"b\"}\n\n{\"t\":4,\"type\":\"block\",\"account\":\"a\",\"peer\":\"b\"}\n";
        let got: Vec<_> = EventReader::new(log.as_bytes()).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        let err = got[1].as_ref().unwrap_err();
        assert_eq!(err.line(), 3);
        assert!(matches!(
            err,
            EventError::OutOfOrder {
                t: 4,
                previous: 5,
                ..
            }
        ));
    }
}

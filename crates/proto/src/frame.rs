//! The frames. One WebSocket binary message carries exactly one frame.
//!
//! A session starts unauthenticated. In that state the server answers only
//! [`Request::RequestCode`], [`Request::Register`] and [`Request::Hello`]; a successful `Hello`
//! binds the session to one device for its lifetime. From then on the server pushes that device's
//! queued [`Envelope`]s, which the client acknowledges with [`ClientFrame::Ack`].

use serde::{Deserialize, Serialize};

use crate::{AccountId, DeviceAddress, DeviceId, MessageId, Phone, Secret};

/// Number of [`ClientFrame`] variants; a tag at or above it is an unknown frame type.
pub(crate) const CLIENT_FRAME_VARIANTS: u64 = 2;
/// Number of [`Request`] variants; a tag at or above it is an unknown request type.
pub(crate) const REQUEST_VARIANTS: u64 = 8;

/// A frame sent by a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// A request; the server answers with a [`ServerFrame::Response`] carrying the same `id`.
    /// Requests may be pipelined; responses can come back in any order.
    Request { id: u32, body: Request },
    /// The client has stored these pushed envelopes durably; the server may forget them.
    /// Sequence numbers that are not (or no longer) in this device's queue are ignored.
    Ack { seqs: Vec<u64> },
}

/// What a client can ask for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Ask the server to send a verification code to `phone`. Unauthenticated.
    RequestCode { phone: Phone },
    /// Prove control of `phone` with the code and get a device credential. Creates the account
    /// if the number has none, otherwise adds a device to it. Unauthenticated.
    Register {
        phone: Phone,
        code: String,
        device_name: String,
    },
    /// Authenticate this session as one device. Must be the first request of a messaging session.
    Hello {
        protocol: u16,
        account: AccountId,
        device: DeviceId,
        secret: Secret,
    },
    /// Store `payload` for every listed device and answer once it is durable for all of them.
    /// `to` must name, for each recipient account, exactly its current devices (the sender's own
    /// account too, minus the sending device, to keep the sender's other devices in sync);
    /// otherwise the answer is [`ErrorCode::StaleDevices`] with the current lists.
    Send {
        message_id: MessageId,
        to: Vec<Recipient>,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Find the accounts behind phone numbers (contact discovery). Numbers with no account are
    /// left out of the answer. Rate-limited: lookups reveal who may talk to whom.
    Lookup { phones: Vec<Phone> },
    /// The devices of this session's own account.
    ListDevices,
    /// Remove one of this account's devices: its credential stops working and its queue is dropped.
    RemoveDevice { device: DeviceId },
    /// Liveness check; answered with [`Response::Pong`].
    Ping,
}

/// One recipient account and the devices the sender believes it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub account: AccountId,
    pub devices: Vec<DeviceId>,
}

/// A successful answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    CodeSent {
        /// Seconds until the code expires.
        expires_in: u32,
    },
    Registered {
        account: AccountId,
        device: DeviceId,
        secret: Secret,
        /// True when this registration created the account.
        new_account: bool,
    },
    Welcome {
        account: AccountId,
        device: DeviceId,
        /// Envelopes waiting in this device's queue when the session started.
        queued: u64,
    },
    Sent {
        /// Server time, milliseconds since the Unix epoch.
        server_ts: u64,
    },
    Directory {
        entries: Vec<DirectoryEntry>,
    },
    Devices {
        devices: Vec<DeviceInfo>,
    },
    Done,
    Pong,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    pub phone: Phone,
    pub account: AccountId,
    pub devices: Vec<DeviceId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub id: DeviceId,
    pub name: String,
    /// Day of registration, days since the Unix epoch (coarse on purpose).
    pub created_day: u32,
}

/// A failed answer. `message` is for people; clients act on `code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// When set, the same request may succeed after this many milliseconds.
    pub retry_after_ms: Option<u32>,
    /// With [`ErrorCode::StaleDevices`]: the current device lists of the accounts that differ.
    pub devices: Vec<Recipient>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
            devices: Vec::new(),
        }
    }

    pub fn retry_after(mut self, ms: u32) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)?;
        if let Some(ms) = self.retry_after_ms {
            write!(f, "; retry after {ms} ms")?;
        }
        Ok(())
    }
}

impl std::error::Error for ErrorBody {}

/// Why a request failed. Stable: clients branch on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame decoded but the request makes no sense (empty recipients, bad name, ...).
    BadRequest,
    /// The frame could not be decoded, or had an unknown type.
    MalformedFrame,
    /// Not authenticated, or the credential is wrong, expired or revoked.
    Unauthorized,
    /// This request is not allowed in the session's current state (e.g. `Send` before `Hello`).
    WrongState,
    /// The client speaks a protocol version the server does not.
    UnsupportedProtocol,
    /// Too many requests: wait `retry_after_ms`.
    RateLimited,
    /// The server is at capacity: wait `retry_after_ms`. Nothing was stored.
    Overloaded,
    /// A payload exceeds the server's limit.
    TooLarge,
    /// A recipient account does not exist.
    UnknownRecipient,
    /// The recipient device lists were out of date; see `devices`.
    StaleDevices,
    /// The account already has the maximum number of devices.
    DeviceLimit,
    /// The verification code is wrong.
    InvalidCode,
    /// No code is pending for this number, it expired, or too many wrong attempts used it up.
    CodeExpired,
    /// Something failed on the server; the request may be retried.
    Internal,
}

/// A frame sent by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerFrame {
    Response {
        id: u32,
        result: Result<Response, ErrorBody>,
    },
    /// A queued message for this device. It stays queued until acknowledged.
    Push(Envelope),
    /// Everything that was queued when the session started has been pushed. Sent once per session.
    QueueEmpty,
    /// The server is closing the session (shutdown, device removed, a malformed frame, ...).
    Closing(ErrorBody),
}

/// A stored message as a recipient device receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Position in the recipient device's queue; strictly increasing per device. Used to ack.
    pub seq: u64,
    pub message_id: MessageId,
    /// The sending device, as authenticated by the server.
    pub from: DeviceAddress,
    /// When the server accepted the message, milliseconds since the Unix epoch.
    pub server_ts: u64,
    /// Opaque to the server.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

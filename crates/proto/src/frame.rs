//! The frames. One WebSocket binary message carries exactly one frame.
//!
//! A session starts unauthenticated. In that state the server answers only
//! [`Request::RequestCode`], [`Request::Register`] and [`Request::Hello`]; a successful `Hello`
//! binds the session to one device for its lifetime. From then on the server pushes that device's
//! queued [`Envelope`]s, which the client acknowledges with [`ClientFrame::Ack`].

use serde::{Deserialize, Serialize};

use crate::{AccountId, ConversationId, DeviceAddress, DeviceId, MessageId, Phone, Pin, Secret};

/// Number of [`ClientFrame`] variants; a tag at or above it is an unknown frame type.
pub(crate) const CLIENT_FRAME_VARIANTS: u64 = 2;
/// Number of [`Request`] variants; a tag at or above it is an unknown request type.
pub(crate) const REQUEST_VARIANTS: u64 = 33;

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
    /// if the number has none. If it has one, the code alone does not join it: the number's old
    /// account identity is retired (its devices signed out, its queues, keys and device list
    /// dropped) and this device starts it anew, with a new account key its contacts see as a
    /// safety-number change. With the account's registration lock on, that needs `pin`
    /// ([`ErrorCode::RegistrationLocked`] otherwise). Unauthenticated. (The device's name is
    /// set later, sealed: [`Request::SetDeviceName`].)
    Register {
        phone: Phone,
        code: String,
        pin: Option<Pin>,
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
        /// For a message in an MLS conversation: the epoch it was encrypted in, with the proof
        /// of membership in it. The server refuses it with [`ErrorCode::StaleEpoch`] unless
        /// that is the conversation's current epoch (so no member receives a message from an
        /// epoch it has already left), and with [`ErrorCode::NotMember`] unless the token is
        /// that epoch's.
        epoch: Option<EpochRef>,
        /// A disappearing message: the server drops every copy this many seconds after
        /// accepting it, delivered or not, and never delivers it later. At most the server's
        /// retention for undelivered messages.
        ttl_secs: Option<u32>,
        /// The sender's franking commitment to the plaintext (`sirr_crypto::franking`): the
        /// server tags it on delivery, so a recipient can later prove what was sent.
        franking: Option<[u8; 32]>,
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
    /// Store KeyPackages for this device: `one_time` ones, each handed out once, and optionally
    /// a new `last_resort` one, handed out when no one-time package is left (it replaces the
    /// previous one). The server checks each (valid signature, this very device's credential,
    /// the Sirr ciphersuite) and refuses the whole batch with [`ErrorCode::BadKeyPackage`] if
    /// one fails. Answered with [`Response::KeyStock`].
    UploadKeyPackages {
        one_time: Vec<Bytes>,
        last_resort: Option<Bytes>,
    },
    /// Claim one KeyPackage for each of `account`'s devices named in `devices` (all its
    /// devices when empty), to add them to a conversation. One-time packages are consumed.
    /// A device with no package left is missing from the answer. Rate-limited: claims reveal
    /// who starts talking to whom.
    ClaimKeyPackages {
        account: AccountId,
        devices: Vec<DeviceId>,
    },
    /// Publish this account's device list, signed by the account key (opaque to the server;
    /// clients verify it). Accepted only if `version` is higher than the stored one.
    PublishDeviceList { version: u64, list: Bytes },
    /// Order a handshake (MLS commit) in a conversation. Accepted only if `epoch` is the
    /// conversation's current epoch at the server and `token` proves membership in it; then
    /// the conversation moves to `epoch + 1`, whose members will prove themselves with the
    /// token hashing to `next`, and the commit (and the Welcome for added devices, if any) are
    /// queued in the same transaction. The server never learns which accounts are members.
    /// A conversation the server has not seen starts at epoch 0 (the first commit creates it,
    /// with no `token`). A stale commit is refused with [`ErrorCode::StaleEpoch`] and the
    /// current epoch: the client processes what it missed and tries again. Devices named in
    /// `to` that no longer exist are skipped.
    Commit {
        conversation: ConversationId,
        epoch: u64,
        token: Option<MembershipToken>,
        /// [`MembershipToken::hash`] of the token of epoch `epoch + 1`.
        next: [u8; 32],
        commit: Outgoing,
        /// Boxed: commits are rare, and every other request stays small.
        welcome: Option<Box<Outgoing>>,
    },
    /// Start linking a new device to an existing account (unauthenticated). `public_key` is
    /// the new device's ephemeral key (X25519) that the approving device encrypts the account's
    /// secrets to. Answered with [`Response::LinkCode`]; the code shown to the user carries the
    /// link id and this key, so the server cannot substitute its own key.
    RequestLink { public_key: [u8; 32] },
    /// Wait (up to the link's expiry) for the link to be approved. Only the requester can:
    /// `secret` is the one [`Response::LinkCode`] handed it (the link id alone, which the
    /// shown code carries, is not enough). One waiter per link; if it leaves, the link is
    /// spent. Answered with [`Response::LinkApproved`], or [`ErrorCode::LinkExpired`].
    AwaitLink { link_id: [u8; 16], secret: Secret },
    /// Approve a pending link from an authenticated device of the account: the server creates
    /// the device and hands it its credential and `sealed` (encrypted by the approving device
    /// to the link's public key). Answered with [`Response::Linked`].
    ApproveLink { link_id: [u8; 16], sealed: Bytes },
    /// Delete this account: every device, key, queued message (to or from it), membership and
    /// list tied to it, scrubbed from the database files. Answered with [`Response::Done`];
    /// then every session of the account ends.
    DeleteAccount,
    /// Everything the server holds about this account (GDPR articles 15 and 20), as JSON laid
    /// out by the privacy manifest. Answered with [`Response::AccountExport`].
    ExportAccount,
    /// This account's disclosure ledger: every time its data went to anyone but itself.
    /// Answered with [`Response::Disclosures`].
    Disclosures,
    /// This account's consents: every optional use of its data, off until turned on. Answered
    /// with [`Response::Consents`].
    Consents,
    /// Turn one optional use of this account's data on or off, from now on; the change is
    /// recorded with its time. Answered with [`Response::Consents`].
    SetConsent { purpose: Purpose, granted: bool },
    /// The day `account` last connected, if it allows its last-seen to be shown and
    /// `access_key` is its current delivery token (which only people it wrote to can derive,
    /// from the profile key its messages carry); `None` otherwise (the answer does not say
    /// which). Answered with [`Response::LastSeen`].
    LastSeen {
        account: AccountId,
        access_key: Option<[u8; 16]>,
    },
    /// Store this account's delivery token for sealed sender: the server keeps only its hash,
    /// and delivers a [`Request::SendSealed`] to the account only if it presents this token.
    /// The token is derived from the account's profile key, which its clients share inside
    /// end-to-end encrypted messages with the people it talks to. Answered with
    /// [`Response::Done`].
    SetAccessKey { access_key: [u8; 16] },
    /// Turn this unauthenticated connection into a sealed-sender session: from now on it only
    /// carries [`Request::SendSealed`] (and `Ping`), pipelined, and never learns or says who
    /// is sending. Answered with [`Response::Done`].
    SealedSession,
    /// Deliver a message without saying who sends it (in a sealed-sender session only). Each
    /// recipient account must be named with its delivery token; the sender's identity travels
    /// only inside the ciphertext. Otherwise as [`Request::Send`]: `devices` must be exactly the
    /// account's current devices, and `epoch` (with its membership token) is checked.
    SendSealed {
        message_id: MessageId,
        to: Vec<SealedRecipient>,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
        epoch: Option<EpochRef>,
        ttl_secs: Option<u32>,
        franking: Option<[u8; 32]>,
        /// One unspent anonymous token per entry of `to` (see [`Request::IssueSealedTokens`]):
        /// the server accepts a sealed message only if every token verifies under a live key
        /// and was never spent, so an account refused tokens (banned, throttled, challenged,
        /// or out of its hourly budget) soon cannot send sealed at all. Otherwise
        /// [`ErrorCode::BadSealedToken`], nothing stored, no token spent.
        tokens: Vec<SealedToken>,
    },
    /// Answer a [`ErrorCode::ChallengeRequired`]: `solution` makes the challenge's hash start
    /// with the required zero bits ([`crate::challenge`]). Answered with [`Response::Done`].
    SolveChallenge { nonce: [u8; 16], solution: u64 },
    /// Ask for a ban to be reviewed (unauthenticated: a banned device cannot sign in). The
    /// device's credential proves whose appeal it is. Answered with [`Response::Done`].
    Appeal {
        account: AccountId,
        device: DeviceId,
        secret: Secret,
        text: String,
    },
    /// This account no longer wants messages from `account`. The server counts it as a signal
    /// about `account` (it stores no block list); the client drops that account's messages.
    /// Answered with [`Response::Done`].
    Block { account: AccountId },
    /// Report messages `account` sent, revealing them with their franking openings so the
    /// server can check that `account` really sent them. Answered with [`Response::Reported`].
    Report {
        account: AccountId,
        messages: Vec<ReportedMessage>,
    },
    /// Store this device's name, sealed under a key only the account's devices hold
    /// (`sirr_crypto::AccountKey::seal_device_name`): the server keeps bytes it cannot read
    /// and shows them to the account's devices in [`Response::Devices`]. Answered with
    /// [`Response::Done`].
    SetDeviceName { sealed: Bytes },
    /// Ask for anonymous sealed-send tokens (authenticated device session): `blinded` are
    /// VOPRF-blinded random nonces (`sirr_crypto::tokens`, RFC 9497 ristretto255-SHA512), at
    /// most the server's batch size. The server evaluates them under its current key without
    /// learning the nonces, so a token spent later cannot be tied to this request. Refused for
    /// a banned ([`ErrorCode::Banned`]), challenged ([`ErrorCode::ChallengeRequired`]) or
    /// throttled account, and past the account's hourly budget ([`ErrorCode::RateLimited`]).
    /// Answered with [`Response::SealedTokens`].
    IssueSealedTokens { blinded: Vec<Bytes> },
    /// The token keys the server accepts now (in a sealed-sender session, so the answer is
    /// the same for everyone): a client checks that the key its tokens were issued under is
    /// one of these, so the server cannot mark an account by issuing to it under a key of its
    /// own. Answered with [`Response::SealedTokenKeys`].
    SealedTokenKeys,
    /// Turn this account's registration lock on with `pin`, or off with `None` (from a device
    /// on the account's signed device list only). While on, registering the number anew needs
    /// the PIN; the server keeps only a slow hash of it. Answered with
    /// [`Response::RegistrationLock`].
    SetRegistrationLock { pin: Option<Pin> },
    /// Whether this account's registration lock is on. Answered with
    /// [`Response::RegistrationLock`].
    RegistrationLockStatus,
}

/// An anonymous token that pays for one sealed copy to one account: a random nonce and the
/// server's VOPRF output on it, unblinded by the client. Only the server (holding the key) can
/// check it; it names no account. `Debug` never prints it (it is a bearer token).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedToken {
    /// Which of the server's token keys issued it ([`TokenKey::id`]).
    pub key_id: u64,
    pub nonce: [u8; 32],
    /// The VOPRF output (64 bytes for ristretto255-SHA512).
    pub output: Bytes,
}

impl std::fmt::Debug for SealedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedToken(key {:#x}, ..)", self.key_id)
    }
}

/// One of the server's token keys: its id and VOPRF public key (a ristretto255 point).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenKey {
    pub id: u64,
    pub public_key: [u8; 32],
}

/// A message revealed in a report: what the recipient got, and the franking opening that
/// proves who sent it to whom (see `sirr_crypto::franking`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedMessage {
    pub message_id: MessageId,
    pub server_ts: u64,
    /// The bytes the commitment covers (`content::Content::committed`: the padded content
    /// without its franking signature).
    #[serde(with = "serde_bytes")]
    pub plaintext: Vec<u8>,
    pub franking_key: [u8; 32],
    pub franking: Franking,
    /// The reported account's device that sent it (its MLS credential names it).
    pub sender_device: DeviceId,
    /// Whether it came sealed (the envelope named no sender): the server's tag then names only
    /// the recipient, and the signature proves the sender.
    pub sealed: bool,
    /// The conversation it was sent in (the signature covers it).
    pub conversation: ConversationId,
    /// The sender device's signature over the commitment (`sirr_crypto::franking::sign`).
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// The franking of a delivered message: the sender's commitment to its content, and the
/// server's tag binding it to the message id, the time at which the server accepted it, the
/// receiving device and (when the server knew it) the sending device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Franking {
    pub commitment: [u8; 32],
    pub server_tag: [u8; 32],
}

/// A proof of work to solve before sending more (see [`crate::challenge`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub nonce: [u8; 16],
    pub bits: u8,
}

/// A recipient of a sealed-sender message, with the delivery token that authorises it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedRecipient {
    pub account: AccountId,
    pub devices: Vec<DeviceId>,
    pub access_key: [u8; 16],
}

/// An optional use of an account's data. Each is off until the account turns it on, and can
/// be turned off again at any time, with immediate effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Purpose {
    /// Tell the sender when this account's devices have shown their message (end-to-end
    /// encrypted receipts, sent by this account's clients).
    ReadReceipts,
    /// Let people this account shares a conversation with see the day it last connected.
    LastSeen,
    /// Show this account's profile photo to people who are not its contacts.
    ProfilePhoto,
    /// Give this account's phone number to a business it writes to.
    ShareNumberWithBusinesses,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [
        Purpose::ReadReceipts,
        Purpose::LastSeen,
        Purpose::ProfilePhoto,
        Purpose::ShareNumberWithBusinesses,
    ];

    /// The stable name used in storage, configuration and the command line.
    pub fn name(self) -> &'static str {
        match self {
            Purpose::ReadReceipts => "read-receipts",
            Purpose::LastSeen => "last-seen",
            Purpose::ProfilePhoto => "profile-photo",
            Purpose::ShareNumberWithBusinesses => "share-number-with-businesses",
        }
    }

    pub fn from_name(name: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Where one consent stands for an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentState {
    pub purpose: Purpose,
    pub granted: bool,
    /// When the account last changed it, milliseconds since the Unix epoch; `None` if it never
    /// did (then `granted` is false: every optional use starts off).
    pub changed_at_ms: Option<u64>,
    /// False when the server's region does not offer this use at all (it stays off).
    pub offered: bool,
}

/// Opaque bytes, encoded compactly.
pub type Bytes = serde_bytes::ByteBuf;

/// The conversation epoch a message was encrypted in (see [`Request::Send`]), and the proof
/// that its sender is a member of that epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRef {
    pub conversation: ConversationId,
    pub epoch: u64,
    pub token: MembershipToken,
}

/// Proof of membership in one epoch of a conversation: a secret every member device derives
/// from that epoch's MLS key schedule (`sirr_crypto::Conversation::membership_token`) and no
/// one else can, because it changes with every commit. The server stores only its
/// [`hash`](Self::hash), set by the commit that starts the epoch, so it can tell members from
/// strangers without ever knowing who the members are. `Debug` never prints it.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipToken(pub [u8; 32]);

impl MembershipToken {
    /// What the server keeps and compares: SHA-256 over a domain tag and the token.
    pub fn hash(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"sirr membership v1");
        h.update(self.0);
        h.finalize().into()
    }
}

impl std::fmt::Debug for MembershipToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MembershipToken(..)")
    }
}

/// One payload and where it goes, as part of a [`Request::Commit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub message_id: MessageId,
    pub to: Vec<Recipient>,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// One entry of an account's disclosure ledger. Entries form a hash chain
/// ([`crate::disclosure_hash`]): a client that remembers the last hash it saw detects any later
/// rewrite of what it saw.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    /// 1, 2, 3, ... per account.
    pub seq: u64,
    /// When, milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Who received the data (e.g. "operator", a business's name).
    pub recipient: String,
    /// What was disclosed and why.
    pub what: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// One claimed KeyPackage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedKeyPackage {
    pub device: DeviceId,
    #[serde(with = "serde_bytes")]
    pub key_package: Vec<u8>,
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
        /// One-time KeyPackages this device has left at the server; refill when low.
        key_packages: u32,
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
    /// One-time KeyPackages this device now has at the server.
    KeyStock {
        one_time: u32,
    },
    KeyPackages {
        packages: Vec<ClaimedKeyPackage>,
        /// The account's signed device list, if it published one.
        device_list: Option<Bytes>,
    },
    Committed {
        /// The conversation's new epoch.
        epoch: u64,
        server_ts: u64,
    },
    LinkCode {
        link_id: [u8; 16],
        /// Seconds until the link expires.
        expires_in: u32,
        /// What proves [`Request::AwaitLink`] comes from this requester; never shown.
        secret: Secret,
    },
    LinkApproved {
        account: AccountId,
        device: DeviceId,
        secret: Secret,
        sealed: Bytes,
    },
    Linked {
        device: DeviceId,
    },
    Disclosures {
        entries: Vec<Disclosure>,
    },
    /// How many of the reported messages the server could verify as sent by that account.
    Reported {
        verified: u32,
    },
    Consents {
        /// The region whose rules the server applies (e.g. "eu").
        region: String,
        consents: Vec<ConsentState>,
    },
    LastSeen {
        /// Days since the Unix epoch (coarse on purpose: the server keeps nothing finer).
        day: Option<u32>,
    },
    AccountExport {
        /// A JSON document: every table of the privacy manifest with the rows about this
        /// account, each column named and explained.
        json: String,
    },
    /// The blinded nonces of an [`Request::IssueSealedTokens`], evaluated under `key`, in the
    /// same order, with one DLEQ proof that all were evaluated under that key.
    SealedTokens {
        key: TokenKey,
        evaluated: Vec<Bytes>,
        proof: Bytes,
    },
    /// The token keys the server accepts now, newest first.
    SealedTokenKeys {
        keys: Vec<TokenKey>,
    },
    RegistrationLock {
        enabled: bool,
    },
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
    /// The device's name, sealed by the account's devices; `None` until it set one.
    pub sealed_name: Option<Bytes>,
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
    /// With [`ErrorCode::Unauthorized`] to a `SendSealed`: the accounts whose delivery token
    /// failed (device lists empty).
    pub devices: Vec<Recipient>,
    /// With [`ErrorCode::StaleEpoch`]: the conversation's current epoch.
    pub epoch: Option<u64>,
    /// With [`ErrorCode::ChallengeRequired`]: what to solve.
    pub challenge: Option<Challenge>,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_ms: None,
            devices: Vec::new(),
            epoch: None,
            challenge: None,
        }
    }

    pub fn retry_after(mut self, ms: u32) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// The accounts (with devices, for `StaleDevices`) the refusal is about.
    pub fn with_devices(mut self, devices: Vec<Recipient>) -> Self {
        self.devices = devices;
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
    /// The commit or message was made for an old epoch of the conversation; see `epoch`.
    StaleEpoch,
    /// The sender did not prove membership in the conversation's current epoch.
    NotMember,
    /// An uploaded KeyPackage failed its checks (signature, credential, ciphersuite, lifetime).
    BadKeyPackage,
    /// The device link does not exist, expired, or was already used.
    LinkExpired,
    /// The server's region does not offer this optional use of data.
    NotOffered,
    /// The account is banned for abuse; `message` says why and how to appeal.
    Banned,
    /// The account must solve `challenge` before it sends more (automated-use check).
    ChallengeRequired,
    /// A sealed send's tokens are missing, one short, issued under a key the server no longer
    /// accepts, already spent, or do not verify: get new ones or send identified.
    BadSealedToken,
    /// The number's account has a registration lock: registering it anew needs the right PIN
    /// (or, once its guesses are used up, the account to be inactive for a week).
    RegistrationLocked,
    /// Only a device on the account's signed device list may do this (remove devices, delete
    /// the account, approve links, change the registration lock).
    NotApproved,
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
    /// The sending device, as authenticated by the server; `None` for a sealed-sender message
    /// (the sender is named only inside the ciphertext).
    pub from: Option<DeviceAddress>,
    /// When the server accepted the message, milliseconds since the Unix epoch.
    pub server_ts: u64,
    /// Opaque to the server.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// The sender's commitment and the server's tag, when the sender franked the message.
    pub franking: Option<Franking>,
}

// The contract between the web UI and the Sirr client core.
//
// The core is the Rust `sirr-client` compiled to wasm (module `/pkg/sirr_web.js`); it owns the
// keys, the MLS state, the local message store (IndexedDB) and the WebSocket to sirrd. The UI
// never sees key material or ciphertext: it asks the core for plain view data and tells it what
// the person did. Everything here is written so a test double can implement it in memory.
//
// Conventions every method follows:
// - Methods are async and reject only with a `CoreError` (never a bare `Error` or string).
// - Identifiers (`ConversationId`, `MessageId`, `DeviceId`) are opaque strings: the UI compares
//   and passes them back, never parses them.
// - Times are milliseconds since the Unix epoch (UTC), as `Date.now()` gives.
// - Phone numbers are E.164 strings (`+15550000001`).

import type { RawCore } from './wasmCore';

export type ConversationId = string;
export type MessageId = string;
export type DeviceId = string;

/** The signed-in account and this browser's device. */
export interface Identity {
  /** The account's phone number, E.164. */
  phone: string;
  /** This browser's device id. */
  device: DeviceId;
  /** This device's name, as the account's other devices show it. */
  deviceName: string;
}

export type ConversationKind = 'direct' | 'group';

/** One row of the conversation list. */
export interface ConversationSummary {
  id: ConversationId;
  kind: ConversationKind;
  /** A direct chat's contact (their name if known, else their number) or the group's name. */
  title: string;
  /** The newest message's text (or a short description of it), absent for an empty chat. */
  lastMessage?: string;
  /** Incoming messages not yet marked read on any of the account's devices. */
  unread: number;
  /** Time of the newest message, or of the conversation's creation. */
  time: number;
  /** Seconds after which new messages disappear; 0 or absent: they do not. */
  timerSeconds?: number;
}

/**
 * Where an outgoing message is: `sending` (not yet accepted by the server), `sent` (durable on
 * the server), `delivered` (reached at least one of the recipient's devices), `read` (only
 * shown when the recipient shares read receipts), `failed` (will not be retried; `error` says
 * why).
 */
export type DeliveryState = 'sending' | 'sent' | 'delivered' | 'read' | 'failed';

export interface Message {
  id: MessageId;
  conversation: ConversationId;
  /** `notice`: something to know that nobody typed (an undecryptable message, new keys). */
  direction: 'in' | 'out' | 'notice';
  /** Sender's phone number (E.164); for `out`, the account's own. */
  from: string;
  /** Display name of the sender if known. */
  fromName?: string;
  /** The plaintext, as the sender typed it (any script; the UI renders it `dir="auto"`). */
  text: string;
  /** When it was sent, by the sender's clock as carried inside the encrypted content. */
  time: number;
  /** Outgoing messages only. */
  state?: DeliveryState;
  /** For `failed`: why. */
  error?: CoreErrorCode;
  /** Disappearing messages: when this copy will be deleted. */
  expiresAt?: number;
}

export type ConnectionState = 'connecting' | 'connected' | 'offline';

/** What the core pushes to the UI. Listeners run on the main thread, in the order of events. */
export type CoreEvent =
  /** A message arrived, or one of ours was stored locally (then `state` is `sending`). */
  | { kind: 'message'; message: Message }
  /** An outgoing message's delivery state moved forward (it never moves back). */
  | { kind: 'receipt'; conversation: ConversationId; message: MessageId; state: DeliveryState }
  /** The WebSocket to sirrd went up or down; the core reconnects by itself. */
  | { kind: 'connection'; state: ConnectionState }
  /**
   * A contact's account key changed (a new phone, or someone else): the safety number must be
   * compared again. The core keeps refusing nothing by itself; the UI says so plainly.
   */
  | { kind: 'keyChange'; conversation: ConversationId; phone: string }
  /** A pending `startLink` was approved on another device: this browser is now signed in. */
  | { kind: 'linkApproved'; identity: Identity }
  /** A pending `startLink` ended without approval (it expired, or the server refused it). */
  | { kind: 'linkFailed'; error: CoreError }
  /** A conversation's title, members, timer or unread count changed. */
  | { kind: 'conversation'; conversation: ConversationSummary };

export interface Device {
  id: DeviceId;
  name: string;
  /** True for the device this core runs on. */
  current: boolean;
  /** When the account approved it. */
  linkedAt: number;
}

export interface GroupMember {
  phone: string;
  name?: string;
}

/** Optional uses of data; names as in `sirr consent list`. All are off until turned on. */
export type Purpose = 'read-receipts' | 'last-seen' | 'profile-photo' | 'share-number-with-businesses';

export const PURPOSES: readonly Purpose[] = [
  'read-receipts',
  'last-seen',
  'profile-photo',
  'share-number-with-businesses',
];

export interface Consent {
  purpose: Purpose;
  granted: boolean;
  /** False when this server's region does not offer it: it stays off and cannot be set. */
  offered: boolean;
  /** When it was last changed, if ever. */
  changedAt?: number;
}

/** One entry of the account's disclosure ledger: a time its data went to anyone. */
export interface LedgerEntry {
  time: number;
  /** Who received it (e.g. "operator", "abuse review"). */
  recipient: string;
  /** What was disclosed, in the server's words. */
  what: string;
  /** The reason given (a legal reference, a report id). */
  reason: string;
}

export interface Ledger {
  entries: LedgerEntry[];
  /** True when the hash chain checked out end to end against the server's signed head. */
  verified: boolean;
}

export interface LinkCode {
  /** The `sirr-link:...` code, shown as a QR code and as text. */
  code: string;
  /** When the server forgets the pending link. */
  expiresAt: number;
}

/** Stable reasons a core call fails; the UI has a translated sentence for each. */
export type CoreErrorCode =
  | 'not_linked' // no identity yet: link this browser first
  | 'offline' // the server is unreachable; retried calls may succeed later
  | 'rate_limited' // the server asked us to slow down; see `retryAfterMs`
  | 'not_found' // no such conversation, device, or account for that number
  | 'invalid_phone' // not an E.164 number
  | 'invalid_code' // a link code that is malformed, unknown or expired
  | 'invalid' // a request the core refused as it stands (`message` says what)
  | 'blocked' // the contact is blocked, or this account is banned or throttled
  | 'not_member' // not (or no longer) a member of that group
  | 'too_large' // the message is larger than the server accepts
  | 'untrusted_device' // a recipient device was never approved by its account
  | 'storage' // the browser's storage failed or is full
  | 'locked' // another tab holds the core's storage
  | 'unsupported' // this build of the core does not do that yet
  | 'internal'; // a bug; `message` has detail for a report

export class CoreError extends Error {
  override readonly name = 'CoreError';
  constructor(
    readonly code: CoreErrorCode,
    message?: string,
    /** For `rate_limited`: how long to wait before retrying. */
    readonly retryAfterMs?: number,
  ) {
    super(message ?? code);
  }
}

export function isCoreError(e: unknown): e is CoreError {
  return e instanceof CoreError;
}

/**
 * The client core as the UI sees it. One instance per tab; `open` in the core module returns
 * it once its storage is open (or rejects with `locked` when another tab holds it).
 */
export interface SirrCore {
  /** The signed-in identity, or null before this browser is linked. Never rejects with `not_linked`. */
  identity(): Promise<Identity | null>;

  // Linking this browser as a new device of an existing account.
  /**
   * Creates this browser's keys and asks the server for a pending link. Resolves with the code
   * the person approves on a signed-in device (`sirr device approve CODE`); then a
   * `linkApproved` event follows. Calling it again cancels the previous pending link.
   */
  startLink(deviceName: string): Promise<LinkCode>;
  /** Forgets the pending link and its keys; no event follows. Does nothing when none is pending. */
  cancelLink(): Promise<void>;

  /** Subscribes to events; returns the unsubscribe function. Listeners must not throw. */
  onEvent(listener: (event: CoreEvent) => void): () => void;
  /** The connection state now (events report its changes). */
  connection(): ConnectionState;

  // Conversations and messages (all read from local storage; no server round trip).
  /** Every conversation, newest activity first. */
  conversations(): Promise<ConversationSummary[]>;
  /**
   * Up to `limit` messages of a conversation, oldest first, all strictly older than the message
   * `before` (or the newest ones when `before` is absent). Fewer than `limit`: no older ones.
   */
  messages(conversation: ConversationId, limit: number, before?: MessageId): Promise<Message[]>;
  /** Marks every incoming message up to and including `upTo` read; sends read receipts only when the consent is on. */
  markRead(conversation: ConversationId, upTo: MessageId): Promise<void>;
  /** The direct conversation with a number, created (with its MLS group) if needed. */
  openDirect(phone: string): Promise<ConversationSummary>;
  /**
   * Encrypts and queues a message; resolves once it is stored locally (state `sending`), before
   * the server accepts it. `receipt` events follow; a failure is a `receipt` with `failed`.
   */
  send(conversation: ConversationId, text: string): Promise<Message>;

  // Groups (each change is an MLS commit ordered by the server).
  createGroup(name: string, members: string[]): Promise<ConversationSummary>;
  members(conversation: ConversationId): Promise<GroupMember[]>;
  addMembers(conversation: ConversationId, phones: string[]): Promise<void>;
  removeMembers(conversation: ConversationId, phones: string[]): Promise<void>;
  renameGroup(conversation: ConversationId, name: string): Promise<void>;
  leaveGroup(conversation: ConversationId): Promise<void>;

  /** Disappearing messages for everyone in the conversation; 0 turns them off. */
  setTimer(conversation: ConversationId, seconds: number): Promise<void>;

  /** The safety number with a contact: 60 digits in 12 groups of 5, to compare in person. */
  safetyNumber(phone: string): Promise<string>;
  /** Stops messages from a number reaching this account (on all its devices). */
  block(phone: string): Promise<void>;
  unblock(phone: string): Promise<void>;
  /**
   * Reports messages to the server's abuse review: their franking proofs reveal those messages
   * (and only those) to the operator. Resolves once the server accepted the report.
   */
  report(conversation: ConversationId, messages: MessageId[], reason: string): Promise<void>;

  // The account's devices.
  devices(): Promise<Device[]>;
  renameDevice(device: DeviceId, name: string): Promise<void>;
  /** Removes a device from the account and from every conversation. Not the current one. */
  removeDevice(device: DeviceId): Promise<void>;
  /** Approves a new device showing `code` (this browser acting as the signed-in device). */
  approveLink(code: string): Promise<Device>;

  // Consents (in force at once on every device of the account).
  consents(): Promise<Consent[]>;
  setConsent(purpose: Purpose, granted: boolean): Promise<Consent>;

  // Everything the server holds about the account.
  /** The account export as a self-contained HTML page (no scripts). */
  exportHtml(): Promise<Blob>;
  /** The same export as JSON. */
  exportJson(): Promise<Blob>;
  /** The disclosure ledger, verified against its hash chain. */
  ledger(): Promise<Ledger>;
}

/**
 * What `/pkg/sirr_web.js` must export. `default` is wasm-bindgen's initialiser (`--target web`);
 * `openCore` opens the core against the server at `origin` (the page's own), which
 * `adaptCore` (wasmCore.ts) turns into a `SirrCore`.
 */
export interface CoreModule {
  default: (input?: unknown) => Promise<unknown>;
  openCore: (origin: string) => Promise<RawCore>;
}

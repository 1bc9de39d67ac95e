// The adapter between the wasm core (crates/web, `openCore` in /pkg/sirr_web.js) and the UI's
// `SirrCore`. The core answers in JSON text and rejects with `{code, message, retryAfterMs}`;
// this turns those into typed values and `CoreError`s, fans its one event stream out to any
// number of listeners, and takes this origin's Web Lock first, so that a second tab is told
// `locked` instead of writing the same IndexedDB database at the same time.
import type { ConnectionState, CoreErrorCode, CoreEvent, SirrCore } from './core';
import { CoreError } from './core';

/** What `openCore(origin)` resolves to: `WasmCore` of crates/web/src/api.rs. */
export interface RawCore {
  setListener(listener: (event: string) => void): void;
  connection(): string;
  identity(): Promise<string>;
  startLink(deviceName: string): Promise<string>;
  cancelLink(): Promise<string>;
  conversations(): Promise<string>;
  messages(conversation: string, limit: number, before?: string): Promise<string>;
  markRead(conversation: string, upTo: string): Promise<string>;
  openDirect(phone: string): Promise<string>;
  send(conversation: string, text: string): Promise<string>;
  createGroup(name: string, members: string[]): Promise<string>;
  members(conversation: string): Promise<string>;
  addMembers(conversation: string, phones: string[]): Promise<string>;
  removeMembers(conversation: string, phones: string[]): Promise<string>;
  renameGroup(conversation: string, name: string): Promise<string>;
  leaveGroup(conversation: string): Promise<string>;
  setTimer(conversation: string, seconds: number): Promise<string>;
  safetyNumber(phone: string): Promise<string>;
  block(phone: string): Promise<string>;
  devices(): Promise<string>;
  renameDevice(device: string, name: string): Promise<string>;
  removeDevice(device: string): Promise<string>;
  approveLink(code: string): Promise<string>;
  consents(): Promise<string>;
  setConsent(purpose: string, granted: boolean): Promise<string>;
  exportJson(): Promise<string>;
  exportHtml(lang: string): Promise<string>;
  ledger(): Promise<string>;
}

/** The Web Lock a tab holds while its core is open. */
export const LOCK_NAME = 'sirr-core';

const CODES: readonly CoreErrorCode[] = [
  'not_linked', 'offline', 'rate_limited', 'not_found', 'invalid_phone', 'invalid_code', 'invalid',
  'blocked', 'not_member', 'too_large', 'untrusted_device', 'storage', 'locked', 'unsupported', 'internal',
];

/** The core's rejection value (or anything else thrown) as a `CoreError`. */
export function toCoreError(e: unknown): CoreError {
  if (e instanceof CoreError) return e;
  if (typeof e === 'object' && e !== null && 'code' in e) {
    const { code, message, retryAfterMs } = e as { code: unknown; message?: unknown; retryAfterMs?: unknown };
    const known = CODES.find((c) => c === code) ?? 'internal';
    return new CoreError(known, typeof message === 'string' ? message : String(code),
      typeof retryAfterMs === 'number' ? retryAfterMs : undefined);
  }
  return new CoreError('internal', e instanceof Error ? e.message : String(e));
}

async function json<T>(answer: Promise<string>): Promise<T> {
  let text: string;
  try {
    text = await answer;
  } catch (e) {
    throw toCoreError(e);
  }
  return JSON.parse(text) as T;
}

/**
 * Holds this origin's lock for the life of the tab; rejects with `locked` when another tab
 * holds it. Browsers without Web Locks are let through (every current browser has them).
 */
export async function takeTabLock(locks: LockManager | undefined = navigator.locks): Promise<void> {
  if (!locks) return;
  const got = await new Promise<boolean>((resolve, reject) => {
    locks
      .request(LOCK_NAME, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        // Resolving the callback's promise would release the lock: this one never settles.
        return lock === null ? undefined : new Promise<never>(() => {});
      })
      .catch(reject);
  });
  if (!got) throw new CoreError('locked', 'Sirr is already open in another tab');
}

/** What the core does not do yet, said as such rather than pretended. */
function unsupported(what: string): Promise<never> {
  return Promise.reject(new CoreError('unsupported', `${what} is not in this build of the web core yet`));
}

/** The `SirrCore` over an opened wasm core. */
export function adaptCore(raw: RawCore): SirrCore {
  const listeners = new Set<(event: CoreEvent) => void>();
  raw.setListener((text) => {
    const event = JSON.parse(text) as CoreEvent | { kind: 'linkFailed'; error: unknown };
    const ev: CoreEvent = event.kind === 'linkFailed' ? { kind: 'linkFailed', error: toCoreError(event.error) } : event;
    for (const l of listeners) l(ev);
  });
  const done = async (answer: Promise<string>) => {
    await json<unknown>(answer);
  };
  return {
    identity: () => json(raw.identity()),
    startLink: (name) => json(raw.startLink(name)),
    cancelLink: () => done(raw.cancelLink()),
    onEvent: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    connection: () => raw.connection() as ConnectionState,
    conversations: () => json(raw.conversations()),
    messages: (conversation, limit, before) => json(raw.messages(conversation, limit, before)),
    markRead: (conversation, upTo) => done(raw.markRead(conversation, upTo)),
    openDirect: (phone) => json(raw.openDirect(phone)),
    send: (conversation, text) => json(raw.send(conversation, text)),
    createGroup: (name, members) => json(raw.createGroup(name, members)),
    members: (conversation) => json(raw.members(conversation)),
    addMembers: (conversation, phones) => done(raw.addMembers(conversation, phones)),
    removeMembers: (conversation, phones) => done(raw.removeMembers(conversation, phones)),
    renameGroup: (conversation, name) => done(raw.renameGroup(conversation, name)),
    leaveGroup: (conversation) => done(raw.leaveGroup(conversation)),
    setTimer: (conversation, seconds) => done(raw.setTimer(conversation, seconds)),
    safetyNumber: (phone) => json(raw.safetyNumber(phone)),
    block: (phone) => done(raw.block(phone)),
    unblock: () => unsupported('unblocking'),
    report: () => unsupported('reporting from the web'),
    devices: () => json(raw.devices()),
    renameDevice: (device, name) => done(raw.renameDevice(device, name)),
    removeDevice: (device) => done(raw.removeDevice(device)),
    approveLink: (code) => json(raw.approveLink(code)),
    consents: () => json(raw.consents()),
    setConsent: (purpose, granted) => json(raw.setConsent(purpose, granted)),
    exportJson: async () => new Blob([await json<string>(raw.exportJson()).then((v) => JSON.stringify(v, null, 2))],
      { type: 'application/json' }),
    exportHtml: async () => new Blob([await json<string>(raw.exportHtml(document.documentElement.lang))],
      { type: 'text/html' }),
    ledger: () => json(raw.ledger()),
  };
}

// An in-memory test double of the SirrCore contract, for component tests only: no crypto, no
// network. It records what the UI asked for so tests can assert on it.
import type {
  Consent,
  ConversationSummary,
  CoreEvent,
  Device,
  Identity,
  Message,
  SirrCore,
} from '../src/core';
import { CoreError, PURPOSES } from '../src/core';

export class FakeCore implements SirrCore {
  me: Identity | null = { phone: '+15550000001', device: 'd1', deviceName: 'laptop' };
  convs: ConversationSummary[] = [];
  msgs = new Map<string, Message[]>();
  sent: { conversation: string; text: string }[] = [];
  readUpTo = new Map<string, string>();
  state: 'connecting' | 'connected' | 'offline' = 'connected';
  listeners = new Set<(e: CoreEvent) => void>();
  private seq = 0;

  emit(e: CoreEvent): void {
    for (const l of this.listeners) l(e);
  }

  identity = () => Promise.resolve(this.me);
  startLink = () => Promise.resolve({ code: 'sirr-link:TESTCODE', expiresAt: Date.now() + 600_000 });
  cancelLink = () => Promise.resolve();
  onEvent(listener: (e: CoreEvent) => void) {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }
  connection = () => this.state;
  conversations = () => Promise.resolve([...this.convs]);
  messages(conversation: string, limit: number, before?: string) {
    const all = this.msgs.get(conversation) ?? [];
    const end = before === undefined ? all.length : all.findIndex((m) => m.id === before);
    return Promise.resolve(all.slice(Math.max(0, end - limit), end));
  }
  markRead(conversation: string, upTo: string) {
    this.readUpTo.set(conversation, upTo);
    return Promise.resolve();
  }
  openDirect(phone: string) {
    if (!/^\+[1-9]\d{6,14}$/.test(phone)) return Promise.reject(new CoreError('invalid_phone'));
    const c: ConversationSummary = { id: 'c-' + phone, kind: 'direct', title: phone, unread: 0, time: Date.now() };
    this.convs.push(c);
    return Promise.resolve(c);
  }
  send(conversation: string, text: string) {
    this.sent.push({ conversation, text });
    const m: Message = {
      id: 'out-' + ++this.seq,
      conversation,
      direction: 'out',
      from: this.me?.phone ?? '',
      text,
      time: Date.now(),
      state: 'sending',
    };
    return Promise.resolve(m);
  }
  createGroup = () => Promise.reject(new CoreError('internal', 'not in this double'));
  members: SirrCore['members'] = () => Promise.resolve([]);
  addMembers: SirrCore['addMembers'] = () => Promise.resolve();
  removeMembers: SirrCore['removeMembers'] = () => Promise.resolve();
  renameGroup: SirrCore['renameGroup'] = () => Promise.resolve();
  leaveGroup = () => Promise.resolve();
  setTimer: SirrCore['setTimer'] = () => Promise.resolve();
  safetyNumber: SirrCore['safetyNumber'] = () => Promise.resolve('00000 '.repeat(12).trim());
  block: SirrCore['block'] = () => Promise.resolve();
  unblock = () => Promise.resolve();
  report = () => Promise.resolve();
  devices = (): Promise<Device[]> =>
    Promise.resolve([
      { id: 'd1', name: 'laptop', current: true, linkedAt: 0 },
      { id: 'd2', name: 'phone', current: false, linkedAt: 0 },
    ]);
  renameDevice = () => Promise.resolve();
  removeDevice = () => Promise.resolve();
  approveLink = () => Promise.resolve({ id: 'd3', name: 'tablet', current: false, linkedAt: 0 });
  consents = (): Promise<Consent[]> =>
    Promise.resolve(PURPOSES.map((purpose) => ({ purpose, granted: false, offered: true })));
  setConsent = (purpose: Consent['purpose'], granted: boolean) => Promise.resolve({ purpose, granted, offered: true });
  exportHtml = () => Promise.resolve(new Blob(['<html></html>'], { type: 'text/html' }));
  exportJson = () => Promise.resolve(new Blob(['{}'], { type: 'application/json' }));
  ledger = () => Promise.resolve({ entries: [], verified: true });
}

export function message(conversation: string, i: number, over: Partial<Message> = {}): Message {
  return {
    id: `m${i}`,
    conversation,
    direction: i % 2 ? 'in' : 'out',
    from: i % 2 ? '+15550000002' : '+15550000001',
    text: `message number ${i}`,
    time: 1_700_000_000_000 + i * 1000,
    state: i % 2 ? undefined : 'delivered',
    ...over,
  };
}

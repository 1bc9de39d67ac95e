import { describe, expect, it, vi } from 'vitest';
import { act } from 'preact/test-utils';
import { App, coalesce, Messenger } from '../src/app';
import { qrMatrix, qrSvg, QUIET } from '../src/components/qr';
import { Chat, Composer, MessageList, MessageRow } from '../src/screens/Chat';
import { ConversationList } from '../src/screens/ConversationList';
import { ChatDetails } from '../src/screens/ChatDetails';
import { Link } from '../src/screens/Link';
import jsQR from 'jsqr';
import { CoreError } from '../src/core';
import { FakeCore, message } from './fakeCore';
import { key, mount, settle, type } from './render';

const conv = (over = {}) => ({ id: 'c1', kind: 'direct' as const, title: '+15550000002', unread: 0, time: 1_700_000_000_000, ...over });

describe('conversation list', () => {
  it('shows the last message and the unread count, and none when all is read', async () => {
    const root = await mount(
      <ConversationList
        conversations={[
          conv({ id: 'a', lastMessage: 'see you at 8', unread: 3 }),
          conv({ id: 'b', title: 'Family', kind: 'group', lastMessage: 'ok', unread: 0 }),
        ]}
        onSelect={() => undefined}
        onOpenDirect={() => Promise.resolve()}
      />,
    );
    const rows = root.querySelectorAll('button.conversation');
    expect(rows).toHaveLength(2);
    expect(rows[0]?.querySelector('.conv-last')?.textContent).toBe('see you at 8');
    expect(rows[0]?.querySelector('[data-testid=unread]')?.textContent).toContain('3');
    expect(rows[0]?.querySelector('.sr-only')?.textContent).toBe('Unread: 3');
    expect(rows[1]?.querySelector('[data-testid=unread]')).toBeNull();
    expect(rows[1]?.textContent).toContain('Group');
    // A number title stays left to right.
    expect(rows[0]?.querySelector('bdi[dir=ltr]')?.textContent).toBe('+15550000002');
  });
});

describe('composer', () => {
  it('sends on Enter and clears; Shift+Enter does not send', async () => {
    const sent: string[] = [];
    const root = await mount(<Composer onSend={(t) => (sent.push(t), Promise.resolve())} />);
    const box = root.querySelector('textarea') as HTMLTextAreaElement;
    await type(box, 'line one');
    expect(await key(box, 'Enter', { shiftKey: true }), 'Shift+Enter keeps its default (newline)').toBe(true);
    expect(sent).toEqual([]);
    expect(await key(box, 'Enter'), 'Enter is taken over').toBe(false);
    expect(sent).toEqual(['line one']);
    expect(box.value).toBe('');
    // Blank text is not sent.
    await type(box, '   ');
    await key(box, 'Enter');
    expect(sent).toEqual(['line one']);
  });

  it('is labelled and described', async () => {
    const root = await mount(<Composer onSend={() => Promise.resolve()} />);
    const box = root.querySelector('textarea') as HTMLTextAreaElement;
    expect(root.querySelector(`label[for=${box.id}]`)?.textContent).toBe('Message');
    expect(root.querySelector('#' + (box.getAttribute('aria-describedby') ?? ''))?.textContent).toContain('Shift+Enter');
  });
});

describe('right to left', () => {
  it('renders every message with dir=auto, Arabic included', async () => {
    const root = await mount(<MessageRow message={message('c1', 1, { text: 'مرحبا، كيف حالك؟' })} />, 'ar');
    const text = root.querySelector('.text') as HTMLElement;
    expect(text.getAttribute('dir')).toBe('auto');
    expect(text.textContent).toBe('مرحبا، كيف حالك؟');
    // The sender's number stays left to right inside the Arabic UI.
    expect(root.querySelector('bdi.from')?.getAttribute('dir')).toBe('ltr');
  });

  it('the Arabic UI sets html dir=rtl and shows the no-core screen in Arabic', async () => {
    document.documentElement.dir = 'ltr';
    const root = await mount(<App initialLang="ar" load={() => Promise.resolve({ status: 'absent' })} />);
    expect(document.documentElement.getAttribute('dir')).toBe('rtl');
    expect(document.documentElement.lang).toBe('ar');
    expect(root.querySelector('h1')?.textContent).toBe('بُني هذا الخادم بدون نواة عميل الويب');
  });

  it('the switcher changes the language and remembers it', async () => {
    localStorage.clear();
    const root = await mount(<App initialLang="en" load={() => Promise.resolve({ status: 'absent' })} />);
    expect(root.querySelector('h1')?.textContent).toBe('This server was built without the web client core');
    const ms = root.querySelector('button[data-lang=ms]') as HTMLButtonElement;
    await act(() => ms.click());
    await settle();
    expect(root.querySelector('h1')?.textContent).toBe('Pelayan ini dibina tanpa teras klien web');
    expect(ms.getAttribute('aria-pressed')).toBe('true');
    expect(localStorage.getItem('sirr.lang')).toBe('ms');
    expect(document.documentElement.dir).toBe('ltr');
  });
});

describe('message list', () => {
  it('keeps fewer than 200 message nodes for 10,000 messages, starting at the newest', async () => {
    const messages = Array.from({ length: 10_000 }, (_, i) => message('c1', i));
    const root = await mount(<MessageList messages={messages} />);
    const nodes = root.querySelectorAll('[data-message]');
    expect(nodes.length).toBeGreaterThan(0);
    expect(nodes.length).toBeLessThan(200);
    expect(root.querySelector('[data-message=m9999]'), 'newest shown').not.toBeNull();
    expect(root.querySelector('[data-message=m0]'), 'oldest not in the DOM').toBeNull();
    // Scrolling to the top brings the oldest in, and still keeps the DOM small.
    const list = root.querySelector('.vlist') as HTMLElement;
    await act(() => {
      list.scrollTop = 0;
      list.dispatchEvent(new Event('scroll'));
    });
    await settle();
    expect(root.querySelector('[data-message=m0]')).not.toBeNull();
    expect(root.querySelectorAll('[data-message]').length).toBeLessThan(200);
  });
});

describe('chat', () => {
  it('sends through the core, shows delivery state, follows receipts and marks read', async () => {
    const core = new FakeCore();
    core.msgs.set('c1', [message('c1', 1, { text: 'hello' })]);
    const root = await mount(<Chat core={core} conversation={conv()} />);
    expect(core.readUpTo.get('c1')).toBe('m1');
    const box = root.querySelector('textarea') as HTMLTextAreaElement;
    await type(box, 'hi there');
    await key(box, 'Enter');
    expect(core.sent).toEqual([{ conversation: 'c1', text: 'hi there' }]);
    const mine = root.querySelector('[data-message=out-1]') as HTMLElement;
    expect(mine.querySelector('[data-state]')?.textContent).toBe('Sending');
    await act(() => core.emit({ kind: 'receipt', conversation: 'c1', message: 'out-1', state: 'read' }));
    expect(root.querySelector('[data-message=out-1] [data-state]')?.textContent).toBe('Read');
    await act(() => core.emit({ kind: 'message', message: message('c1', 3, { text: 'new one' }) }));
    await settle();
    expect(root.querySelector('[data-message=m3] .text')?.textContent).toBe('new one');
    expect(core.readUpTo.get('c1')).toBe('m3');
  });

  it('the messenger shows the disconnected banner only while disconnected', async () => {
    const core = new FakeCore();
    core.convs = [conv({ lastMessage: 'hello', unread: 1 })];
    const root = await mount(<Messenger core={core} />);
    expect(root.querySelector('[data-testid=banner]')).toBeNull();
    await act(() => core.emit({ kind: 'connection', state: 'offline' }));
    expect(root.querySelector('[data-testid=banner]')?.textContent).toContain('Not connected');
    await act(() => core.emit({ kind: 'connection', state: 'connected' }));
    expect(root.querySelector('[data-testid=banner]')).toBeNull();
  });
});

describe('link', () => {
  it('shows the code as text, as the approve command and as a QR code that decodes to it', async () => {
    const core = new FakeCore();
    const root = await mount(<Link core={core} />);
    const form = root.querySelector('form') as HTMLFormElement;
    await act(() => void form.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true })));
    await settle();
    expect((root.querySelector('#link-code') as HTMLInputElement).value).toBe('sirr-link:TESTCODE');
    expect(root.querySelector('[data-testid=link-command]')?.textContent).toBe('sirr device approve sirr-link:TESTCODE');
    const img = root.querySelector('img.qr') as HTMLImageElement;
    expect(img.alt).toBe('QR code of the link code');
    expect(decodeURIComponent(img.src.split(',')[1] ?? '')).toBe(qrSvg('sirr-link:TESTCODE'));
  });

  it('a link that fails says why and offers to start again', async () => {
    const core = new FakeCore();
    const root = await mount(<Link core={core} />);
    const form = root.querySelector('form') as HTMLFormElement;
    await act(() => void form.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true })));
    await settle();
    expect(root.querySelector('img.qr')).not.toBeNull();
    await act(() => core.emit({ kind: 'linkFailed', error: new CoreError('invalid_code', 'expired') }));
    expect(root.querySelector('img.qr')).toBeNull();
    expect(root.querySelector('[role=alert]')?.textContent).toBe('the link code is wrong or has expired');
    expect(root.querySelector('form')).not.toBeNull();
  });

  it('draws a QR code that a reader decodes back to the code', () => {
    const code = 'sirr-link:AbCdEf0123456789-_xyz';
    // Rasterise the SVG's path exactly as drawn: 4 pixels per module.
    const svg = qrSvg(code);
    const full = qrMatrix(code).size + 2 * QUIET;
    const scale = 4;
    const px = full * scale;
    const rgba = new Uint8ClampedArray(px * px * 4).fill(255);
    for (const [, x, y] of svg.matchAll(/M(\d+) (\d+)h1v1h-1z/g)) {
      for (let dy = 0; dy < scale; dy++)
        for (let dx = 0; dx < scale; dx++) {
          const o = ((Number(y) * scale + dy) * px + Number(x) * scale + dx) * 4;
          rgba[o] = rgba[o + 1] = rgba[o + 2] = 0;
        }
    }
    expect(jsQR(rgba, px, px)?.data).toBe(code);
  });
});

describe('chat details', () => {
  it('a direct chat shows its safety number as digits and as a QR code, on request', async () => {
    const core = new FakeCore();
    core.safetyNumber = () => Promise.resolve('12345 67890 '.repeat(6).trim());
    const root = await mount(<ChatDetails core={core} conversation={conv()} />);
    expect(root.querySelector('[data-testid=safety-number]')).toBeNull();
    const show = [...root.querySelectorAll('button')].find((b) => b.textContent === 'Show the safety number') as HTMLButtonElement;
    await act(() => show.click());
    await settle();
    expect(root.querySelector('[data-testid=safety-number]')?.textContent).toBe('12345 67890 '.repeat(6).trim());
    const img = root.querySelector('img.qr') as HTMLImageElement;
    expect(decodeURIComponent(img.src.split(',')[1] ?? '')).toBe(qrSvg('1234567890'.repeat(6)));
  });

  it('a group lists its members and adds, removes and renames through the core', async () => {
    const core = new FakeCore();
    const calls: string[] = [];
    core.members = () => Promise.resolve([{ phone: '+15550000002' }]);
    core.addMembers = (_c: string, phones: string[]) => (calls.push(`add ${phones.join()}`), Promise.resolve());
    core.removeMembers = (_c: string, phones: string[]) => (calls.push(`remove ${phones.join()}`), Promise.resolve());
    core.renameGroup = (_c: string, name: string) => (calls.push(`rename ${name}`), Promise.resolve());
    let changed = 0;
    const root = await mount(
      <ChatDetails core={core} conversation={conv({ kind: 'group', title: 'team' })} onChanged={() => changed++} />,
    );
    await settle();
    expect(root.querySelector('ul.members')?.textContent).toContain('+15550000002');
    const remove = [...root.querySelectorAll('ul.members button')][0] as HTMLButtonElement;
    await act(() => remove.click());
    await settle();
    await type(root.querySelector('#add-member') as HTMLInputElement, '+15550000003');
    const [addForm, renameForm] = [...root.querySelectorAll('form')] as HTMLFormElement[];
    await act(() => void addForm?.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true })));
    await settle();
    await type(root.querySelector('#group-name') as HTMLInputElement, 'the team');
    await act(() => void renameForm?.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true })));
    await settle();
    expect(calls).toEqual(['remove +15550000002', 'add +15550000003', 'rename the team']);
    expect(changed).toBe(3);
  });

  it('sets the disappearing-message timer and blocks a contact through the core', async () => {
    const core = new FakeCore();
    const calls: string[] = [];
    core.setTimer = (_c: string, seconds: number) => (calls.push(`timer ${seconds}`), Promise.resolve());
    core.block = (phone: string) => (calls.push(`block ${phone}`), Promise.resolve());
    let changed = 0;
    const root = await mount(<ChatDetails core={core} conversation={conv({ timerSeconds: 3600 })} onChanged={() => changed++} />);
    const select = root.querySelector('#timer') as HTMLSelectElement;
    expect(select.value).toBe('3600');
    await act(() => {
      select.value = '604800';
      select.dispatchEvent(new Event('change', { bubbles: true }));
    });
    await settle();
    const block = [...root.querySelectorAll('button')].find((b) => b.textContent === 'Block +15550000002') as HTMLButtonElement;
    await act(() => block.click());
    await settle();
    expect(calls).toEqual(['timer 604800', 'block +15550000002']);
    expect(changed).toBe(1);
    expect(root.querySelector('[role=status]')?.textContent).toContain('is blocked');
  });
});

describe('coalesce', () => {
  it('runs a burst of calls as one run now and one after, and every caller waits for its run', async () => {
    let runs = 0;
    let release: () => void = () => {};
    const reload = coalesce(() => {
      runs++;
      return new Promise<void>((r) => (release = r));
    });
    const first = reload();
    const burst = Array.from({ length: 100 }, () => reload());
    expect(runs).toBe(1);
    release();
    await first;
    await vi.waitFor(() => expect(runs).toBe(2));
    release();
    await Promise.all(burst);
    expect(runs).toBe(2);
    const later = reload();
    expect(runs).toBe(3);
    release();
    await later;
  });
});

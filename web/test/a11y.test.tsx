// Accessibility of the signed-in screens (which the browser tests cannot reach until the wasm
// core exists): axe-core over the rendered DOM, in English and Arabic. Colour contrast needs
// real layout and is left to the browser tests.
import axe from 'axe-core';
import { act } from 'preact/test-utils';
import { describe, expect, it } from 'vitest';
import { Messenger } from '../src/app';
import type { Lang } from '../src/i18n';
import { Link } from '../src/screens/Link';
import { Settings } from '../src/screens/Settings';
import { FakeCore, message } from './fakeCore';
import { mount, settle } from './render';

async function serious(root: HTMLElement): Promise<string[]> {
  const result = await axe.run(root, { rules: { 'color-contrast': { enabled: false } } });
  expect(result.passes.length, 'axe checked something').toBeGreaterThan(5);
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.nodes.map((n) => n.html).join(' | ')}`);
}

function core(): FakeCore {
  const c = new FakeCore();
  c.convs = [
    { id: 'c1', kind: 'direct', title: '+15550000002', unread: 2, time: 1_700_000_000_000, lastMessage: 'hi' },
    { id: 'c2', kind: 'group', title: 'العائلة', unread: 0, time: 1_700_000_000_000, lastMessage: 'مرحبا' },
  ];
  c.msgs.set('c1', [message('c1', 1), message('c1', 2, { text: 'أهلا' })]);
  return c;
}

describe.each<Lang>(['en', 'ar'])('axe finds no serious or critical violation (%s)', (lang) => {
  it('in the messenger with a chat open', async () => {
    const root = await mount(<Messenger core={core()} />, lang);
    await act(() => (root.querySelector('button[data-conversation=c1]') as HTMLButtonElement).click());
    await settle();
    expect(root.querySelector('textarea'), 'the chat is open').not.toBeNull();
    expect(await serious(root)).toEqual([]);
  });

  it('in settings', async () => {
    const root = await mount(<Settings core={core()} />, lang);
    expect(root.querySelectorAll('input[type=checkbox]')).toHaveLength(4);
    expect(await serious(root)).toEqual([]);
  });

  it('on the link screen with a code shown', async () => {
    const root = await mount(<Link core={core()} />, lang);
    const form = root.querySelector('form') as HTMLFormElement;
    await act(() => void form.dispatchEvent(new Event('submit', { bubbles: true, cancelable: true })));
    await settle();
    expect(root.querySelector('img.qr')).not.toBeNull();
    expect(await serious(root)).toEqual([]);
  });
});

it('the check itself catches an unlabelled control', async () => {
  const root = await mount(
    <main>
      <h1>x</h1>
      <input type="text" />
      <button type="button" />
    </main>,
  );
  const found = await serious(root);
  expect(found.some((v) => v.startsWith('label'))).toBe(true);
  expect(found.some((v) => v.startsWith('button-name'))).toBe(true);
});

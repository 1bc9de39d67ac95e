// Rendering helpers for component tests: a fresh container per test, effects flushed.
import type { ComponentChildren } from 'preact';
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { I18nContext, translator, type Lang } from '../src/i18n';

export async function mount(children: ComponentChildren, lang: Lang = 'en'): Promise<HTMLElement> {
  const root = document.createElement('div');
  document.body.replaceChildren(root);
  const i18n = { lang, t: translator(lang), setLang: () => undefined };
  await act(() => {
    render(<I18nContext.Provider value={i18n}>{children}</I18nContext.Provider>, root);
  });
  await settle();
  return root;
}

/** Lets pending promises (the fake core answers asynchronously) and their renders finish. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await act(async () => {
      await new Promise((r) => setTimeout(r, 0));
    });
  }
}

export async function key(el: Element, key: string, init: KeyboardEventInit = {}): Promise<boolean> {
  let notCancelled = true;
  await act(() => {
    notCancelled = el.dispatchEvent(new KeyboardEvent('keydown', { key, bubbles: true, cancelable: true, ...init }));
  });
  await settle();
  return notCancelled;
}

export async function type(el: HTMLInputElement | HTMLTextAreaElement, value: string): Promise<void> {
  await act(() => {
    el.value = value;
    el.dispatchEvent(new Event('input', { bubbles: true }));
  });
}

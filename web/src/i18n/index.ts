// Languages, their catalogues, and how one is chosen: the person's choice (kept in
// localStorage) first, then the browser's preferred languages, then English.
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { ar } from './ar';
import { en, type Catalogue, type MessageKey } from './en';
import { ms } from './ms';

export type { MessageKey } from './en';

export const LANGS = ['en', 'ar', 'ms'] as const;
export type Lang = (typeof LANGS)[number];

export const CATALOGUES: Record<Lang, Catalogue> = { en, ar, ms };

/** Each language's name in itself, for the switcher. */
export const LANG_NAMES: Record<Lang, string> = {
  en: 'English',
  ar: 'العربية',
  ms: 'Bahasa Melayu',
};

export const STORAGE_KEY = 'sirr.lang';

function isLang(s: string | null | undefined): s is Lang {
  return (LANGS as readonly string[]).includes(s ?? '');
}

/** `stored` wins when it names a language we have; else the first preferred language we have. */
export function pickLang(preferred: readonly string[], stored: string | null): Lang {
  if (isLang(stored)) return stored;
  for (const tag of preferred) {
    const base = tag.toLowerCase().split('-')[0];
    if (isLang(base)) return base;
  }
  return 'en';
}

export function storedLang(): string | null {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the choice lasts for this page only
  }
}

export function storeLang(lang: Lang): void {
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // storage disabled; nothing to keep it in
  }
}

export function dirOf(lang: Lang): 'rtl' | 'ltr' {
  return lang === 'ar' ? 'rtl' : 'ltr';
}

/** Sets `<html lang dir>` and the title, so the browser and assistive technology follow. */
export function applyLang(lang: Lang, doc: Document = document): void {
  doc.documentElement.lang = lang;
  doc.documentElement.dir = dirOf(lang);
  doc.title = CATALOGUES[lang]['app.name'];
}

export type Translate = (key: MessageKey, vars?: Record<string, string | number>) => string;

export function translator(lang: Lang): Translate {
  const cat = CATALOGUES[lang];
  const numbers = new Intl.NumberFormat(lang);
  return (key, vars) =>
    cat[key].replace(/\{(\w+)\}/g, (whole, name: string) => {
      const v = vars?.[name];
      if (v === undefined) return whole;
      return typeof v === 'number' ? numbers.format(v) : v;
    });
}

export interface I18n {
  lang: Lang;
  t: Translate;
  setLang: (lang: Lang) => void;
}

export const I18nContext = createContext<I18n>({
  lang: 'en',
  t: translator('en'),
  setLang: () => undefined,
});

export function useI18n(): I18n {
  return useContext(I18nContext);
}

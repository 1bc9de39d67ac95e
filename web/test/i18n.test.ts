import { describe, expect, it } from 'vitest';
import { CATALOGUES, LANGS, applyLang, pickLang, translator } from '../src/i18n';

const placeholders = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe('catalogues', () => {
  it('have identical keys and placeholders in every language', () => {
    const reference = Object.keys(CATALOGUES.en).sort();
    for (const lang of LANGS) {
      const cat = CATALOGUES[lang];
      expect(Object.keys(cat).sort(), lang).toEqual(reference);
      for (const k of reference) {
        const key = k as keyof typeof cat;
        expect(cat[key].trim(), `${lang} ${k} is empty`).not.toBe('');
        expect(placeholders(cat[key]), `${lang} ${k}`).toEqual(placeholders(CATALOGUES.en[key]));
      }
    }
  });

  it('are actually translated (Arabic in Arabic script, Malay differs from English)', () => {
    expect(CATALOGUES.ar['nocore.title']).toMatch(/[\u0600-\u06ff]/);
    expect(CATALOGUES.ms['nocore.title']).not.toBe(CATALOGUES.en['nocore.title']);
  });
});

describe('language choice', () => {
  it('prefers the stored choice, then the browser languages, then English', () => {
    expect(pickLang(['ar-SA', 'en'], 'ms')).toBe('ms');
    expect(pickLang(['fr-FR', 'ar-EG', 'en'], null)).toBe('ar');
    expect(pickLang(['ms-MY'], 'xx')).toBe('ms');
    expect(pickLang(['fr', 'de'], null)).toBe('en');
  });

  it('sets html lang and dir', () => {
    applyLang('ar');
    expect(document.documentElement.lang).toBe('ar');
    expect(document.documentElement.dir).toBe('rtl');
    applyLang('ms');
    expect(document.documentElement.dir).toBe('ltr');
  });

  it('fills placeholders and formats numbers', () => {
    expect(translator('en')('conv.unread', { count: 1234 })).toBe('Unread: 1,234');
    expect(translator('ms')('chat.sendFailed', { reason: 'x' })).toBe('Tidak dapat menghantar: x');
  });
});

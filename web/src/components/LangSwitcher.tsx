import { LANGS, LANG_NAMES, useI18n } from '../i18n';

/**
 * One button per language, each named in its own language (and marked with its `lang`, so a
 * screen reader pronounces it right). Buttons: reachable with Tab, chosen with Enter or Space.
 */
export function LangSwitcher() {
  const { lang, t, setLang } = useI18n();
  return (
    <div class="lang-switcher" role="group" aria-label={t('lang.label')}>
      <span class="lang-label" aria-hidden="true">
        {t('lang.label')}
      </span>
      {LANGS.map((l) => (
        <button
          key={l}
          type="button"
          lang={l}
          dir={l === 'ar' ? 'rtl' : 'ltr'}
          aria-pressed={l === lang}
          data-lang={l}
          onClick={() => setLang(l)}
        >
          {LANG_NAMES[l]}
        </button>
      ))}
    </div>
  );
}

import type { CoreErrorCode } from '../core';
import { LangSwitcher } from '../components/LangSwitcher';
import { useI18n } from '../i18n';

/** Shown when the server was built without the wasm core: the truth, in the chosen language. */
export function NoCore() {
  const { t } = useI18n();
  return (
    <main class="notice" aria-labelledby="nocore-title">
      <h1 id="nocore-title">{t('nocore.title')}</h1>
      <p>{t('nocore.body')}</p>
      <LangSwitcher />
    </main>
  );
}

/** The core did not start: why, in the person's language (e.g. open in another tab), then detail. */
export function Failed({ code, detail }: { code: CoreErrorCode; detail: string }) {
  const { t } = useI18n();
  return (
    <main class="notice" aria-labelledby="failed-title">
      <h1 id="failed-title">{t('failed.title')}</h1>
      <p role="alert" data-error={code}>
        {t(`error.${code}`)}
      </p>
      <p>{t('failed.body')}</p>
      <pre dir="ltr">{detail}</pre>
      <button type="button" onClick={() => location.reload()}>
        {t('failed.reload')}
      </button>
      <LangSwitcher />
    </main>
  );
}

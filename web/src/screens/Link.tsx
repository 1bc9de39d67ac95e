import { useEffect, useState } from 'preact/hooks';
import { LangSwitcher } from '../components/LangSwitcher';
import { qrSvg, svgDataUrl } from '../components/qr';
import type { LinkCode, SirrCore } from '../core';
import { isCoreError } from '../core';
import { useI18n } from '../i18n';

/**
 * Linking this browser: a name for the device, then the link code as a QR code and as text with
 * the command that approves it. The app leaves this screen on the core's `linkApproved` event.
 */
export function Link({ core }: { core: SirrCore }) {
  const { t, lang } = useI18n();
  const [name, setName] = useState(t('link.defaultName'));
  const [link, setLink] = useState<LinkCode | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);

  // A pending link is cancelled when this screen goes away without approval.
  useEffect(() => () => void core.cancelLink(), [core]);
  // A link that expired (or was refused) is said so; the person can start again.
  useEffect(
    () =>
      core.onEvent((ev) => {
        if (ev.kind !== 'linkFailed') return;
        setLink(null);
        setCopied(false);
        setError(t(`error.${ev.error.code}`));
      }),
    [core, t],
  );

  const start = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      setLink(await core.startLink(name.trim() || t('link.defaultName')));
    } catch (err) {
      setError(isCoreError(err) ? t(`error.${err.code}`) : String(err));
    }
  };
  const cancel = async () => {
    await core.cancelLink();
    setLink(null);
    setCopied(false);
  };
  const copy = async () => {
    if (!link) return;
    await navigator.clipboard.writeText(link.code);
    setCopied(true);
  };

  const command = link ? `sirr device approve ${link.code}` : '';
  const expires = link
    ? new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' }).format(link.expiresAt)
    : '';

  return (
    <main class="link" aria-labelledby="link-title">
      <h1 id="link-title">{t('link.title')}</h1>
      <p>{t('link.intro')}</p>
      {!link && (
        <form onSubmit={(e) => void start(e)}>
          <label for="device-name">{t('link.deviceName')}</label>
          <input id="device-name" value={name} maxLength={64} onInput={(e) => setName(e.currentTarget.value)} />
          <button type="submit">{t('link.start')}</button>
        </form>
      )}
      {error && <p role="alert">{error}</p>}
      {link && (
        <section aria-label={t('link.code')}>
          <img class="qr" src={svgDataUrl(qrSvg(link.code))} alt={t('link.qrLabel')} width={240} height={240} />
          <p>{t('link.instructions')}</p>
          <pre class="command" dir="ltr" tabIndex={0}>
            <code data-testid="link-command">{command}</code>
          </pre>
          <label for="link-code">{t('link.code')}</label>
          <input id="link-code" dir="ltr" readOnly value={link.code} onFocus={(e) => e.currentTarget.select()} />
          <button type="button" onClick={() => void copy()}>
            {copied ? t('link.copied') : t('link.copy')}
          </button>
          <p role="status">
            {t('link.waiting')} {t('link.expires', { time: expires })}
          </p>
          <button type="button" onClick={() => void cancel()}>
            {t('link.cancel')}
          </button>
        </section>
      )}
      <LangSwitcher />
    </main>
  );
}

import { useEffect, useState } from 'preact/hooks';
import { LangSwitcher } from '../components/LangSwitcher';
import type { Consent, Device, SirrCore } from '../core';
import { isCoreError } from '../core';
import { useI18n } from '../i18n';

/** Language, the account's devices (rename, remove, approve a new one) and consents. */
export function Settings({ core }: { core: SirrCore }) {
  const { t } = useI18n();
  const [devices, setDevices] = useState<Device[]>([]);
  const [consents, setConsents] = useState<Consent[]>([]);
  const [code, setCode] = useState('');
  const [status, setStatus] = useState<string | null>(null);

  const explain = (err: unknown) => setStatus(isCoreError(err) ? t(`error.${err.code}`) : String(err));
  const reload = async () => {
    try {
      setDevices(await core.devices());
      setConsents(await core.consents());
    } catch (err) {
      explain(err);
    }
  };
  useEffect(() => void reload(), [core]);

  const approve = async (e: Event) => {
    e.preventDefault();
    try {
      const device = await core.approveLink(code.trim());
      setCode('');
      setStatus(t('settings.approved', { name: device.name }));
      await reload();
    } catch (err) {
      explain(err);
    }
  };

  return (
    <section class="settings" aria-labelledby="settings-title">
      <h2 id="settings-title">{t('settings.title')}</h2>
      <LangSwitcher />

      <h3>{t('settings.devices')}</h3>
      <ul class="devices">
        {devices.map((d) => (
          <DeviceRow key={d.id} device={d} core={core} onChange={reload} onError={explain} />
        ))}
      </ul>

      <form onSubmit={(e) => void approve(e)}>
        <h3>{t('settings.approveTitle')}</h3>
        <label for="approve-code">{t('settings.approveCode')}</label>
        <input id="approve-code" dir="ltr" value={code} onInput={(e) => setCode(e.currentTarget.value)} />
        <button type="submit">{t('settings.approve')}</button>
      </form>

      <fieldset class="consents">
        <legend>{t('settings.consents')}</legend>
        <p>{t('settings.consentsHelp')}</p>
        {consents.map((c) => (
          <div key={c.purpose}>
            <input
              type="checkbox"
              id={`consent-${c.purpose}`}
              checked={c.granted}
              disabled={!c.offered}
              aria-describedby={c.offered ? undefined : `consent-${c.purpose}-note`}
              onChange={(e) => {
                const granted = e.currentTarget.checked;
                core.setConsent(c.purpose, granted).then(
                  (next) => setConsents((cs) => cs.map((x) => (x.purpose === next.purpose ? next : x))),
                  explain,
                );
              }}
            />
            <label for={`consent-${c.purpose}`}>{t(`consent.${c.purpose}`)}</label>
            {!c.offered && <span id={`consent-${c.purpose}-note`}> — {t('settings.notOffered')}</span>}
          </div>
        ))}
      </fieldset>
      {status && <p role="status">{status}</p>}
    </section>
  );
}

function DeviceRow(props: { device: Device; core: SirrCore; onChange: () => Promise<void>; onError: (e: unknown) => void }) {
  const { t } = useI18n();
  const { device, core } = props;
  const [name, setName] = useState(device.name);
  const inputId = `device-${device.id}`;
  return (
    <li>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          core.renameDevice(device.id, name.trim()).then(props.onChange, props.onError);
        }}
      >
        <label for={inputId}>{t('settings.deviceName', { name: device.name })}</label>
        <input id={inputId} dir="auto" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        {device.current && <span class="current"> ({t('settings.thisDevice')})</span>}
        <button type="submit">{t('settings.rename')}</button>
        {!device.current && (
          <button
            type="button"
            onClick={() => {
              core.removeDevice(device.id).then(props.onChange, props.onError);
            }}
          >
            {t('settings.remove')}
          </button>
        )}
      </form>
    </li>
  );
}

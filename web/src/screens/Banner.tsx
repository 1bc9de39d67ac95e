import type { ConnectionState } from '../core';
import { useI18n } from '../i18n';

/** Says plainly when the server is not reachable; nothing while connected. */
export function Banner({ state }: { state: ConnectionState }) {
  const { t } = useI18n();
  return (
    <div class="banner-slot" role="status" aria-live="polite">
      {state !== 'connected' && (
        <p class={'banner ' + state} data-testid="banner">
          {state === 'offline' ? t('banner.offline') : t('banner.connecting')}
        </p>
      )}
    </div>
  );
}

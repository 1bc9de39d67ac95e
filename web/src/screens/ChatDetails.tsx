import { useEffect, useState } from 'preact/hooks';
import { qrSvg, svgDataUrl } from '../components/qr';
import type { ConversationSummary, GroupMember, SirrCore } from '../core';
import { isCoreError } from '../core';
import { useI18n } from '../i18n';

/**
 * What a conversation is, below its title (a native disclosure, closed by default): for a
 * direct chat the safety number to compare (digits and a QR code); for a group its members
 * (add, remove), its name, and leaving it.
 */
export function ChatDetails(props: { core: SirrCore; conversation: ConversationSummary; onChanged?: () => void }) {
  const { t } = useI18n();
  return (
    <details class="chat-details">
      <summary>{t('details.title')}</summary>
      {props.conversation.kind === 'direct' ? <Safety {...props} /> : <Group {...props} />}
      <Timer {...props} />
      {props.conversation.kind === 'direct' && <Block {...props} />}
    </details>
  );
}

function useExplain() {
  const { t } = useI18n();
  const [status, setStatus] = useState<string | null>(null);
  const explain = (err: unknown) => setStatus(isCoreError(err) ? t(`error.${err.code}`) : String(err));
  return { status, setStatus, explain };
}

function Safety({ core, conversation }: { core: SirrCore; conversation: ConversationSummary }) {
  const { t } = useI18n();
  const [digits, setDigits] = useState<string | null>(null);
  const { status, explain } = useExplain();
  useEffect(() => setDigits(null), [conversation.id]);
  const show = async () => {
    try {
      setDigits(await core.safetyNumber(conversation.title));
    } catch (err) {
      explain(err);
    }
  };
  return (
    <section aria-label={t('details.safety')}>
      <h3>{t('details.safety')}</h3>
      {digits === null ? (
        <button type="button" onClick={() => void show()}>
          {t('details.show')}
        </button>
      ) : (
        <>
          <p>{t('details.safetyHelp', { phone: conversation.title })}</p>
          <p class="safety-number" dir="ltr" data-testid="safety-number">
            <code>{digits}</code>
          </p>
          <img class="qr" src={svgDataUrl(qrSvg(digits.replace(/\s+/g, '')))} alt={t('details.safetyQr')} width={200} height={200} />
        </>
      )}
      {status && <p role="alert">{status}</p>}
    </section>
  );
}

function Group({ core, conversation, onChanged }: { core: SirrCore; conversation: ConversationSummary; onChanged?: () => void }) {
  const { t } = useI18n();
  const [members, setMembers] = useState<GroupMember[]>([]);
  const [phone, setPhone] = useState('');
  const [name, setName] = useState(conversation.title);
  const { status, explain } = useExplain();
  const id = conversation.id;
  const reload = async () => {
    try {
      setMembers(await core.members(id));
    } catch (err) {
      explain(err);
    }
  };
  useEffect(() => {
    setName(conversation.title);
    void reload();
  }, [core, id, conversation.title]);

  const act = async (what: () => Promise<void>) => {
    try {
      await what();
      await reload();
      onChanged?.();
    } catch (err) {
      explain(err);
    }
  };
  return (
    <section aria-label={t('details.members')}>
      <h3>{t('details.members')}</h3>
      <ul class="members">
        {members.map((m) => (
          <li key={m.phone}>
            <bdi dir="ltr">{m.phone}</bdi>{' '}
            <button type="button" onClick={() => void act(() => core.removeMembers(id, [m.phone]))}>
              {t('details.remove', { phone: m.phone })}
            </button>
          </li>
        ))}
      </ul>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void act(async () => {
            await core.addMembers(id, [phone.trim()]);
            setPhone('');
          });
        }}
      >
        <label for="add-member">{t('details.addPhone')}</label>
        <input id="add-member" type="tel" dir="ltr" value={phone} onInput={(e) => setPhone(e.currentTarget.value)} />
        <button type="submit">{t('details.add')}</button>
      </form>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void act(() => core.renameGroup(id, name.trim()));
        }}
      >
        <label for="group-name">{t('details.rename')}</label>
        <input id="group-name" dir="auto" value={name} maxLength={64} onInput={(e) => setName(e.currentTarget.value)} />
        <button type="submit">{t('details.save')}</button>
      </form>
      <button type="button" class="danger" onClick={() => void act(() => core.leaveGroup(id))}>
        {t('details.leave')}
      </button>
      {status && <p role="alert">{status}</p>}
    </section>
  );
}

/** Disappearing messages: the choices people use, applied for everyone in the chat. */
export const TIMER_CHOICES = [0, 3600, 86_400, 604_800] as const;

function Timer({ core, conversation, onChanged }: { core: SirrCore; conversation: ConversationSummary; onChanged?: () => void }) {
  const { t } = useI18n();
  const { status, explain } = useExplain();
  const current = conversation.timerSeconds ?? 0;
  const set = async (seconds: number) => {
    try {
      await core.setTimer(conversation.id, seconds);
      onChanged?.();
    } catch (err) {
      explain(err);
    }
  };
  return (
    <section aria-label={t('details.timer')}>
      <label for="timer">{t('details.timer')}</label>
      <select id="timer" value={String(current)} onChange={(e) => void set(Number(e.currentTarget.value))}>
        {TIMER_CHOICES.map((s) => (
          <option key={s} value={String(s)}>
            {t(`details.timer.${s}`)}
          </option>
        ))}
      </select>
      {status && <p role="alert">{status}</p>}
    </section>
  );
}

function Block({ core, conversation }: { core: SirrCore; conversation: ConversationSummary }) {
  const { t } = useI18n();
  const { status, setStatus, explain } = useExplain();
  const block = async () => {
    try {
      await core.block(conversation.title);
      setStatus(t('details.blocked', { phone: conversation.title }));
    } catch (err) {
      explain(err);
    }
  };
  return (
    <section aria-label={t('details.block', { phone: conversation.title })}>
      <button type="button" class="danger" onClick={() => void block()}>
        {t('details.block', { phone: conversation.title })}
      </button>
      {status && <p role="status">{status}</p>}
    </section>
  );
}

import { useState } from 'preact/hooks';
import { formatTime } from '../components/format';
import type { ConversationId, ConversationSummary } from '../core';
import { useI18n } from '../i18n';

export interface ConversationListProps {
  conversations: readonly ConversationSummary[];
  selected?: ConversationId;
  onSelect: (id: ConversationId) => void;
  /** Opens (or creates) the direct chat with a number; rejects with a message to show. */
  onOpenDirect: (phone: string) => Promise<void>;
  /** Creates a group with these members' numbers and opens it; rejects with a message to show. */
  onCreateGroup?: (name: string, members: string[]) => Promise<void>;
}

/** The chats, newest first: title, last message, time and unread count. */
export function ConversationList(props: ConversationListProps) {
  const { t, lang } = useI18n();
  const [phone, setPhone] = useState('');
  const [error, setError] = useState<string | null>(null);

  const open = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await props.onOpenDirect(phone.trim());
      setPhone('');
    } catch (err) {
      setError(String(err instanceof Error ? err.message : err));
    }
  };

  return (
    <nav class="conversations" aria-labelledby="conv-title">
      <h2 id="conv-title">{t('conv.title')}</h2>
      <form class="new-chat" onSubmit={(e) => void open(e)}>
        <label for="new-chat-phone">{t('conv.phone')}</label>
        <input
          id="new-chat-phone"
          type="tel"
          dir="ltr"
          autoComplete="tel"
          value={phone}
          onInput={(e) => setPhone(e.currentTarget.value)}
          aria-describedby={error ? 'new-chat-error' : undefined}
        />
        <button type="submit">{t('conv.open')}</button>
        {error && (
          <p id="new-chat-error" role="alert">
            {error}
          </p>
        )}
      </form>
      {props.onCreateGroup && <NewGroup onCreate={props.onCreateGroup} />}
      {props.conversations.length === 0 ? (
        <p>{t('conv.empty')}</p>
      ) : (
        <ul>
          {props.conversations.map((c) => (
            <li key={c.id}>
              <button
                type="button"
                class="conversation"
                data-conversation={c.id}
                aria-current={c.id === props.selected ? 'true' : undefined}
                onClick={() => props.onSelect(c.id)}
              >
                <span class="conv-title" dir="auto">
                  {c.kind === 'direct' && c.title.startsWith('+') ? <bdi dir="ltr">{c.title}</bdi> : c.title}
                </span>
                {c.kind === 'group' && <span class="conv-kind">{t('conv.group')}</span>}
                <time class="conv-time" dateTime={new Date(c.time).toISOString()}>
                  {formatTime(lang, c.time)}
                </time>
                <span class="conv-last" dir="auto">
                  {c.lastMessage ?? t('conv.noMessages')}
                </span>
                {c.unread > 0 && (
                  <span class="unread" data-testid="unread">
                    <bdi dir="ltr" aria-hidden="true">
                      {new Intl.NumberFormat(lang).format(c.unread)}
                    </bdi>
                    <span class="sr-only">{t('conv.unread', { count: c.unread })}</span>
                  </span>
                )}
              </button>
            </li>
          ))}
        </ul>
      )}
    </nav>
  );
}

/** A new group: its name and its members' numbers, in a disclosure closed by default. */
function NewGroup({ onCreate }: { onCreate: (name: string, members: string[]) => Promise<void> }) {
  const { t } = useI18n();
  const [name, setName] = useState('');
  const [members, setMembers] = useState('');
  const [error, setError] = useState<string | null>(null);
  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await onCreate(name.trim(), members.split(/[\s,]+/).filter(Boolean));
      setName('');
      setMembers('');
    } catch (err) {
      setError(String(err instanceof Error ? err.message : err));
    }
  };
  return (
    <details class="new-group">
      <summary>{t('conv.newGroup')}</summary>
      <form onSubmit={(e) => void create(e)}>
        <label for="new-group-name">{t('conv.groupName')}</label>
        <input id="new-group-name" dir="auto" required maxLength={64} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <label for="new-group-members">{t('conv.groupMembers')}</label>
        <input id="new-group-members" dir="ltr" required value={members} onInput={(e) => setMembers(e.currentTarget.value)} />
        <button type="submit">{t('conv.create')}</button>
        {error && <p role="alert">{error}</p>}
      </form>
    </details>
  );
}

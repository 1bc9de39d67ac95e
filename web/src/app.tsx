import { useEffect, useMemo, useState } from 'preact/hooks';
import type { ConnectionState, ConversationId, ConversationSummary, Identity, SirrCore } from './core';
import { isCoreError } from './core';
import { I18nContext, applyLang, storeLang, translator, useI18n, type Lang } from './i18n';
import type { LoadResult } from './loader';
import { Banner } from './screens/Banner';
import { Chat } from './screens/Chat';
import { ConversationList } from './screens/ConversationList';
import { Link } from './screens/Link';
import { Failed, NoCore } from './screens/NoCore';
import { Settings } from './screens/Settings';

export interface AppProps {
  initialLang: Lang;
  /** Loads the core (`loadCore` in the app; a test double in tests). */
  load: () => Promise<LoadResult>;
}

/** The language context, the core's loading, and which screen follows from them. */
export function App({ initialLang, load }: AppProps) {
  const [lang, setLangState] = useState<Lang>(initialLang);
  const [result, setResult] = useState<LoadResult | null>(null);
  const i18n = useMemo(
    () => ({
      lang,
      t: translator(lang),
      setLang: (l: Lang) => {
        storeLang(l);
        setLangState(l);
      },
    }),
    [lang],
  );
  useEffect(() => applyLang(lang), [lang]);
  useEffect(() => void load().then(setResult), [load]);

  let screen;
  if (result === null) screen = <p class="loading">{i18n.t('app.loading')}</p>;
  else if (result.status === 'absent') screen = <NoCore />;
  else if (result.status === 'failed') screen = <Failed code={result.error.code} detail={`${result.error.code}: ${result.error.message}`} />;
  else screen = <Signed core={result.core} />;
  return <I18nContext.Provider value={i18n}>{screen}</I18nContext.Provider>;
}

/** Link first when this browser has no identity; the messenger once it has. */
function Signed({ core }: { core: SirrCore }) {
  const [identity, setIdentity] = useState<Identity | null | undefined>(undefined);
  useEffect(() => {
    void core.identity().then(setIdentity);
    return core.onEvent((ev) => {
      if (ev.kind === 'linkApproved') setIdentity(ev.identity);
    });
  }, [core]);
  if (identity === undefined) return null;
  if (identity === null) return <Link core={core} />;
  return <Messenger core={core} />;
}

export function Messenger({ core }: { core: SirrCore }) {
  const [conversations, setConversations] = useState<ConversationSummary[]>([]);
  const [selected, setSelected] = useState<ConversationId | undefined>(undefined);
  const [view, setView] = useState<'chats' | 'settings'>('chats');
  const [connection, setConnection] = useState<ConnectionState>(core.connection());
  const { t } = useI18n();
  const list = useMemo(() => ({ reload: coalesce(() => core.conversations().then(setConversations)) }), [core]);

  useEffect(() => {
    void list.reload();
    return core.onEvent((ev) => {
      if (ev.kind === 'connection') setConnection(ev.state);
      if (ev.kind === 'message' || ev.kind === 'conversation' || ev.kind === 'receipt') void list.reload();
    });
  }, [core, list]);

  const openDirect = async (phone: string) => {
    try {
      const c = await core.openDirect(phone);
      await list.reload();
      setSelected(c.id);
    } catch (err) {
      throw new Error(isCoreError(err) ? t(`error.${err.code}`) : String(err), { cause: err });
    }
  };
  const createGroup = async (name: string, members: string[]) => {
    try {
      const c = await core.createGroup(name, members);
      await list.reload();
      setSelected(c.id);
    } catch (err) {
      throw new Error(isCoreError(err) ? t(`error.${err.code}`) : String(err), { cause: err });
    }
  };
  const current = conversations.find((c) => c.id === selected);

  return (
    <div class="messenger">
      <Banner state={connection} />
      <header class="top">
        <h1>Sirr</h1>
        <Tabs view={view} onView={setView} />
      </header>
      {view === 'settings' ? (
        <Settings core={core} />
      ) : (
        <div class="panes">
          <ConversationList
            conversations={conversations}
            onSelect={setSelected}
            onOpenDirect={openDirect}
            onCreateGroup={createGroup}
            {...(selected ? { selected } : {})}
          />
          {current ? <Chat core={core} conversation={current} onChanged={() => void list.reload()} /> : <NoChat />}
        </div>
      )}
    </div>
  );
}

function Tabs({ view, onView }: { view: 'chats' | 'settings'; onView: (v: 'chats' | 'settings') => void }) {
  const { t } = useI18n();
  return (
    <nav class="tabs" aria-label={t('app.name')}>
      <button type="button" aria-pressed={view === 'chats'} onClick={() => onView('chats')}>
        {t('nav.chats')}
      </button>
      <button type="button" aria-pressed={view === 'settings'} onClick={() => onView('settings')}>
        {t('nav.settings')}
      </button>
    </nav>
  );
}

function NoChat() {
  const { t } = useI18n();
  return <p class="no-chat">{t('chat.none')}</p>;
}

/**
 * `run` at most once at a time: calls while it runs are folded into one more run after it
 * (a burst of 1,000 incoming messages reloads the list a few times, not 1,000 times at once).
 * Every caller's promise settles once the run that covers its call has finished.
 */
export function coalesce(run: () => Promise<unknown>): () => Promise<void> {
  let current: Promise<void> | null = null;
  let next: Promise<void> | null = null;
  const start = (): Promise<void> => {
    current = run()
      .then(() => undefined)
      .finally(() => {
        current = null;
      });
    return current;
  };
  return () => {
    if (!current) return start();
    next ??= current.then(
      () => {
        next = null;
        return start();
      },
      () => {
        next = null;
        return start();
      },
    );
    return next;
  };
}

import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { formatTime } from '../components/format';
import { VirtualList } from '../components/VirtualList';
import type { ConversationSummary, CoreEvent, Message, SirrCore } from '../core';
import { isCoreError } from '../core';
import { useI18n } from '../i18n';
import { ChatDetails } from './ChatDetails';

/** Messages fetched per page; older pages load as the reader scrolls up. */
export const PAGE = 100;

/** One message: text in its own direction (`dir="auto"`), time, and for ours its delivery state. */
export function MessageRow({ message }: { message: Message }) {
  const { t, lang } = useI18n();
  return (
    <article class={'message ' + message.direction} data-message={message.id}>
      {message.direction === 'in' && message.fromName === undefined && (
        <bdi class="from" dir="ltr">
          {message.from}
        </bdi>
      )}
      {message.direction === 'in' && message.fromName !== undefined && (
        <span class="from" dir="auto">
          {message.fromName}
        </span>
      )}
      <p class="text" dir="auto">
        {message.text}
      </p>
      <footer>
        <time dateTime={new Date(message.time).toISOString()}>{formatTime(lang, message.time)}</time>
        {message.direction === 'out' && message.state && (
          <span class={'state ' + message.state} data-state={message.state}>
            {t(`state.${message.state}`)}
          </span>
        )}
      </footer>
    </article>
  );
}

/** The message list alone (virtualised), so it can be tested with any number of messages. */
export function MessageList({ messages, onNearStart }: { messages: readonly Message[]; onNearStart?: () => void }) {
  const { t } = useI18n();
  const key = useCallback((m: Message) => m.id, []);
  const render = useCallback((m: Message) => <MessageRow message={m} />, []);
  return (
    <VirtualList
      items={messages}
      itemKey={key}
      renderItem={render}
      stickToEnd
      label={t('chat.messages')}
      class="messages"
      {...(onNearStart ? { onNearStart } : {})}
    />
  );
}

/**
 * The composer: Enter sends, Shift+Enter (or Enter while an input method is composing) adds a
 * newline. Empty or blank text is not sent.
 */
export function Composer({ onSend }: { onSend: (text: string) => Promise<void> }) {
  const { t } = useI18n();
  const [text, setText] = useState('');
  const send = async () => {
    if (text.trim() === '') return;
    const sending = text;
    setText('');
    try {
      await onSend(sending);
    } catch {
      setText(sending); // give the text back; the error is shown by the chat
    }
  };
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault();
        void send();
      }}
    >
      <label for="composer" class="sr-only">
        {t('chat.composer')}
      </label>
      <textarea
        id="composer"
        dir="auto"
        rows={2}
        value={text}
        aria-describedby="composer-hint"
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            void send();
          }
        }}
      />
      <p id="composer-hint" class="hint">
        {t('chat.hint')}
      </p>
      <button type="submit">{t('chat.send')}</button>
    </form>
  );
}

/** An open conversation: its details, its messages (newest at the bottom) and the composer. */
export function Chat({
  core,
  conversation,
  onChanged,
}: {
  core: SirrCore;
  conversation: ConversationSummary;
  /** The conversation changed (renamed, left, members): the list should reload. */
  onChanged?: () => void;
}) {
  const { t } = useI18n();
  const [messages, setMessages] = useState<Message[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [keyChanged, setKeyChanged] = useState<string | null>(null);
  const loading = useRef(false);
  const complete = useRef(false);
  const id = conversation.id;

  useEffect(() => {
    let live = true;
    setMessages([]);
    setError(null);
    setKeyChanged(null);
    complete.current = false;
    void core.messages(id, PAGE).then((page) => {
      if (!live) return;
      complete.current = page.length < PAGE;
      setMessages(page);
    });
    const off = core.onEvent((ev: CoreEvent) => {
      if (ev.kind === 'message' && ev.message.conversation === id) {
        setMessages((ms) => (ms.some((m) => m.id === ev.message.id) ? ms : [...ms, ev.message]));
      } else if (ev.kind === 'receipt' && ev.conversation === id) {
        setMessages((ms) => ms.map((m) => (m.id === ev.message ? { ...m, state: ev.state } : m)));
      } else if (ev.kind === 'keyChange' && ev.conversation === id) {
        setKeyChanged(ev.phone);
      }
    });
    return () => {
      live = false;
      off();
    };
  }, [core, id]);

  // What is on screen has been seen: mark up to the newest incoming message read.
  const newestIn = [...messages].reverse().find((m) => m.direction === 'in');
  useEffect(() => {
    if (newestIn) void core.markRead(id, newestIn.id);
  }, [core, id, newestIn?.id]);

  const older = useCallback(() => {
    const oldest = messages[0];
    if (loading.current || complete.current || !oldest) return;
    loading.current = true;
    void core
      .messages(id, PAGE, oldest.id)
      .then((page) => {
        complete.current = page.length < PAGE;
        setMessages((ms) => [...page, ...ms]);
      })
      .finally(() => {
        loading.current = false;
      });
  }, [core, id, messages]);

  const send = async (text: string) => {
    setError(null);
    try {
      const sent = await core.send(id, text);
      setMessages((ms) => (ms.some((m) => m.id === sent.id) ? ms : [...ms, sent]));
    } catch (err) {
      setError(t('chat.sendFailed', { reason: isCoreError(err) ? t(`error.${err.code}`) : String(err) }));
      throw err;
    }
  };

  return (
    <section class="chat" aria-labelledby="chat-title">
      <h2 id="chat-title" dir="auto">
        {conversation.kind === 'direct' && conversation.title.startsWith('+') ? (
          <bdi dir="ltr">{conversation.title}</bdi>
        ) : (
          conversation.title
        )}
      </h2>
      <ChatDetails core={core} conversation={conversation} {...(onChanged ? { onChanged } : {})} />
      {keyChanged && (
        <p class="warning" role="alert">
          {t('chat.keyChanged', { phone: keyChanged })}
        </p>
      )}
      <MessageList messages={messages} onNearStart={older} />
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <Composer onSend={send} />
    </section>
  );
}

// The chat: history, messages to everyone or to one person (private), /me.
import { useEffect, useRef, useState } from 'preact/hooks';
import { chatTarget, messages, myId, sendChat, users } from '../session.ts';

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export function Chat() {
  const [text, setText] = useState('');
  const list = useRef<HTMLOListElement>(null);
  const input = useRef<HTMLInputElement>(null);
  const target = chatTarget.value;
  const targetName = target ? (users.value[target]?.username ?? 'someone') : null;
  useEffect(() => {
    const l = list.current;
    if (l) l.scrollTop = l.scrollHeight;
  }, [messages.value.length]);
  useEffect(() => {
    if (target) input.current?.focus();
  }, [target]);
  const submit = (e: Event) => {
    e.preventDefault();
    if (!text.trim()) return;
    sendChat(text);
    setText('');
  };
  return (
    <section class="chat" aria-label="Chat">
      <ol class="messages" ref={list} aria-live="polite" aria-relevant="additions">
        {messages.value.length === 0 && <li class="muted empty-chat">No messages yet. Say hello!</li>}
        {messages.value.map((m) => (
          <li key={m.key} class={`msg${m.mine ? ' mine' : ''}${m.privateMsg ? ' private' : ''}${m.kind === 'me' ? ' me' : ''}`} data-from={m.from}>
            <div class="meta">
              <span class="from">{m.mine ? 'You' : m.from}</span>
              {m.privateMsg && <span class="to">{m.mine ? ` → ${m.peerName} (private)` : ' → you (private)'}</span>}
              <time dateTime={m.time.toISOString()}>{timeFormat.format(m.time)}</time>
            </div>
            <p class="text">{m.kind === 'me' ? `* ${m.from} ${m.text}` : m.text}</p>
          </li>
        ))}
      </ol>
      <form class="compose" onSubmit={submit}>
        {target && (
          <div class="target">
            <span>
              Private to <strong>{targetName}</strong>
            </span>
            <button type="button" class="link" onClick={() => (chatTarget.value = null)} aria-label="Send to everyone instead">
              Send to everyone
            </button>
          </div>
        )}
        <div class="row">
          <label for="chat-input" class="sr-only">
            {target ? `Private message to ${targetName}` : 'Message to everyone'}
          </label>
          <input
            id="chat-input"
            ref={input}
            value={text}
            onInput={(e) => setText(e.currentTarget.value)}
            placeholder={target ? `Message ${targetName}…` : 'Message everyone… (/me to act)'}
            autocomplete="off"
            maxLength={4000}
          />
          <button type="submit" class="primary" disabled={!myId.value}>
            Send
          </button>
        </div>
      </form>
    </section>
  );
}

// Everyone in the group. Choosing someone opens what can be done with them:
// a private message, a file, and for operators kick, op, present, mute.
import { useRef, useState } from 'preact/hooks';
import { Icon } from './Icon.tsx';
import { can, chatTarget, muteUser, myId, sendFile, speaking, userAction, users } from '../session.ts';

export function People({ onPrivate }: { onPrivate: () => void }) {
  const [open, setOpen] = useState<string | null>(null);
  const file = useRef<HTMLInputElement>(null);
  const me = myId.value;
  const all = Object.entries(users.value).sort(([a, x], [b, y]) => (a === me ? -1 : b === me ? 1 : (x.username ?? '').localeCompare(y.username ?? '')));
  const op = can('op');
  return (
    <section class="people" aria-label="People">
      <ul>
        {all.map(([id, u]) => {
          const name = u.username ?? 'anonymous';
          const isMe = id === me;
          const presenting = Object.keys(u.streams).length > 0;
          const expanded = open === id;
          return (
            <li key={id} class={expanded ? 'open' : ''} data-user={name}>
              <button type="button" class="person" aria-expanded={expanded} onClick={() => setOpen(expanded ? null : id)}>
                <span class={`dot${speaking.value[id] ? ' on' : ''}`} aria-hidden="true" />
                <span class="pname">
                  {name}
                  {isMe && ' (you)'}
                </span>
                {u.permissions.includes('op') && <span class="tag">op</span>}
                {presenting && <span class="tag">{Object.hasOwn(u.streams, 'screenshare') ? 'screen' : 'video'}</span>}
                {u.data.muted === true && (
                  <span class="mutedmark" title="Microphone off">
                    <Icon name="micOff" size={16} />
                    <span class="sr-only">microphone off</span>
                  </span>
                )}
              </button>
              {expanded && (
                <div class="actions" role="group" aria-label={`Actions for ${name}`}>
                  {!isMe && (
                    <button
                      type="button"
                      onClick={() => {
                        chatTarget.value = id;
                        onPrivate();
                      }}
                    >
                      Message privately
                    </button>
                  )}
                  {!isMe && (
                    <button type="button" onClick={() => file.current?.click()}>
                      Send a file…
                    </button>
                  )}
                  {op && !isMe && (
                    <button type="button" onClick={() => muteUser(id)}>
                      Mute
                    </button>
                  )}
                  {op && (
                    <button type="button" onClick={() => userAction(u.permissions.includes('op') ? 'unop' : 'op', id)}>
                      {u.permissions.includes('op') ? 'Remove op' : 'Make op'}
                    </button>
                  )}
                  {op && (
                    <button type="button" onClick={() => userAction(u.permissions.includes('present') ? 'unpresent' : 'present', id)}>
                      {u.permissions.includes('present') ? 'Stop presenting' : 'Allow presenting'}
                    </button>
                  )}
                  {op && !isMe && (
                    <button type="button" class="danger" onClick={() => userAction('kick', id)}>
                      Kick
                    </button>
                  )}
                </div>
              )}
            </li>
          );
        })}
      </ul>
      <input
        ref={file}
        type="file"
        class="sr-only"
        tabIndex={-1}
        aria-hidden="true"
        data-testid="send-file-input"
        onChange={(e) => {
          const f = e.currentTarget.files?.[0];
          if (f && open) sendFile(open, f);
          e.currentTarget.value = '';
        }}
      />
    </section>
  );
}

// One group: the login form, then the call, or why it ended.
import { useEffect } from 'preact/hooks';
import { ended, phase, rejoin, start, status } from '../session.ts';
import { Call } from './Call.tsx';
import { Login } from './Login.tsx';

export function GroupApp({ name }: { name: string }) {
  useEffect(() => void start(name), [name]);
  switch (phase.value) {
    case 'loading':
      return <Centered title="Atrium" text="Loading…" />;
    case 'login':
      return <Login />;
    case 'connecting':
      return <Centered title={status.value?.displayName ?? name} text="Connecting…" busy />;
    case 'joined':
    case 'reconnecting':
      return <Call />;
    case 'ended': {
      const e = ended.value;
      return (
        <main class="centered">
          <div class="card ended" role="alert">
            <h1>{e?.title ?? 'Disconnected'}</h1>
            {e?.detail && <p class="reason">{e.detail}</p>}
            <div class="row">
              {e?.canRejoin !== false && (
                <button type="button" class="primary" onClick={rejoin}>
                  Join again
                </button>
              )}
              <a class="button" href="/">
                Other groups
              </a>
            </div>
          </div>
        </main>
      );
    }
  }
}

function Centered({ title, text, busy }: { title: string; text: string; busy?: boolean }) {
  return (
    <main class="centered">
      <div class="card">
        <h1>{title}</h1>
        <p role="status" aria-live="polite">
          {busy && <span class="spinner" aria-hidden="true" />}
          {text}
        </p>
      </div>
    </main>
  );
}

// Messages from the server and the app (errors, warnings, information).
import { Icon } from './Icon.tsx';
import { dismiss, notices } from '../session.ts';

export function Notices() {
  return (
    <div class="notices" aria-live="assertive">
      {notices.value.map((n) => (
        <div key={n.key} class={`notice ${n.level}`} role={n.level === 'error' ? 'alert' : 'status'}>
          <span>{n.text}</span>
          <button type="button" class="link" onClick={() => dismiss(n.key)} aria-label="Dismiss this message">
            <Icon name="close" size={16} />
          </button>
        </div>
      ))}
    </div>
  );
}

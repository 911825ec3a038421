// File transfers, both ways, with progress; incoming ones wait for Accept or Reject.
import { acceptTransfer, cancelTransfer, dismissTransfer, transfers, type TransferView } from '../session.ts';

export function formatSize(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} kB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

const STATE: Record<string, string> = {
  invited: 'wants to send you this file',
  inviting: 'waiting for them to accept',
  connecting: 'connecting…',
  connected: 'transferring',
  done: 'done',
  cancelled: 'cancelled',
};

export function TransferItem({ t }: { t: TransferView }) {
  const finished = t.state === 'done' || t.state === 'cancelled';
  const pct = t.size > 0 ? Math.floor((t.done * 100) / t.size) : 100;
  return (
    <li class={`transfer ${t.state}`} data-file={t.name} data-state={t.state}>
      <div class="tname">
        <strong>{t.name}</strong> <span class="muted">({formatSize(t.size)})</span>
      </div>
      <div class="muted">
        {t.up ? `to ${t.peer}` : `from ${t.peer}`}: <span class="tstate">{STATE[t.state] ?? t.state}</span>
        {t.state === 'cancelled' && t.reason ? ` (${t.reason})` : ''}
      </div>
      {(t.state === 'connected' || t.state === 'connecting' || t.state === 'done') && (
        <progress max={t.size || 1} value={t.done} aria-label={`${t.name}: ${pct}%`}>
          {pct}%
        </progress>
      )}
      <div class="row">
        {t.state === 'invited' && (
          <>
            <button type="button" class="primary" onClick={() => acceptTransfer(t)}>
              Accept
            </button>
            <button type="button" onClick={() => cancelTransfer(t)}>
              Reject
            </button>
          </>
        )}
        {!finished && t.state !== 'invited' && (
          <button type="button" onClick={() => cancelTransfer(t)}>
            Cancel
          </button>
        )}
        {t.state === 'done' && t.url && (
          <a class="button primary" href={t.url} download={t.name}>
            Save
          </a>
        )}
        {finished && (
          <button type="button" class="link" onClick={() => dismissTransfer(t)}>
            Dismiss
          </button>
        )}
      </div>
    </li>
  );
}

export function Files() {
  return (
    <section class="files" aria-label="Files">
      {transfers.value.length === 0 && <p class="muted">No files yet. To send one, choose a person in People, then “Send a file…”.</p>}
      <ul>
        {transfers.value.map((t) => (
          <TransferItem key={t.key} t={t} />
        ))}
      </ul>
    </section>
  );
}

// One video: a person's camera or screen, or our own preview, with their
// name, a muted mark, a speaking ring and (on request) its statistics.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { TileStats } from '../session.ts';
import { Icon } from './Icon.tsx';

export interface TileProps {
  id: string;
  media: MediaStream;
  version: number;
  name: string;
  label: string;
  local: boolean;
  muted: boolean;
  speaking: boolean;
  stats?: TileStats | undefined;
  showStats: boolean;
}

export function Tile(p: TileProps) {
  const ref = useRef<HTMLVideoElement>(null);
  const [blocked, setBlocked] = useState(false);
  const hasVideo = p.media.getVideoTracks().length > 0;
  useEffect(() => {
    const v = ref.current;
    if (!v) return;
    if (v.srcObject !== p.media) v.srcObject = p.media;
    v.play().then(
      () => setBlocked(false),
      (e: DOMException) => setBlocked(e?.name === 'NotAllowedError'),
    );
  }, [p.media, p.version]);
  const what = p.label === 'screenshare' ? `${p.name}’s screen` : p.local ? `${p.name} (you)` : p.name;
  const s = p.stats;
  return (
    <figure
      class={`tile${p.speaking ? ' speaking' : ''}${p.local ? ' local' : ''}${p.label === 'screenshare' ? ' screen' : ''}`}
      data-stream-id={p.id}
      data-user={p.name}
      data-label={p.label}
      data-frames-decoded={s?.framesDecoded ?? 0}
      aria-label={what}
    >
      <video ref={ref} autoplay playsInline muted={p.local} class={hasVideo ? '' : 'hidden'} />
      {!hasVideo && (
        <div class="avatar" aria-hidden="true">
          {(p.name || '?').slice(0, 1).toUpperCase()}
        </div>
      )}
      {blocked && (
        <button type="button" class="play" onClick={() => void ref.current?.play().then(() => setBlocked(false))}>
          Click to play
        </button>
      )}
      <figcaption>
        {p.muted && (
          <span class="badge muted" title="Microphone off">
            <Icon name="micOff" size={16} />
            <span class="sr-only">microphone off</span>
          </span>
        )}
        {p.speaking && <span class="sr-only">speaking</span>}
        <span class="name">{what}</span>
      </figcaption>
      {p.showStats && s && (
        <dl class="stats">
          {statRows(s).map(([key, label, value]) => (
            <div key={key} data-stat={key}>
              <dt>{label}</dt>
              <dd>{value}</dd>
            </div>
          ))}
        </dl>
      )}
    </figure>
  );
}

/** The overlay's rows, [key, label, value], in reading order; a figure the browser does not report is left out. */
function statRows(s: TileStats): [string, string, string][] {
  const rows: [string, string, string][] = [];
  const row = (key: string, label: string, value: string | undefined) => {
    if (value !== undefined) rows.push([key, label, value]);
  };
  row('size', 'size', s.width !== undefined && s.height !== undefined ? `${s.width}×${s.height}` : undefined);
  row('layers', 'layers', s.layers?.join(', '));
  row('fps', 'fps', s.fps?.toFixed(0));
  row('rate', 'rate', s.kbps !== undefined ? `${s.kbps} kbit/s` : undefined);
  row('estimate', 'bandwidth', s.estimateKbps !== undefined ? `${s.estimateKbps} kbit/s` : undefined);
  row('limited', 'limited by', s.limitedBy);
  row('codec', 'codec', s.codec);
  row('frames', 'frames', s.framesDecoded?.toString());
  row('freezes', 'freezes', s.freezes !== undefined ? `${s.freezes} (${(s.frozenSeconds ?? 0).toFixed(1)} s)` : undefined);
  row('lost', 'lost', s.packetsLost?.toString());
  row('jitter', 'jitter', s.jitter !== undefined ? `${Math.round(s.jitter * 1000)} ms` : undefined);
  row('nacks', s.direction === 'up' ? 'NACKs in' : 'NACKs', s.nacks?.toString());
  row('retransmitted', s.direction === 'up' ? 'resent' : 'repaired', s.retransmitted?.toString());
  row('keyframes', 'keyframe req.', s.keyframeRequests?.toString());
  return rows;
}

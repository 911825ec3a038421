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
          {s.width !== undefined && (
            <>
              <dt>size</dt>
              <dd>
                {s.width}×{s.height}
              </dd>
            </>
          )}
          {s.fps !== undefined && (
            <>
              <dt>fps</dt>
              <dd>{s.fps.toFixed(0)}</dd>
            </>
          )}
          {s.kbps !== undefined && (
            <>
              <dt>rate</dt>
              <dd>{s.kbps} kbit/s</dd>
            </>
          )}
          {s.codec && (
            <>
              <dt>codec</dt>
              <dd>{s.codec}</dd>
            </>
          )}
          {s.framesDecoded !== undefined && (
            <>
              <dt>frames</dt>
              <dd>{s.framesDecoded}</dd>
            </>
          )}
          {s.packetsLost !== undefined && (
            <>
              <dt>lost</dt>
              <dd>{s.packetsLost}</dd>
            </>
          )}
        </dl>
      )}
    </figure>
  );
}

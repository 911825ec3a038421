// The pop-out: a small window showing the active speaker that follows
// speaker changes. A Document Picture-in-Picture window (always on top)
// where the browser has one, else a `window.open` pop-up of this page
// (`?popout=<id>`, see popout-page.ts) fed through a WindowPeerConnection:
// the direct same-renderer hand-over, or WebRTC over the BroadcastChannel
// relay when the pop-up is not reachable directly. Closing it — its own
// close, the Pop out button, leaving the call — stops every track it was
// given and ends the window relay's sessions.
import { batch, computed, effect, signal } from '@preact/signals';
import { openPictureInPicture, pictureInPictureAvailable, type PictureInPictureView, WindowPeerConnection } from '@atrium/client/window';
import { describe } from './errors.ts';
import { callWindowName, NOBODY, PopoutView, popoutChannelName, popoutWindowName, type Speaker } from './popout-view.ts';
import { audioEnergy, downStreams, myId, notify, SPEAKING_ENERGY, streamsVersion, users } from './session.ts';
import { SpeakerSelector } from './speaker.ts';

// ---------------------------------------------------------------------------
// The active speaker

const selector = new SpeakerSelector({ threshold: SPEAKING_ENERGY });
/** The active speaker's user id (null before anyone spoke). */
export const activeSpeaker = signal<string | null>(null);

let lastEnergy: Record<string, number> | null = null;
effect(() => {
  const energy = audioEnergy.value;
  const me = myId.value;
  const present = new Set<string>();
  const levels = new Map<string, number>();
  for (const s of downStreams.value) {
    if (!s.source || s.source === me) continue;
    present.add(s.source);
    levels.set(s.source, Math.max(levels.get(s.source) ?? 0, energy[s.id] ?? 0));
  }
  if (selector.current !== null && !present.has(selector.current)) selector.forget(selector.current);
  // New statistics are a sample; a stream coming or going is not.
  if (energy !== lastEnergy) selector.update(levels, performance.now());
  lastEnergy = energy;
  activeSpeaker.value = selector.current;
});

interface Shown {
  speaker: Speaker;
  /** The video track to show, or null. */
  track: MediaStreamTrack | null;
}

/** Who the pop-out shows: the active speaker, else someone who publishes, else the placeholder. */
export const shown = computed<Shown>(() => {
  void streamsVersion.value;
  const me = myId.value;
  const all = users.value;
  const remote = downStreams.value.filter((s) => s.source && s.source !== me);
  const rank = (label: string) => (label === 'camera' ? 0 : 1);
  const of = (id: string) => remote.filter((s) => s.source === id).sort((a, b) => rank(a.label) - rank(b.label))[0];
  const id = activeSpeaker.value;
  const s =
    (id !== null ? of(id) : undefined) ?? remote.find((x) => x.label === 'camera' && x.stream.getVideoTracks().length > 0) ?? remote.find((x) => x.stream.getVideoTracks().length > 0) ?? remote[0];
  if (!s?.source) return { speaker: NOBODY, track: null };
  const track = s.stream.getVideoTracks()[0] ?? null;
  return { speaker: { id: s.source, name: all[s.source]?.username ?? s.username ?? 'anonymous', hasVideo: track !== null }, track };
});

// ---------------------------------------------------------------------------
// The window

export type PopoutKind = 'pip' | 'window';

export interface PopoutState {
  open: boolean;
  opening: boolean;
  kind: PopoutKind | null;
}

export const popoutState = signal<PopoutState>({ open: false, opening: false, kind: null });

interface Controller {
  readonly kind: PopoutKind;
  readonly window: Window;
  close(): void;
  peers(): ReturnType<WindowPeerConnection['peers']>;
}

let ctl: Controller | null = null;
/** Set while a picture-in-picture window is being opened: cancels it. */
let cancelOpening: (() => void) | null = null;

/** The Pop out button. Call it from the click (or key) handler: opening needs the user's gesture. */
export function togglePopout(): void {
  if (ctl || cancelOpening) {
    closePopout();
    return;
  }
  if (pictureInPictureAvailable()) openPip();
  else openWindow();
}

/** Closes the pop-out, if open, and releases what it holds. Safe to call at any time. */
export function closePopout(): void {
  const c = ctl;
  ctl = null;
  cancelOpening?.();
  cancelOpening = null;
  try {
    c?.close();
  } finally {
    popoutState.value = { open: false, opening: false, kind: null };
  }
}

function opened(c: Controller): void {
  ctl = c;
  popoutState.value = { open: true, opening: false, kind: c.kind };
}

function openPip(): void {
  let cancelled = false;
  cancelOpening = () => {
    cancelled = true;
  };
  popoutState.value = { open: false, opening: true, kind: 'pip' };
  // requestWindow is called before the first await, within the click.
  openPictureInPicture(new MediaStream(), { width: 360, height: 240 }).then(
    (view) => {
      if (cancelled) {
        view.close();
        return;
      }
      cancelOpening = null;
      opened(pipController(view));
    },
    (e: unknown) => {
      if (cancelled) return;
      cancelOpening = null;
      console.info(`atrium: no picture-in-picture window (${describe(e)}); opening a pop-up window instead`);
      openWindow();
    },
  );
}

function pipController(view: PictureInPictureView): Controller {
  const v = new PopoutView(view.window.document, () => closePopout(), view.video);
  // The window gets a copy of the track, so closing can stop it without touching the call's.
  let source: MediaStreamTrack | null = null;
  let copy: MediaStreamTrack | null = null;
  const dispose = effect(() => {
    const s = shown.value;
    if (s.track !== source) {
      source = s.track;
      const old = copy;
      copy = s.track ? s.track.clone() : null;
      v.show(copy ? new MediaStream([copy]) : null);
      old?.stop();
    }
    v.setSpeaker(s.speaker);
  });
  const c: Controller = {
    kind: 'pip',
    window: view.window,
    close() {
      dispose();
      copy?.stop();
      copy = null;
      v.clear();
      view.close();
    },
    peers: () => [],
  };
  void view.closed.then(() => {
    if (ctl === c) closePopout();
  });
  return c;
}

function openWindow(): void {
  const id = Math.random().toString(36).slice(2, 10);
  const url = new URL(location.href);
  url.search = '';
  url.hash = '';
  url.searchParams.set('popout', id);
  const w = window.open(url.href, popoutWindowName(id), 'popup,width=360,height=270');
  if (!w) {
    popoutState.value = { open: false, opening: false, kind: null };
    notify('error', 'The browser blocked the pop-out window. Allow pop-ups for this site and try again.');
    return;
  }
  opened(windowController(w, id));
}

function windowController(w: Window, id: string): Controller {
  const peer = popoutWindowName(id);
  const wpc = new WindowPeerConnection(callWindowName(id), { accept: (p) => p === peer });
  const bc = new BroadcastChannel(popoutChannelName(id));
  let source: MediaStreamTrack | null = null;
  let sent: MediaStream | null = null;
  let speaker: Speaker = NOBODY;
  const post = () => bc.postMessage({ type: 'speaker', speaker });
  const dispose = effect(() => {
    const s = shown.value;
    if (s.track !== source) {
      source = s.track;
      // The relay sends a copy (direct) or over WebRTC, and stops it when withdrawn: the call's track is untouched.
      if (sent) wpc.removeStream(sent);
      sent = s.track ? new MediaStream([s.track]) : null;
      if (sent) wpc.attachStream(sent);
    }
    speaker = s.speaker;
    post();
  });
  bc.onmessage = (e: MessageEvent) => {
    const type = (e.data as { type?: unknown } | null)?.type;
    if (type === 'ready') post();
    else if (type === 'closing' && ctl === c) closePopout();
  };
  wpc.on('close', ({ peer: p, reason }) => {
    if (p === peer && reason !== 'replaced' && ctl === c) closePopout();
  });
  wpc.on('error', (e) => console.warn('atrium: pop-out:', e.message));
  // Goes direct once the pop-up's page is up (it shares our renderer), else over WebRTC.
  wpc.sendStream(peer).catch((e: unknown) => {
    if (ctl !== c) return;
    notify('error', `The pop-out window did not answer: ${describe(e)}`);
    closePopout();
  });
  const watch = setInterval(() => {
    if (w.closed && ctl === c) closePopout();
  }, 500);
  const c: Controller = {
    kind: 'window',
    window: w,
    close() {
      dispose();
      clearInterval(watch);
      try {
        bc.postMessage({ type: 'close' });
      } catch {
        /* closed already */
      }
      bc.close();
      wpc.close();
      sent = null;
      source = null;
      if (!w.closed) w.close();
    },
    peers: () => wpc.peers(),
  };
  return c;
}

// Diagnostics (and the browser tests): what the pop-out is doing, and a way to pick the speaker by hand.
(globalThis as unknown as { atriumPopout?: unknown }).atriumPopout = {
  state: () => ({ ...popoutState.value, speaker: activeSpeaker.value, shown: shown.value.speaker.name, peers: ctl?.peers() ?? [] }),
  window: () => ctl?.window ?? null,
  setSpeaker: (id: string | null) => {
    batch(() => {
      selector.set(id);
      activeSpeaker.value = id;
    });
  },
};

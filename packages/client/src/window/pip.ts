// Document Picture-in-Picture: an always-on-top window that belongs to the
// page itself, so a MediaStream goes into it as is (no relay, no WebRTC) —
// the browser's counterpart of Jitsi's always-on-top window. Chromium-based
// browsers have it (`documentPictureInPicture`); opening the window needs a
// user gesture (transient activation), so call `openPictureInPicture` from a
// click or key handler, and fall back to `window.open` plus
// WindowPeerConnection where it is missing.
import { describe, WindowRelayError } from './errors.ts';

/** The Document Picture-in-Picture API, where the browser has it. */
interface DocumentPictureInPictureLike {
  requestWindow(options?: { width?: number; height?: number; disallowReturnToOpener?: boolean }): Promise<Window>;
  readonly window: Window | null;
}

export interface PictureInPictureOptions {
  /** Inner size of the window in CSS pixels; the browser may clamp it. Give both or neither. */
  width?: number;
  height?: number;
  /** Play the stream's audio in the small window too (default false: the page plays it already). */
  audio?: boolean;
  /** The page that opens the window (default: the global `window`). */
  window?: Window;
}

export interface PictureInPictureView {
  /** The picture-in-picture window. */
  readonly window: Window;
  /** The video element showing the stream inside it. */
  readonly video: HTMLVideoElement;
  /** Shows another stream in the same window. */
  show(stream: MediaStream): void;
  /** Closes the window (the stream's tracks keep running: they are the caller's). */
  close(): void;
  /** Resolves when the window closes, by `close()` or by the user. */
  readonly closed: Promise<void>;
}

function api(win: Window | undefined): DocumentPictureInPictureLike | undefined {
  const dpip = (win as unknown as { documentPictureInPicture?: DocumentPictureInPictureLike } | undefined)?.documentPictureInPicture;
  return dpip && typeof dpip.requestWindow === 'function' ? dpip : undefined;
}

/** Whether this browser can open a Document Picture-in-Picture window (it still needs a user gesture). */
export function pictureInPictureAvailable(win: Window | undefined = typeof window === 'undefined' ? undefined : window): boolean {
  return api(win) !== undefined;
}

/**
 * Opens a Document Picture-in-Picture window showing `stream`. Call it from
 * a user gesture. Rejects with `pip-unavailable` where the API is missing or
 * the browser refuses (no gesture, inside an iframe, disabled by policy).
 */
export async function openPictureInPicture(stream: MediaStream, options: PictureInPictureOptions = {}): Promise<PictureInPictureView> {
  const win = options.window ?? (typeof window === 'undefined' ? undefined : window);
  const dpip = api(win);
  if (!dpip)
    throw new WindowRelayError('pip-unavailable', 'this browser has no Document Picture-in-Picture (documentPictureInPicture); open a window with window.open and a WindowPeerConnection instead');
  const size = options.width !== undefined && options.height !== undefined ? { width: Math.round(options.width), height: Math.round(options.height) } : {};
  let pip: Window;
  try {
    pip = await dpip.requestWindow(size);
  } catch (e) {
    throw new WindowRelayError('pip-unavailable', `the browser refused the picture-in-picture window (it must be opened from a click or key press): ${describe(e)}`, { cause: e });
  }
  const doc = pip.document;
  doc.body.style.margin = '0';
  doc.body.style.background = '#000';
  const video = doc.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = !options.audio;
  video.style.width = '100%';
  video.style.height = '100vh';
  video.style.objectFit = 'contain';
  video.srcObject = stream;
  doc.body.append(video);
  void video.play().catch(() => {});
  const closed = new Promise<void>((resolve) => pip.addEventListener('pagehide', () => resolve(), { once: true }));
  return {
    window: pip,
    video,
    show(next) {
      video.srcObject = next;
      void video.play().catch(() => {});
    },
    close() {
      video.srcObject = null;
      pip.close();
    },
    closed,
  };
}

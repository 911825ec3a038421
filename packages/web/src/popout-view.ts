// What the pop-out window shows: the active speaker's video with their name,
// their initial when they send no video, or a placeholder before anyone
// publishes. Plain DOM with inline styles, built in whichever document it is
// given: a Document Picture-in-Picture window (which has none of the app's
// styles) or the pop-up page.

export interface Speaker {
  /** The participant's id, or null for the placeholder. */
  id: string | null;
  name: string;
  hasVideo: boolean;
}

export const NOBODY: Speaker = { id: null, name: '', hasVideo: false };

export class PopoutView {
  readonly root: HTMLElement;
  readonly video: HTMLVideoElement;
  private readonly caption: HTMLElement;
  private readonly avatar: HTMLElement;
  private readonly placeholder: HTMLElement;
  private stream: MediaStream | null = null;
  private speaker: Speaker = NOBODY;

  /** Builds the view in `doc`'s body; `video` may be an element made already (picture-in-picture makes one). */
  constructor(doc: Document, onClose: () => void, video?: HTMLVideoElement) {
    const el = <K extends keyof HTMLElementTagNameMap>(tag: K, css: string, text?: string) => {
      const e = doc.createElement(tag);
      e.style.cssText = css;
      if (text !== undefined) e.textContent = text;
      return e;
    };
    doc.documentElement.lang = 'en';
    doc.body.style.cssText = 'margin:0;background:#000;color:#fff;font:14px system-ui,sans-serif;overflow:hidden';
    this.root = el('figure', 'margin:0;position:relative;width:100vw;height:100vh;display:flex;align-items:center;justify-content:center');
    this.root.className = 'popout';
    this.root.setAttribute('aria-label', 'Active speaker');
    this.video = video ?? doc.createElement('video');
    this.video.autoplay = true;
    this.video.playsInline = true;
    this.video.muted = true;
    this.video.style.cssText = 'position:absolute;inset:0;width:100%;height:100%;object-fit:contain;background:#000';
    this.avatar = el('div', 'width:96px;height:96px;border-radius:50%;background:#3b82f6;display:flex;align-items:center;justify-content:center;font-size:44px;font-weight:600');
    this.avatar.className = 'avatar';
    this.avatar.setAttribute('aria-hidden', 'true');
    this.placeholder = el('p', 'margin:0;padding:1em;text-align:center;color:#cbd5e1', 'Nobody is sending video yet.');
    this.placeholder.className = 'placeholder';
    this.caption = el(
      'figcaption',
      'position:absolute;left:8px;bottom:8px;max-width:calc(100% - 16px);padding:2px 8px;border-radius:6px;background:rgba(0,0,0,.6);white-space:nowrap;overflow:hidden;text-overflow:ellipsis',
    );
    this.caption.className = 'name';
    const close = el('button', 'position:absolute;top:6px;right:6px;padding:2px 8px;border:0;border-radius:6px;background:rgba(0,0,0,.6);color:#fff;font:inherit;cursor:pointer', 'Close');
    close.type = 'button';
    close.className = 'close';
    close.setAttribute('aria-label', 'Close the pop-out');
    close.addEventListener('click', onClose);
    this.root.append(this.video, this.avatar, this.placeholder, this.caption, close);
    doc.body.append(this.root);
    this.render();
  }

  /** The stream on screen (null: none). */
  get shown(): MediaStream | null {
    return this.stream;
  }

  show(stream: MediaStream | null): void {
    if (this.stream === stream) return;
    this.stream = stream;
    this.video.srcObject = stream;
    if (stream) void this.video.play().catch(() => {});
    this.render();
  }

  setSpeaker(speaker: Speaker): void {
    this.speaker = speaker;
    this.render();
  }

  /** Lets go of the stream (its tracks are whoever made them's to stop). */
  clear(): void {
    this.stream = null;
    this.video.srcObject = null;
  }

  private render(): void {
    const s = this.speaker;
    const video = s.id !== null && s.hasVideo && this.stream !== null;
    this.root.dataset.speaker = s.name;
    this.root.dataset.speakerId = s.id ?? '';
    this.video.style.visibility = video ? 'visible' : 'hidden';
    this.avatar.hidden = s.id === null || video;
    this.avatar.style.display = this.avatar.hidden ? 'none' : 'flex';
    this.avatar.textContent = (s.name || '?').slice(0, 1).toUpperCase();
    this.placeholder.hidden = s.id !== null;
    this.placeholder.style.display = this.placeholder.hidden ? 'none' : 'block';
    this.caption.hidden = s.id === null;
    this.caption.style.display = this.caption.hidden ? 'none' : 'block';
    this.caption.textContent = s.name;
    this.root.ownerDocument.title = s.id === null ? 'Atrium · pop-out' : `${s.name} · Atrium`;
  }
}

/** The names the call page and its pop-up use on the window relay, and their channel for the speaker's name. */
export const callWindowName = (id: string) => `atrium-call-${id}`;
export const popoutWindowName = (id: string) => `atrium-popout-${id}`;
export const popoutChannelName = (id: string) => `atrium-popout-${id}`;

/** A `speaker` message from the call page, checked (it comes over a BroadcastChannel). */
export function asSpeaker(v: unknown): Speaker | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  const s = v as Record<string, unknown>;
  if ((s.id !== null && typeof s.id !== 'string') || typeof s.name !== 'string' || typeof s.hasVideo !== 'boolean') return undefined;
  return { id: s.id, name: s.name, hasVideo: s.hasVideo };
}

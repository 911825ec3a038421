// The Electron main-process hub of the window relay. Electron has no direct
// IPC between BrowserWindows, so renderers send `[sender, receiver, msgType,
// json]` on the `relay` channel and the hub forwards each message to the
// window registered under `receiver`. The hub knows which window sent a
// message (`event.sender`), so a window can only speak under its own name.
// When a registered window goes away, the hub tells the other windows with an
// `end` message from it, so their peer connections to it close at once.
//
// Runs in the main process only: import it from `@atrium/client/window/electron-main`.
import { WindowRelayError } from './errors.ts';
import { asRelayMessage, MAX_NAME_LENGTH, RELAY_CHANNEL, type RelayMessage } from './relay.ts';

/** The part of Electron's `WebContents` the hub uses. */
export interface WebContentsLike {
  readonly id: number;
  send(channel: string, ...args: unknown[]): void;
  isDestroyed(): boolean;
  on(event: 'destroyed' | 'render-process-gone', listener: (...args: unknown[]) => void): unknown;
  removeListener(event: 'destroyed' | 'render-process-gone', listener: (...args: unknown[]) => void): unknown;
}

/** The part of Electron's `BrowserWindow` the hub uses. */
export interface BrowserWindowLike {
  readonly webContents: WebContentsLike;
  on?(event: 'closed', listener: () => void): unknown;
  removeListener?(event: 'closed', listener: () => void): unknown;
}

/** The part of an `IpcMainEvent` the hub uses. */
export interface IpcMainEventLike {
  readonly sender: unknown;
  /** Electron's WebFrameMain of the sending frame; a frame with a parent is a sub-frame. */
  readonly senderFrame?: { readonly parent?: unknown } | null;
}

/** The part of Electron's `ipcMain` the hub uses. */
export interface IpcMainLike {
  on(channel: string, listener: (event: IpcMainEventLike, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: IpcMainEventLike, ...args: unknown[]) => void): unknown;
}

export interface RelayClient {
  /** The name other windows use for this window (`receiverName`). */
  name: string;
  window: BrowserWindowLike;
}

/** Why the hub did not forward a message. */
export type RelayDropReason =
  /** Not a `[sender, receiver, msgType, json]` tuple of strings within the size limits. */
  | 'bad-message'
  /** It came from a window that is not registered. */
  | 'unregistered-sender'
  /** Its `sender` is not the name the sending window is registered under. */
  | 'spoofed-sender'
  /** It came from a sub-frame (iframe) of a registered window, not its main frame. */
  | 'subframe'
  /** No window is registered under `receiver`. */
  | 'unknown-receiver'
  /** The receiving window is destroyed, or sending to it failed. */
  | 'receiver-gone';

export interface RelayDrop {
  reason: RelayDropReason;
  /** The registered name of the sending window, when known. */
  from?: string;
  /** The message, when it was one. */
  message?: RelayMessage;
}

export interface ElectronRelayHubOptions {
  ipcMain: IpcMainLike;
  /** IPC channel name (default `relay`); renderers must use the same. */
  channel?: string;
  /** Told about every message the hub refuses or cannot deliver. */
  onDrop?: (drop: RelayDrop) => void;
}

export interface ElectronRelayHub {
  /** Registers a window under a name; re-adding a name replaces its window. Throws `name-taken` if the window already has another name. */
  addClient(client: RelayClient): void;
  /** Forgets a window. Its existing peer connections are not touched (media flows between the renderers). */
  removeClient(name: string): void;
  /** Starts relaying (listens on the channel); clients may be added before or after. */
  initChannel(): void;
  /** Stops relaying and forgets every client. */
  dispose(): void;
  /** The registered names. */
  clients(): string[];
}

interface Entry {
  name: string;
  window: BrowserWindowLike;
  /** Kept from registration: a destroyed BrowserWindow throws on `.webContents`. */
  contents: WebContentsLike;
  detach(): void;
}

export function createElectronRelayHub(options: ElectronRelayHubOptions): ElectronRelayHub {
  const { ipcMain } = options;
  const channel = options.channel ?? RELAY_CHANNEL;
  const entries = new Map<string, Entry>();
  let listening = false;

  const drop = (d: RelayDrop) => {
    try {
      options.onDrop?.(d);
    } catch {
      /* a faulty observer must not break relaying */
    }
  };

  const deliver = (target: Entry, message: RelayMessage): boolean => {
    if (target.contents.isDestroyed()) return false;
    try {
      target.contents.send(channel, message);
      return true;
    } catch {
      return false;
    }
  };

  /** The window `name` is gone: every other window hears `end` from it. */
  const announceGone = (name: string, reason: string) => {
    if (!listening) return;
    const json = JSON.stringify({ reason });
    for (const other of entries.values()) if (other.name !== name) deliver(other, [name, other.name, 'end', json]);
  };

  const entryOf = (sender: unknown): Entry | undefined => {
    if (sender === null || typeof sender !== 'object') return undefined;
    const id = (sender as { id?: unknown }).id;
    for (const e of entries.values()) {
      if (e.contents === sender || (typeof id === 'number' && e.contents.id === id)) return e;
    }
    return undefined;
  };

  const onRelay = (event: IpcMainEventLike, ...args: unknown[]) => {
    const message = asRelayMessage(args[0]);
    const from = entryOf(event?.sender);
    if (!message) return drop({ reason: 'bad-message', ...(from ? { from: from.name } : {}) });
    if (!from || from.contents.isDestroyed()) return drop({ reason: 'unregistered-sender', message });
    let subframe = false;
    try {
      subframe = event.senderFrame != null && event.senderFrame.parent != null;
    } catch {
      /* a frame that navigated or died: judge by the WebContents alone */
    }
    if (subframe) return drop({ reason: 'subframe', from: from.name, message });
    if (message[0] !== from.name) return drop({ reason: 'spoofed-sender', from: from.name, message });
    const target = entries.get(message[1]);
    if (!target) return drop({ reason: 'unknown-receiver', from: from.name, message });
    if (!deliver(target, message)) drop({ reason: 'receiver-gone', from: from.name, message });
  };

  const remove = (name: string) => {
    const e = entries.get(name);
    if (!e) return;
    entries.delete(name);
    e.detach();
  };

  return {
    addClient({ name, window }) {
      if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
        throw new WindowRelayError('bad-argument', `a relay client needs a name of 1 to ${MAX_NAME_LENGTH} characters`);
      }
      const contents = window?.webContents;
      if (!contents || typeof contents.send !== 'function') throw new WindowRelayError('bad-argument', `relay client "${name}" needs a BrowserWindow (with webContents)`);
      for (const e of entries.values()) {
        if (e.name !== name && (e.window === window || e.contents === contents)) {
          throw new WindowRelayError('name-taken', `this window is already registered as "${e.name}"; a window has one name on the relay`);
        }
      }
      remove(name);
      const entry: Entry = { name, window, contents, detach: () => {} };
      const gone = () => {
        if (entries.get(name) !== entry) return;
        remove(name);
        announceGone(name, 'gone');
      };
      const crashed = () => {
        if (entries.get(name) === entry) announceGone(name, 'crashed');
      };
      window.on?.('closed', gone);
      contents.on('destroyed', gone);
      contents.on('render-process-gone', crashed);
      entry.detach = () => {
        window.removeListener?.('closed', gone);
        contents.removeListener('destroyed', gone);
        contents.removeListener('render-process-gone', crashed);
      };
      entries.set(name, entry);
    },
    removeClient(name) {
      remove(name);
    },
    initChannel() {
      if (listening) return;
      listening = true;
      ipcMain.on(channel, onRelay);
    },
    dispose() {
      if (listening) ipcMain.removeListener(channel, onRelay);
      listening = false;
      for (const name of [...entries.keys()]) remove(name);
    },
    clients() {
      return [...entries.keys()];
    },
  };
}

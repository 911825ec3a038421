// An in-process stand-in for the parts of Electron the window relay touches,
// keeping their semantics: named IPC channels; `ipcRenderer.send` arrives at
// `ipcMain` listeners as `(event, ...args)` with `event.sender` the sending
// window's WebContents and `event.senderFrame` its frame; `webContents.send`
// arrives at that window's `ipcRenderer` listeners; arguments are copied with
// the structured clone algorithm and delivered asynchronously; a destroyed
// window's BrowserWindow and WebContents throw "Object has been destroyed",
// and closing a window emits `closed` and the WebContents' `destroyed`.
import { EventEmitter } from 'node:events';

const destroyedError = () => new TypeError('Object has been destroyed');

/** Stand-in for Electron's WebFrameMain: `parent` is null for a window's main frame. */
export class FakeFrame {
  constructor(
    readonly contents: FakeWebContents,
    readonly parent: FakeFrame | null,
  ) {}
}

export class FakeIpcMain extends EventEmitter {}

export interface FakeIpcMainEvent {
  sender: FakeWebContents;
  senderFrame: FakeFrame;
  processId: number;
  frameId: number;
}

let nextId = 1;

export class FakeWebContents extends EventEmitter {
  readonly id = nextId++;
  readonly mainFrame: FakeFrame = new FakeFrame(this, null);
  /** The main frame's ipcRenderer (what a preload script of the window gets). */
  readonly ipcRenderer: FakeIpcRenderer;
  private destroyed = false;

  constructor(readonly ipcMain: FakeIpcMain) {
    super();
    this.ipcRenderer = new FakeIpcRenderer(this, this.mainFrame);
  }

  send(channel: string, ...args: unknown[]): void {
    if (this.destroyed) throw destroyedError();
    const copy = structuredClone(args);
    setImmediate(() => {
      if (!this.destroyed) this.ipcRenderer.deliver(channel, copy);
    });
  }

  isDestroyed(): boolean {
    return this.destroyed;
  }

  /** An ipcRenderer for an iframe of this window. */
  subFrameIpcRenderer(): FakeIpcRenderer {
    return new FakeIpcRenderer(this, new FakeFrame(this, this.mainFrame));
  }

  /** The renderer process crashed (the WebContents survives). */
  crash(): void {
    this.emit('render-process-gone', {}, { reason: 'crashed', exitCode: 1 });
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('destroyed');
  }
}

export class FakeIpcRenderer extends EventEmitter {
  constructor(
    private readonly contents: FakeWebContents,
    private readonly frame: FakeFrame,
  ) {
    super();
  }

  send(channel: string, ...args: unknown[]): void {
    if (this.contents.isDestroyed()) return;
    const copy = structuredClone(args);
    const event: FakeIpcMainEvent = { sender: this.contents, senderFrame: this.frame, processId: 1000 + this.contents.id, frameId: this.frame.parent ? 2 : 1 };
    setImmediate(() => {
      if (!this.contents.isDestroyed()) this.contents.ipcMain.emit(channel, event, ...copy);
    });
  }

  /** Called by the main process side (webContents.send). */
  deliver(channel: string, args: unknown[]): void {
    this.emit(channel, { sender: this, senderId: 0 }, ...args);
  }
}

export class FakeBrowserWindow extends EventEmitter {
  private readonly contents: FakeWebContents;
  private destroyed = false;

  constructor(ipcMain: FakeIpcMain) {
    super();
    this.contents = new FakeWebContents(ipcMain);
  }

  get webContents(): FakeWebContents {
    if (this.destroyed) throw destroyedError();
    return this.contents;
  }

  isDestroyed(): boolean {
    return this.destroyed;
  }

  /** Closes the window as the user would: `close`, the page's WebContents destroyed, then `closed`. */
  close(): void {
    if (this.destroyed) return;
    this.emit('close', { preventDefault() {} });
    this.destroyed = true;
    this.contents.destroy();
    this.emit('closed');
  }
}

/** Waits for pending IPC deliveries (they hop through setImmediate). */
export async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

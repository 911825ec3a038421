// The renderer side of the Electron relay: messages go to the main process
// on the `relay` IPC channel (one argument, the tuple) and come back on the
// same channel from the hub (see electron-main.ts). Takes anything shaped
// like Electron's `ipcRenderer`, so it works in a preload script (expose the
// returned object with contextBridge) or with nodeIntegration.
import { asRelayMessage, RELAY_CHANNEL, type RelayChannel, type RelayMessage } from './relay.ts';

/** The part of Electron's `ipcRenderer` the relay uses. */
export interface IpcRendererLike {
  send(channel: string, ...args: unknown[]): void;
  on(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
  removeListener(channel: string, listener: (event: unknown, ...args: unknown[]) => void): unknown;
}

export function createIpcRendererRelay(ipcRenderer: IpcRendererLike, channel = RELAY_CHANNEL): RelayChannel {
  const listeners = new Set<(m: RelayMessage) => void>();
  const onIpc = (_event: unknown, ...args: unknown[]) => {
    const m = asRelayMessage(args[0]);
    if (!m) return;
    for (const l of [...listeners]) l(m);
  };
  ipcRenderer.on(channel, onIpc);
  let closed = false;
  return {
    send(message) {
      if (!closed) ipcRenderer.send(channel, message);
    },
    onMessage(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      if (closed) return;
      closed = true;
      listeners.clear();
      ipcRenderer.removeListener(channel, onIpc);
    },
  };
}

// The pop-up page (`/group/<name>/?popout=<id>`), opened by the call page
// with window.open where there is no Document Picture-in-Picture: it takes
// the active speaker's video from the call page through a
// WindowPeerConnection (the stream object itself when it shares the call
// page's renderer, WebRTC over the BroadcastChannel relay otherwise) and
// their name over a BroadcastChannel. It closes when the call page ends the
// session, and tells the call page when it is closed.
import { WindowPeerConnection } from '@atrium/client/window';
import { asSpeaker, callWindowName, PopoutView, popoutChannelName, popoutWindowName } from './popout-view.ts';

export function runPopoutPage(id: string): void {
  const caller = callWindowName(id);
  const view = new PopoutView(document, () => window.close());
  const wpc = new WindowPeerConnection(popoutWindowName(id), { accept: (peer) => peer === caller });
  wpc.onReceivedStream((stream) => view.show(stream));
  wpc.on('streamremoved', (stream) => {
    if (view.shown === stream) view.show(null);
  });
  wpc.on('close', ({ peer, reason }) => {
    // The call page closed the pop-out, left or went away.
    if (peer === caller && reason !== 'replaced') window.close();
  });
  wpc.on('error', (e) => console.warn('atrium: pop-out:', e.message));
  const bc = new BroadcastChannel(popoutChannelName(id));
  bc.onmessage = (e: MessageEvent) => {
    const m = e.data as { type?: unknown; speaker?: unknown } | null;
    if (m?.type === 'close') {
      window.close();
      return;
    }
    const speaker = m?.type === 'speaker' ? asSpeaker(m.speaker) : undefined;
    if (speaker) view.setSpeaker(speaker);
  };
  bc.postMessage({ type: 'ready' });
  // The WindowPeerConnection closes itself on pagehide (stopping what it received).
  addEventListener('pagehide', () => {
    bc.postMessage({ type: 'closing' });
    bc.close();
    view.clear();
  });
}

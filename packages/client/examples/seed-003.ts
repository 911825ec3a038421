// The code examples of Galène's README.FRONTEND (seed 003), written against
// @atrium/client in TypeScript. `npm run typecheck -w @atrium/client`
// compiles this file, so the examples keep working as written; the browser
// tests in packages/server/test/client run the same calls for real.
// Only the README's `...` placeholders are filled in.
import { ServerConnection, type Stream, type TransferredFile } from '../src/index.ts';

export async function frontend(url: string, group: string, username: string, password: string, localStream: MediaStream): Promise<ServerConnection> {
  // "Connecting to the server"
  let r = await fetch(url + '.status');
  if (!r.ok) {
    throw new Error(`${r.status} ${r.statusText}`);
  }
  let status = await r.json();

  let serverConnection = new ServerConnection();
  serverConnection.onconnected = function () {
    this.join(group, 'join', username, password);
  };
  serverConnection.onclose = function (code, reason) {
    console.log('disconnected', code, reason);
  };
  serverConnection.onusermessage = function (id, dest, username, time, privileged, kind, error, message) {
    console.log(kind, message);
  };
  serverConnection.onjoined = function (kind, group, perms, status, data, error, message) {
    switch (kind) {
      case 'join':
        this.request({ '': ['audio', 'video'] });
        // then update the UI, possibly taking perms.present into account
        break;
      case 'change':
        // update the UI
        break;
      case 'redirect':
        this.close();
        document.location.href = message;
        break;
      case 'fail':
        if (error === 'need-username') {
          // the user attempted to login with a token that does not
          // specify a username. Display a dialog requesting a username,
          // then join again
        } else {
          // display the friendly error message
        }
        break;
    }
  };
  serverConnection.onuser = function (id, kind) {
    console.log(kind, this.users[id]?.username);
  };
  serverConnection.onchat = function (id, dest, username, time, privileged, history, kind, message) {
    console.log(time?.toISOString(), username, message);
  };
  serverConnection.onclearchat = function () {
    console.log('chat cleared');
  };
  serverConnection.ondownstream = function (stream) {
    stream.onclose = function (replace) {
      console.log('closed', this.id, replace);
    };
    stream.onerror = function (e) {
      console.error(e);
    };
    stream.ondowntrack = function (track, transceiver, stream) {
      const video = document.createElement('video');
      video.srcObject = stream;
      void track;
      void transceiver;
    };
    stream.onstatus = function (status) {
      console.log(this.label, status);
    };
  };

  serverConnection.connect(status.endpoint);

  // "Sending and receiving chat messages"
  let id = serverConnection.id;
  serverConnection.chat(username, '', id, 'Hi!');
  serverConnection.chat('', '', 'Hi everyone!');

  // "Pushing outgoing video streams"
  let c = serverConnection.newUpStream();
  c.label = 'camera';
  c.onerror = function (e) {
    console.error(e);
  };
  c.onstatus = function (status) {
    console.log(status);
  };
  localStream.getTracks().forEach((t) => {
    c.pc.addTrack(t, c.stream);
  });

  // "Stream statistics"
  c.onstats = function (stats) {
    for (const [track, s] of Object.entries(stats)) console.log(track, s['outbound-rtp']?.rate);
  };
  c.setStatsInterval(2000);

  // Replacing a stream: the new one takes over the old one's localId.
  let replacement: Stream = serverConnection.newUpStream(c.localId);
  void replacement;

  // "Peer-to-peer file transfer"
  serverConnection.onfiletransfer = function (transfer: TransferredFile) {
    transfer.onevent = function (state, data) {
      if (state === 'done' && data instanceof Blob) {
        const a = document.createElement('a');
        a.href = URL.createObjectURL(data);
        a.download = this.name;
      } else if (state === 'connected') {
        console.log(`${this.datalen} of ${this.size} bytes`);
      } else if (state === 'cancelled') {
        console.log('cancelled', data);
      }
    };
    // A handler may also take the state alone.
    if (transfer.up) transfer.onevent = (state) => console.log(state);
    if (!transfer.up) void transfer.receive();
  };
  const file = new File(['hello'], 'hello.txt', { type: 'text/plain' });
  serverConnection.sendFile(id, file);

  return serverConnection;
}

// Every video of the call: our own preview and screen, then everyone else's.
import { downStreams, myId, myName, speaking, streamsVersion, tileStats, users } from '../session.ts';
import { localStream, micOn, screenStream } from '../media.ts';
import { Tile } from './Tile.tsx';

export function Grid({ showStats }: { showStats: boolean }) {
  const version = streamsVersion.value;
  const all = users.value;
  const stats = tileStats.value;
  const me = myName.value || 'You';
  const tiles = [];
  const local = localStream.value;
  if (local) {
    tiles.push(<Tile key="local" id="local" media={local} version={version} name={me} label="camera" local muted={!micOn.value} speaking={false} stats={stats.local} showStats={showStats} />);
  }
  const screen = screenStream.value;
  if (screen) {
    tiles.push(<Tile key="screen" id="screen" media={screen} version={version} name={me} label="screenshare" local muted speaking={false} stats={stats.screen} showStats={showStats} />);
  }
  for (const s of downStreams.value) {
    const u = s.source ? all[s.source] : undefined;
    const name = u?.username ?? s.username ?? 'anonymous';
    const noAudio = s.stream.getAudioTracks().length === 0;
    tiles.push(
      <Tile
        key={s.id}
        id={s.id}
        media={s.stream}
        version={version}
        name={name}
        label={s.label}
        local={false}
        muted={s.label === 'camera' && (u?.data.muted === true || noAudio)}
        speaking={!!s.source && s.source !== myId.value && !!speaking.value[s.source]}
        stats={stats[s.id]}
        showStats={showStats}
      />,
    );
  }
  if (tiles.length === 0) {
    return (
      <div class="empty">
        <p>Nobody is sending video yet.</p>
      </div>
    );
  }
  return (
    <div class={`grid n${Math.min(tiles.length, 9)}`} role="list" aria-label="Videos">
      {tiles.map((t) => (
        <div role="listitem" class="cell" key={t.key}>
          {t}
        </div>
      ))}
    </div>
  );
}

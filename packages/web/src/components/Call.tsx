// The call: a top bar, the videos, a side panel (chat, people, files) and
// the controls. On a narrow screen the panel covers the videos when open.
import { useEffect, useState } from 'preact/hooks';
import { can, chatTarget, groupAction, groupName, invitationsSupported, leave, locked, makeInvite, messages, phase, status, transfers, unread, users } from '../session.ts';
import { busy, camOn, micOn, screenOn, setCamera, setMic, setScreen } from '../media.ts';
import { closePopout, popoutState, togglePopout } from '../popout.ts';
import { Chat } from './Chat.tsx';
import { Files, TransferItem } from './Files.tsx';
import { Grid } from './Grid.tsx';
import { Icon } from './Icon.tsx';
import { Notices } from './Notices.tsx';
import { People } from './People.tsx';
import { Settings } from './Settings.tsx';

type Panel = 'chat' | 'people' | 'files';
const wide = () => window.matchMedia('(min-width: 900px)').matches;

export function Call() {
  const [panel, setPanel] = useState<Panel | null>(wide() ? 'chat' : null);
  const [settings, setSettings] = useState(false);
  const [stats, setStats] = useState(false);
  const present = can('present');
  const op = can('op');
  const count = Object.keys(users.value).length;
  // Transfers float over the call until dismissed, unless the Files panel shows them.
  const floating = panel === 'files' ? [] : transfers.value;
  const active = transfers.value.filter((t) => t.state !== 'done' && t.state !== 'cancelled').length;
  useEffect(() => {
    if (panel === 'chat') unread.value = 0;
  }, [panel, messages.value.length]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape' && !settings && !wide()) setPanel(null);
    };
    addEventListener('keydown', onKey);
    return () => removeEventListener('keydown', onKey);
  }, [settings]);
  // Leaving the call (or losing it) closes the pop-out.
  useEffect(() => closePopout, []);
  const toggle = (p: Panel) => setPanel(panel === p ? null : p);
  const pop = popoutState.value;
  const title = status.value?.displayName ?? groupName.value;
  return (
    <div class={`call${panel ? ' with-panel' : ''}`}>
      <header class="topbar">
        <h1 class="title">
          {locked.value && (
            <span class="locked" title="The group is locked">
              <Icon name="lock" size={18} />
              <span class="sr-only">Locked: </span>
            </span>
          )}
          {title}
        </h1>
        <span class={`pill ${phase.value}`} role="status" aria-live="polite">
          {phase.value === 'reconnecting' ? 'Reconnecting…' : 'Connected'}
        </span>
        <div class="spacer" />
        {op && (
          <button type="button" onClick={() => groupAction(locked.value ? 'unlock' : 'lock')} aria-pressed={locked.value}>
            {locked.value ? 'Unlock' : 'Lock'}
          </button>
        )}
        {op && (
          <button type="button" onClick={() => groupAction('clearchat')}>
            Clear chat
          </button>
        )}
        {invitationsSupported && can('token') && (
          <button type="button" onClick={makeInvite}>
            Invite
          </button>
        )}
        <button type="button" class="danger" onClick={leave}>
          Leave
        </button>
      </header>
      {phase.value === 'reconnecting' && (
        <div class="banner" role="status">
          The connection to the server was lost; reconnecting…
        </div>
      )}
      <Notices />
      <main class="stage" aria-label="Videos">
        <Grid showStats={stats} />
      </main>
      {floating.length > 0 && (
        <ul class="incoming" aria-label="File transfers">
          {floating.map((t) => (
            <TransferItem key={t.key} t={t} />
          ))}
        </ul>
      )}
      {panel && (
        <aside class="panel" aria-label="Side panel">
          <div class="tabs" role="group" aria-label="Show">
            <button type="button" aria-pressed={panel === 'chat'} onClick={() => setPanel('chat')}>
              Chat
            </button>
            <button type="button" aria-pressed={panel === 'people'} onClick={() => setPanel('people')}>
              People ({count})
            </button>
            <button type="button" aria-pressed={panel === 'files'} onClick={() => setPanel('files')}>
              Files{transfers.value.length > 0 ? ` (${transfers.value.length})` : ''}
            </button>
            <button type="button" class="close" onClick={() => setPanel(null)} aria-label="Close the side panel">
              <Icon name="close" size={18} />
            </button>
          </div>
          {panel === 'chat' && <Chat />}
          {panel === 'people' && <People onPrivate={() => setPanel('chat')} />}
          {panel === 'files' && <Files />}
        </aside>
      )}
      <nav class="toolbar" aria-label="Call controls">
        {present && (
          <>
            <button type="button" class={`tool${micOn.value ? ' on' : ' off'}`} disabled={busy.value} onClick={() => setMic(!micOn.value)}>
              <Icon name={micOn.value ? 'mic' : 'micOff'} />
              <span class="tl">{micOn.value ? 'Mute' : 'Unmute'}</span>
            </button>
            <button type="button" class={`tool${camOn.value ? ' on' : ' off'}`} disabled={busy.value} onClick={() => void setCamera(!camOn.value)}>
              <Icon name={camOn.value ? 'camera' : 'cameraOff'} />
              <span class="tl">{camOn.value ? 'Stop video' : 'Start video'}</span>
            </button>
            {'getDisplayMedia' in (navigator.mediaDevices ?? {}) && (
              <button type="button" class={`tool${screenOn.value ? ' on' : ''}`} onClick={() => void setScreen(!screenOn.value)}>
                <Icon name="screen" />
                <span class="tl">{screenOn.value ? 'Stop sharing' : 'Share screen'}</span>
              </button>
            )}
            <button type="button" class="tool" onClick={() => setSettings(true)} aria-haspopup="dialog">
              <Icon name="sliders" />
              <span class="tl">Settings</span>
            </button>
          </>
        )}
        <button
          type="button"
          class="tool popout-toggle"
          aria-pressed={pop.open || pop.opening}
          disabled={pop.opening}
          title={pop.open ? 'Close the window showing the active speaker' : 'Show the active speaker in a small window that stays on top'}
          onClick={togglePopout}
        >
          <Icon name="popout" />
          <span class="tl">Pop out</span>
        </button>
        <button type="button" class="tool" aria-pressed={stats} onClick={() => setStats(!stats)}>
          <Icon name="stats" />
          <span class="tl">Stats</span>
        </button>
        <button type="button" class="tool" aria-pressed={panel === 'chat'} onClick={() => toggle('chat')}>
          <Icon name="chat" />
          <span class="tl">Chat</span>
          {unread.value > 0 && panel !== 'chat' && (
            <span class="count-badge" role="img" aria-label={`${unread.value} unread`}>
              {unread.value}
            </span>
          )}
          {chatTarget.value && <span class="sr-only"> (private)</span>}
        </button>
        <button type="button" class="tool" aria-pressed={panel === 'people'} onClick={() => toggle('people')}>
          <Icon name="people" />
          <span class="tl">People</span>
          <span class="count-badge quiet">{count}</span>
        </button>
        <button type="button" class="tool" aria-pressed={panel === 'files'} onClick={() => toggle('files')}>
          <Icon name="file" />
          <span class="tl">Files</span>
          {active > 0 && <span class="count-badge">{active}</span>}
        </button>
      </nav>
      <Settings open={settings} onClose={() => setSettings(false)} />
    </div>
  );
}

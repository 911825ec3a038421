// The front page: the server's public groups, and a form to go to any group by name.
import { useEffect, useState } from 'preact/hooks';
import type { GroupStatus } from '../session.ts';

export function Home() {
  const [groups, setGroups] = useState<GroupStatus[] | null>(null);
  const [error, setError] = useState('');
  const [name, setName] = useState('');
  useEffect(() => {
    document.title = 'Atrium';
    fetch('/public-groups.json', { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`${r.status} ${r.statusText}`))))
      .then((g: GroupStatus[]) => setGroups(g))
      .catch((e: Error) => setError(`Could not load the list of groups (${e.message}).`));
  }, []);
  const go = (e: Event) => {
    e.preventDefault();
    const n = name.trim().replace(/^\/+|\/+$/g, '');
    if (n) location.href = `/group/${n.split('/').map(encodeURIComponent).join('/')}/`;
  };
  return (
    <main class="home">
      <header class="brand">
        <span class="logo" aria-hidden="true" />
        <h1>Atrium</h1>
      </header>
      <form class="card" onSubmit={go}>
        <label for="group-name">Join a group by name</label>
        <div class="row">
          <input id="group-name" value={name} onInput={(e) => setName(e.currentTarget.value)} autocomplete="off" autocapitalize="off" spellcheck={false} required />
          <button type="submit" class="primary">
            Join
          </button>
        </div>
      </form>
      <section class="card" aria-labelledby="public-title">
        <h2 id="public-title">Public groups</h2>
        {error && <p role="alert">{error}</p>}
        {groups === null && !error && <p class="muted">Loading…</p>}
        {groups?.length === 0 && <p class="muted">There are no public groups on this server.</p>}
        <ul class="groups">
          {groups?.map((g) => (
            <li key={g.name}>
              <a href={`/group/${g.name.split('/').map(encodeURIComponent).join('/')}/`}>
                <strong>{g.displayName ?? g.name}</strong>
                {g.description && <span class="muted">{g.description}</span>}
              </a>
              <span class="count" title={`${g.clientCount ?? 0} people in the group`}>
                {g.locked ? 'locked · ' : ''}
                {g.clientCount ?? 0} in call
              </span>
            </li>
          ))}
        </ul>
      </section>
    </main>
  );
}

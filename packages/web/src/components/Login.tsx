// The login form: username and password (or just a username for an
// invitation that does not name one). The auth-server flow is the SDK's.
import { useState } from 'preact/hooks';
import { groupName, login, loginError, needUsername, status } from '../session.ts';

const NAME_KEY = 'atrium:username';

export function Login() {
  const s = status.value;
  const invited = new URL(location.href).searchParams.has('token');
  const [username, setUsername] = useState(localStorage.getItem(NAME_KEY) ?? '');
  const [password, setPassword] = useState('');
  const submit = (e: Event) => {
    e.preventDefault();
    localStorage.setItem(NAME_KEY, username.trim());
    login(username.trim(), password);
  };
  const askPassword = !invited && !needUsername.value;
  return (
    <main class="centered">
      <form class="card login" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">{s?.displayName ?? groupName.value}</h1>
        {s?.description && <p class="muted">{s.description}</p>}
        {s?.locked && <p class="muted">This group is locked; only operators may join.</p>}
        {loginError.value && (
          <p class="error" role="alert">
            {loginError.value}
          </p>
        )}
        <label for="username">Your name</label>
        <input id="username" value={username} onInput={(e) => setUsername(e.currentTarget.value)} autocomplete="username" required={!askPassword} autofocus />
        {askPassword && (
          <>
            <label for="password">Password</label>
            <input id="password" type="password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} autocomplete="current-password" />
            <p class="hint">Leave the password empty if the group does not need one.</p>
          </>
        )}
        <button type="submit" class="primary">
          Join
        </button>
        {s?.authPortal && (
          <p class="hint">
            Or <a href={s.authPortal}>log in through the group’s portal</a>.
          </p>
        )}
        <p class="hint">
          <a href="/">Other groups</a>
        </p>
      </form>
    </main>
  );
}

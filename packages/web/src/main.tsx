// Entry point: / is the list of public groups, /group/<name>/ is the call.
import { render } from 'preact';
import { Home } from './components/Home.tsx';
import { GroupApp } from './components/GroupApp.tsx';
import { runPopoutPage } from './popout-page.ts';
import './styles.css';

const m = /^\/group\/(.+?)\/?$/.exec(location.pathname);
const root = document.getElementById('app')!;
// The call's pop-out window (see popout.ts).
const popout = new URL(location.href).searchParams.get('popout');
if (popout) {
  runPopoutPage(popout);
} else if (m?.[1]) {
  const name = m[1].split('/').map(decodeURIComponent).join('/');
  render(<GroupApp name={name} />, root);
} else {
  render(<Home />, root);
}

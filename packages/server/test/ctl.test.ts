// `atrium ctl` (galenectl's commands) against a real server process: the
// command lines a user types (run in this process through runCtl, which the
// `atrium` binary calls, and a few through the binary itself, to keep the
// test fast), its changes seen by Galène-protocol clients
// (a user created and given a password logs in; a token admits, and once
// revoked is refused at once), --help for every command, and errors that
// say what is wrong.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { runCtl } from '../src/cli/ctl/index.ts';
import { GaleneTestClient } from './support/galene-client.ts';
import { type RunningServer, startServer } from './support/server-process.ts';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'atrium.mjs');
let server: RunningServer;
let home: string;

before(async () => {
  server = await startServer({});
  home = await mkdtemp(join(tmpdir(), 'atrium-ctl-home-'));
  process.env.XDG_CONFIG_HOME = home;
});
after(async () => {
  await server.stop();
  await rm(home, { recursive: true, force: true });
});

/** `atrium ctl ARGS`: what it prints and its exit status, as the binary would give them. */
async function ctl(args: string[], input?: string): Promise<{ code: number | null; out: string; err: string }> {
  let out = '';
  let err = '';
  const io = { out: (t: string) => (out += `${t}\n`), err: (t: string) => (err += `${t}\n`), stdin: async () => input ?? '' };
  try {
    return { code: await runCtl(args, io), out, err };
  } catch (e) {
    return { code: 1, out, err: `${err}atrium ctl: ${(e as Error).message}\n` };
  }
}

/** The same through the `atrium` binary, with its own configuration directory. */
function spawnCtl(args: string[], input?: string): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'ctl', ...args], { env: { ...process.env, XDG_CONFIG_HOME: home }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.stdin.end(input ?? '');
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

async function ok(args: string[], input?: string): Promise<string> {
  const r = await ctl(args, input);
  assert.equal(r.code, 0, `atrium ctl ${args.join(' ')} failed: ${r.err}`);
  return r.out;
}

async function joinGroup(group: string, creds: { username?: string; password?: string; token?: string }) {
  const c = await GaleneTestClient.connect(server.wsUrl);
  try {
    return await c.join(group, creds.username, creds.password, creds.token ? { token: creds.token } : {});
  } finally {
    c.close();
  }
}

test('initial-setup writes the server config and the ctl config, then every command works with no credentials on the line', async () => {
  const setup = await spawnCtl(['-server', server.url, '-admin-username', 'root', '-admin-password', 's3cret', 'initial-setup', '-data', server.dataDir]);
  assert.equal(setup.code, 0, setup.err);
  assert.match(setup.out, /config\.json has been created/);
  const config = JSON.parse(await readFile(join(server.dataDir, 'config.json'), 'utf8'));
  assert.equal(config.writableGroups, true);
  assert.equal(config.users.root.permissions, 'admin');
  assert.equal(config.users.root.password.type, 'bcrypt', 'the admin password is hashed');
  const mine = JSON.parse(await readFile(join(home, 'atrium', 'atrium-ctl.json'), 'utf8'));
  assert.deepEqual(mine, { server: server.url, 'admin-username': 'root', 'admin-password': 's3cret' });
  // Never overwritten.
  const again = await spawnCtl(['-admin-username', 'root', '-admin-password', 'x', 'initial-setup', '-data', server.dataDir]);
  assert.equal(again.code, 1);
  assert.match(again.err, /^atrium ctl: .*exists already/);

  // The server reads config.json when it changes: wait until the admin is known.
  for (let i = 0; ; i++) {
    const r = await ctl(['list-groups']);
    if (r.code === 0) {
      assert.match(r.out, /^public$/m);
      break;
    }
    assert.ok(i < 50, `the server never took the new config: ${r.err}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  // The rest uses a global admin token: checking it costs the server no bcrypt (cost 12) per request.
  const token = (await ok(['create-token', '--group', '', '--include-subgroups', '--permissions', '["admin"]', '--duration', '1h'])).trim();
  await writeFile(join(home, 'atrium', 'atrium-ctl.json'), JSON.stringify({ server: server.url, 'admin-token': token }));
});

test('groups and users: create, show, update, list with patterns, passwords set by the server or hashed here, delete', async () => {
  await ok(['create-group', '-group', 'team', '-auto-subgroups']);
  assert.deepEqual(JSON.parse(await ok(['show-group', '--group', 'team'])), { 'auto-subgroups': true });
  const dup = await ctl(['create-group', '--group', 'team']);
  assert.equal(dup.code, 1);
  assert.match(dup.err, /create-group: the server said 412/);
  await ok(['update-group', '--group', 'team', '--auto-subgroups=false', '--json'], '{"displayName": "The Team", "public": true}');
  assert.deepEqual(JSON.parse(await ok(['show-group', '--group', 'team'])), { 'auto-subgroups': false, displayName: 'The Team', public: true });
  await ok(['update-group', '--group', 'team', '--json'], '{"public": null}');
  assert.deepEqual(JSON.parse(await ok(['show-group', '--group', 'team'])), { 'auto-subgroups': false, displayName: 'The Team' });
  assert.equal(await ok(['list-groups', 't*']), 'team\n');

  await ok(['create-user', '--group', 'team', '--user', 'ann', '--permissions', 'op']);
  await ok(['create-user', '--group', 'team', '--user', 'ben']);
  await ok(['create-user', '--group', 'team', '--wildcard', '--permissions', '["message"]']);
  assert.equal(await ok(['list-users', '--group', 'team', '-l']), 'ann          op\nben          present\n');
  assert.equal(await ok(['list-users', '--group', 'team', 'b*']), 'ben\n');
  await ok(['update-user', '--group', 'team', '--user', 'ben', '--permissions', '["present","token"]']);
  assert.equal(await ok(['list-users', '--group', 'team', '-l', 'ben']), 'ben          [pt]\n');

  // Without --type the server hashes the password; with it, it is hashed here (galenectl's way).
  await ok(['set-password', '--group', 'team', '--user', 'ann', '--password', 'ann-pw']);
  await ok(['set-password', '--group', 'team', '--user', 'ben', '--password', 'ben-pw', '--type', 'pbkdf2', '--iterations', '1000']);
  await ok(['set-password', '--group', 'team', '--wildcard', '--type', 'wildcard']);
  assert.equal((await joinGroup('team', { username: 'ann', password: 'ann-pw' })).kind, 'join');
  assert.equal((await joinGroup('team', { username: 'ann', password: 'wrong' })).kind, 'fail');
  const ben = await joinGroup('team', { username: 'ben', password: 'ben-pw' });
  assert.equal(ben.kind, 'join');
  assert.deepEqual(ben.permissions, ['present', 'token']);
  const stored = JSON.parse(await readFile(join(server.groupsDir, 'team.json'), 'utf8'));
  assert.equal(stored.users.ben.password.type, 'pbkdf2');
  assert.equal(stored.users.ben.password.iterations, 1000);
  assert.equal(stored.users.ann.password.type === undefined ? 'plain' : stored.users.ann.password.type !== 'plain' ? 'hashed' : 'plain', 'hashed', 'the server hashed the posted password');

  await ok(['delete-password', '--group', 'team', '--user', 'ann']);
  assert.equal((await joinGroup('team', { username: 'ann', password: 'ann-pw' })).kind, 'fail');
  await ok(['delete-user', '--group', 'team', '--user', 'ann']);
  assert.equal(await ok(['list-users', '--group', 'team']), 'ben\n');
  await ok(['delete-group', '--group', 'team']);
  assert.doesNotMatch(await ok(['list-groups']), /team/);
});

test('tokens: create (an invitation that admits), list -l, update, revoke (refused at once), delete; a global admin token drives ctl itself', async () => {
  await ok(['create-group', '--group', 'club']);
  await ok(['create-group', '--group', 'club/inner']);
  const made = await ctl(['create-token', '--group', 'club', '--user', 'carol', '--permissions', 'present', '--duration', '1h30m', '--include-subgroups']);
  assert.equal(made.code, 0, made.err);
  const token = made.out.trim();
  assert.match(made.err, new RegExp(`invitation link: ${server.url}/group/club/\\?token=${token}`));
  const j = await joinGroup('club/inner', { token });
  assert.equal(j.kind, 'join', 'a hierarchical token admits to a subgroup');
  assert.equal(j.username, 'carol');

  const long = await ok(['list-tokens', '--group', 'club', '-l']);
  assert.match(long, new RegExp(`^${token}\\s+carol\\s+Hmp\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d$`, 'm'));
  await ok(['update-token', '--group', 'club', '--token', token, '--permissions', '["message"]', '--duration', '2h']);
  assert.deepEqual((await joinGroup('club', { token })).permissions, ['message']);

  await ok(['revoke-token', '--group', 'club', '--token', token]);
  const refused = await joinGroup('club', { token });
  assert.equal(refused.kind, 'fail');
  assert.match(refused.value, /expired/);
  assert.match(await ok(['list-tokens', '--group', 'club', '-l']), /\(expired\)/);
  await ok(['delete-token', '--group', 'club', '--token', token]);
  assert.equal(await ok(['list-tokens', '--group', 'club']), '');

  // A global token (the root group, with subgroups) with "admin" is an administrator.
  const root = (await ok(['create-token', '--group', '', '--include-subgroups', '--permissions', '["admin"]'])).trim();
  assert.match(await ok(['list-tokens', '--group', '']), new RegExp(`^${root}$`, 'm'));
  const viaToken = await ctl(['--admin-username', '', '--admin-token', root, 'list-groups', 'club*', 'club/*']);
  assert.equal(viaToken.code, 0, viaToken.err);
  assert.equal(viaToken.out, 'club\nclub/inner\n');
  await ok(['revoke-token', '--group', '', '--token', root]);
  const afterRevoke = await ctl(['--admin-token', root, 'list-groups']);
  assert.equal(afterRevoke.code, 1, 'a revoked admin token is refused at once');
  assert.match(afterRevoke.err, /401/);
});

test('every command has --help; mistakes get a sentence that says what is wrong', async () => {
  const usage = await ctl([]);
  assert.equal(usage.code, 2);
  const commands = [...usage.err.matchAll(/^ {2}([a-z][a-z-]+) {2,}/gm)].map((m) => m[1]!);
  assert.deepEqual(commands.sort(), [
    'create-group',
    'create-token',
    'create-user',
    'delete-group',
    'delete-password',
    'delete-token',
    'delete-user',
    'drain',
    'hash-password',
    'initial-setup',
    'list-groups',
    'list-tokens',
    'list-users',
    'revoke-token',
    'set-password',
    'show-group',
    'update-group',
    'update-token',
    'update-user',
  ]);
  for (const c of commands) {
    const h = await ctl([c, '--help']);
    assert.equal(h.code, 0, `${c} --help: ${h.err}`);
    assert.match(h.out, new RegExp(`^Usage: atrium ctl \\[global options\\] ${c}`), c);
  }
  const cases: [string[], RegExp][] = [
    [['create-user', '--user', 'x'], /create-user: option --group is required/],
    [['create-user', '--group', 'g'], /exactly one of --user NAME and --wildcard/],
    [['create-token', '--group', 'g', '--duration', 'soon'], /--duration "soon" is not a duration/],
    [['list-users', '--group', 'nope'], /list-users: the server said 404/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['create-group', '--colour', 'red'], /create-group: Unknown option '--colour'/],
    [['--server', 'http://127.0.0.1:1', 'list-groups'], /cannot reach http:\/\/127\.0\.0\.1:1: connection refused/],
    [['--config', join(home, 'none.json'), '--server', server.url, '--admin-username', 'root', '--admin-password', 'wrong', 'list-groups'], /401 Unauthorized.*not an administrator here/],
    [['--config', join(home, 'none.json'), '--server', server.url, 'list-groups'], /401 Unauthorized.*give --admin-username/],
    [['--server', 'ftp://x', 'list-groups'], /must be an http: or https: URL/],
  ];
  for (const [args, re] of cases) {
    const r = await ctl(args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.err, re, `atrium ctl ${args.join(' ')}: ${r.err}`);
  }
  // hash-password as galenectl: a definition on stdout.
  const def = JSON.parse(await ok(['hash-password', '--password', 'pw', '--type', 'pbkdf2', '--iterations', '1000']));
  assert.equal(def.type, 'pbkdf2');
  assert.equal(def.iterations, 1000);
  assert.equal(JSON.parse(await ok(['hash-password', '--password', 'pw'])).type, 'bcrypt');
});

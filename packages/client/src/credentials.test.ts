import assert from 'node:assert/strict';
import { afterEach, mock, test } from 'node:test';
import { AtriumClientError } from './errors.ts';
import { isCredentials, joinMessage } from './credentials.ts';

afterEach(() => mock.restoreAll());

test('passwords and tokens go into the join message as they are', async () => {
  assert.deepEqual(await joinMessage('g', 'u', 'pw', undefined), { type: 'join', kind: 'join', group: 'g', username: 'u', password: 'pw' });
  assert.deepEqual(await joinMessage('g', 'u', { type: 'password', password: 'pw' }, { a: 1 }), { type: 'join', kind: 'join', group: 'g', username: 'u', password: 'pw', data: { a: 1 } });
  assert.deepEqual(await joinMessage('g', undefined, { type: 'token', token: 't' }, undefined), { type: 'join', kind: 'join', group: 'g', token: 't' });
  assert.equal(isCredentials({ type: 'token' }), false);
  assert.equal(isCredentials({ mood: 'ok' }), false);
});

test('the authorisation server: a JWT is used as the token, 204 falls back to the password, a refusal throws', async () => {
  const asked: unknown[] = [];
  const answers = [
    new Response('the.jwt.value', { status: 200, headers: { 'Content-Type': 'application/jwt; charset=utf-8' } }),
    new Response(null, { status: 204 }),
    new Response('no', { status: 403, statusText: 'Forbidden' }),
    new Response('{}', { status: 200, headers: { 'Content-Type': 'application/json' } }),
  ];
  mock.method(globalThis, 'fetch', async (url: string, init: RequestInit) => {
    asked.push([url, JSON.parse(String(init.body))]);
    return answers.shift()!;
  });
  const c = { type: 'authServer' as const, authServer: 'https://auth.example/', location: 'https://x/group/g/', password: 'pw' };
  assert.deepEqual(await joinMessage('g', 'u', c, undefined), { type: 'join', kind: 'join', group: 'g', username: 'u', token: 'the.jwt.value' });
  assert.deepEqual(await joinMessage('g', 'u', c, undefined), { type: 'join', kind: 'join', group: 'g', username: 'u', password: 'pw' });
  await assert.rejects(
    () => joinMessage('g', 'u', c, undefined),
    (e: unknown) => e instanceof AtriumClientError && /403/.test(e.message),
  );
  await assert.rejects(() => joinMessage('g', 'u', c, undefined), /application\/json, not application\/jwt/);
  assert.deepEqual(asked[0], ['https://auth.example/', { location: 'https://x/group/g/', username: 'u', password: 'pw' }]);
});

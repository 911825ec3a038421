// The XMPP domain's default (issue 16, point 1): without --xmpp-domain it is
// the host of config.json's proxyURL, so a server behind
// https://meet.example.org answers streams to meet.example.org, binds JIDs
// there and hosts its rooms on conference.meet.example.org; a stream to
// another domain (localhost included) is refused with host-unknown naming
// both. --xmpp-domain wins over proxyURL.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type RunningServer, startServer } from '../support/server-process.ts';
import { GROUPS, RawXmpp } from './support.ts';

const servers: RunningServer[] = [];
const closers: (() => void)[] = [];
after(async () => {
  for (const c of closers) c();
  for (const s of servers) await s.stop();
});

async function raw(server: RunningServer): Promise<RawXmpp> {
  const r = await RawXmpp.connect(server.url);
  closers.push(() => r.close());
  return r;
}

test('without --xmpp-domain the domain is the host of proxyURL: streams, JIDs and rooms live there', async () => {
  const server = await startServer({ groups: GROUPS, config: { proxyURL: 'https://meet.example.org/' } });
  servers.push(server);
  const r = await raw(server);
  await r.open('meet.example.org');
  r.send('<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="ANONYMOUS"/>');
  await r.next((e) => e.is('success'), 'SASL success');
  await r.open('meet.example.org');
  r.send('<iq xmlns="jabber:client" type="set" id="bind1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>');
  const bound = await r.next((e) => e.is('iq') && e.attrs.id === 'bind1', 'bind result');
  assert.match(bound.getChild('bind')!.getChildText('jid')!, /@meet\.example\.org\//);
  r.send('<presence xmlns="jabber:client" to="chat@conference.meet.example.org/visitor"><x xmlns="http://jabber.org/protocol/muc"/></presence>');
  const self = await r.next((e) => e.is('presence') && e.attrs.from === 'chat@conference.meet.example.org/visitor', 'the self-presence in the room');
  assert.notEqual(self.attrs.type, 'error', self.toString());

  const wrong = await raw(server);
  wrong.send('<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="localhost" version="1.0"/>');
  const err = await wrong.streamError();
  assert.equal(err.condition, 'host-unknown');
  assert.match(err.text, /"meet\.example\.org", not "localhost"/);
});

test('--xmpp-domain wins over proxyURL', async () => {
  const server = await startServer({ groups: GROUPS, config: { proxyURL: 'https://meet.example.org/' }, args: ['--xmpp-domain', 'chat.example.net'] });
  servers.push(server);
  const r = await raw(server);
  await r.open('chat.example.net');
  const wrong = await raw(server);
  wrong.send('<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="meet.example.org" version="1.0"/>');
  const err = await wrong.streamError();
  assert.equal(err.condition, 'host-unknown');
  assert.match(err.text, /"chat\.example\.net", not "meet\.example\.org"/);
});

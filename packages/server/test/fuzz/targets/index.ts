// Every fuzz target, by name (`npm run fuzz -- --target NAME`).
import type { Target } from '../support/harness.ts';
import { adminTarget } from './admin.ts';
import { camusTarget } from './camus.ts';
import { galeneTarget } from './galene.ts';
import { groupFileTarget } from './group-file.ts';
import { jwtTarget } from './jwt.ts';
import { rtcpoolWsTarget, socketIoTarget } from './rtcpool.ts';
import { whipTarget } from './whip.ts';
import { xmppTarget } from './xmpp.ts';

// Targets differ in their case and environment types; the runner only passes them through.
// biome-ignore lint/suspicious/noExplicitAny: see above
export const TARGETS: Record<string, Target<any, any>> = {
  galene: galeneTarget,
  camus: camusTarget,
  'rtcpool-ws': rtcpoolWsTarget,
  socketio: socketIoTarget,
  admin: adminTarget,
  'group-file': groupFileTarget,
  jwt: jwtTarget,
  xmpp: xmppTarget,
  whip: whipTarget,
};

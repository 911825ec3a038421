// Short fuzz pass over XMPP over WebSocket (see support/short-pass.ts).
import { shortPass } from './support/short-pass.ts';

shortPass(['xmpp']);

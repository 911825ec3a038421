// What every part of the XMPP dialect shares: the domains it serves, the
// core, the live sessions (by address and by stream-management id) and the
// rooms' nick directories.
import type { DialectContext } from '../kit/index.ts';
import type { Place } from '../../http/place.ts';
import type { RoomDirectory } from './muc.ts';
import type { Login, SaslFailure } from './sasl.ts';
import type { XmppSession } from './session.ts';

export interface XmppContext extends DialectContext {
  /** The XMPP domain (users are user@domain). */
  domain: string;
  /** The MUC service: rooms are room@mucDomain. */
  mucDomain: string;
  /** Where Jitsi clients send their conference request (`hosts.focus`). */
  focusDomain: string;
  sessions: SessionDirectory;
  rooms: RoomDirectory;
  /** Undefined when SASL may go on with this login, else why it may not. */
  checkLogin(login: Login, place: Place, address: string | undefined): Promise<{ condition: SaslFailure; text: string } | undefined>;
  /** Seconds a session whose stream dropped waits to be resumed (XEP-0198). */
  resumeSeconds: number;
}

/** The live sessions, by full JID and by stream-management id. */
export class SessionDirectory {
  private readonly jids = new Map<string, XmppSession>();
  private readonly smIds = new Map<string, XmppSession>();

  add(s: XmppSession): void {
    this.jids.set(s.fullJid, s);
  }

  remove(s: XmppSession): void {
    if (this.jids.get(s.fullJid) === s) this.jids.delete(s.fullJid);
    for (const [id, x] of this.smIds) if (x === s) this.smIds.delete(id);
  }

  byJid(fullJid: string): XmppSession | undefined {
    return this.jids.get(fullJid);
  }

  registerResumable(id: string, s: XmppSession): void {
    this.smIds.set(id, s);
  }

  resumable(id: string): XmppSession | undefined {
    return this.smIds.get(id);
  }

  all(): IterableIterator<XmppSession> {
    return this.jids.values();
  }
}

// The Jingle session description as data: what XEP-0166 contents carry with
// the RTP application (XEP-0167) and its rtcp-fb (XEP-0293), header
// extensions (XEP-0294), sources and source groups (XEP-0339, with Jitsi's
// source names, owners and rid groups), BUNDLE grouping (XEP-0338), the
// ICE-UDP transport (XEP-0176) with DTLS fingerprints (XEP-0320) and SCTP
// data channels (XEP-0343). Both the SDP converter and the XML converter
// work on this shape, so each is tested on its own.

export type Senders = 'both' | 'initiator' | 'responder' | 'none';

export interface JinglePayload {
  id: number;
  name: string;
  clockrate?: number | undefined;
  channels?: number | undefined;
  parameters: { name: string; value: string }[];
  feedback: JingleFeedback[];
}

export interface JingleFeedback {
  type: string;
  subtype?: string | undefined;
}

export interface JingleSource {
  ssrc: number;
  /** Jitsi's source name (`<endpoint>-a0`, `<endpoint>-v0`). */
  name?: string | undefined;
  /** Jitsi's `videoType` (camera, desktop). */
  videoType?: string | undefined;
  msid?: string | undefined;
  cname?: string | undefined;
  /** Who sends it: the occupant JID (Jitsi's <ssrc-info owner/>). */
  owner?: string | undefined;
}

export interface JingleSsrcGroup {
  /** SIM (simulcast), FID (retransmission), … */
  semantics: string;
  ssrcs: number[];
}

export interface JingleCandidate {
  foundation: string;
  component: number;
  protocol: string;
  priority: number;
  ip: string;
  port: number;
  type: string;
  relAddr?: string | undefined;
  relPort?: number | undefined;
  tcptype?: string | undefined;
  generation: number;
  /** XEP-0176 requires an id; made from the foundation when the SDP has none. */
  id: string;
  network?: number | undefined;
}

export interface JingleTransport {
  ufrag?: string | undefined;
  pwd?: string | undefined;
  fingerprints: { hash: string; setup?: string | undefined; value: string }[];
  candidates: JingleCandidate[];
  /** XEP-0343 SCTP over DTLS for data channels. */
  sctp?: { port: number; maxMessageSize?: number | undefined } | undefined;
  /** Jitsi's bridge channel URL (<web-socket xmlns='http://jitsi.org/protocol/colibri' url=…/>). */
  webSocket?: string | undefined;
}

export interface JingleContent {
  name: string;
  creator: 'initiator' | 'responder';
  senders: Senders;
  /** The m-line was rejected (port 0 in SDP; Jitsi writes senders='rejected'). */
  rejected?: boolean | undefined;
  /** Absent for a data-channel content (m=application). */
  rtp?:
    | {
        media: 'audio' | 'video';
        payloads: JinglePayload[];
        /** rtcp-fb for every payload type ('*'). */
        feedback: JingleFeedback[];
        extensions: { id: number; uri: string; senders?: Senders | undefined }[];
        extmapAllowMixed: boolean;
        rtcpMux: boolean;
        rtcpRsize: boolean;
        sources: JingleSource[];
        ssrcGroups: JingleSsrcGroup[];
        /** rid-based simulcast: the rids, highest first, who sends them, and whether a SIM rid group holds them. */
        rids: string[];
        ridsSentBy?: JingleRole | undefined;
        simulcast: boolean;
      }
    | undefined;
  transport: JingleTransport;
}

export interface JingleDescription {
  contents: JingleContent[];
  /** Content names bundled together (a=group:BUNDLE). */
  bundle?: string[] | undefined;
}

/** A Jingle side: which of the two parties wrote an SDP. */
export type JingleRole = 'initiator' | 'responder';

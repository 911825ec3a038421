// werift configuration shared by up- and down-streams.
import {
  Connection,
  RTCRtpCodecParameters,
  useAbsSendTime,
  useAudioLevelIndication,
  useFIR,
  useH264,
  useNACK,
  useOPUS,
  usePLI,
  useREMB,
  useTWCC,
  useRepairedRtpStreamId,
  useSdesMid,
  useSdesRTPStreamId,
  useTransportWideCC,
  useVP8,
  useVP9,
  type RTCPeerConnectionConfig,
} from 'werift';
import { ALL_CODECS, type CodecName, type IceServer } from '../engine.ts';

export interface WeriftEngineOptions {
  /**
   * Host addresses offered besides the machine's interfaces. werift skips
   * loopback by default, so tests in a loopback-only namespace pass ['127.0.0.1'].
   */
  additionalHostAddresses?: string[];
  /** UDP port range [min, max] for ICE (min !== max). */
  portRange?: [number, number];
  /** After a down-switch, a subscriber is retried on the higher layer after this long (ms; default 15 s). */
  probeAfterMs?: number;
}

export function codecName(mimeType: string): CodecName | undefined {
  const name = mimeType.split('/')[1]?.toLowerCase();
  return name === 'vp8' || name === 'vp9' || name === 'h264' || name === 'opus' ? name : undefined;
}

/**
 * werift's ICE agent queries stun.l.google.com:19302 when no STUN server is
 * configured. A server must not talk to a third party nobody named, and on a
 * host whose packets to it are dropped (no way out, a firewall) every
 * gathering, so every answer and offer, waits werift's 5 s STUN timeout: a
 * cluster node taking over a group answered each republished stream 5 s
 * late. Without a configured STUN server the agent gathers host (and TURN)
 * candidates only, as the browser does with an empty iceServers list.
 */
function noUnconfiguredStun(): void {
  const proto = Connection.prototype as unknown as { gatherCandidates(this: Connection): Promise<void>; atriumNoDefaultStun?: true };
  if (proto.atriumNoDefaultStun) return;
  proto.atriumNoDefaultStun = true;
  const original = proto.gatherCandidates;
  proto.gatherCandidates = function (this: Connection) {
    const self = this as unknown as { options: { stunServer?: unknown }; stunServer?: unknown };
    if (self.options.stunServer === undefined) self.stunServer = undefined;
    return original.call(this);
  };
}
noUnconfiguredStun();

function base(engine: WeriftEngineOptions, iceServers: IceServer[]): RTCPeerConnectionConfig {
  return {
    // Always the configured servers: werift's default names a public STUN server.
    iceServers: iceServers.map((s) => ({ ...s })),
    iceAdditionalHostAddresses: engine.additionalHostAddresses ?? [],
    ...(engine.portRange ? { icePortRange: engine.portRange } : {}),
    // IPv6 gathering on a loopback-only or v4-only host only adds noise.
    iceUseIpv6: false,
    bundlePolicy: 'max-bundle',
  };
}

/**
 * Publisher side: werift answers; codecs are matched by MIME type, the publisher's fmtp and feedback are kept.
 * `rtx`: offer RTX (the werift up-stream unwraps it); the native packet plane does not, so it passes false.
 */
export function upConfig(engine: WeriftEngineOptions, iceServers: IceServer[], codecs: CodecName[] = [...ALL_CODECS], rtx = true): RTCPeerConnectionConfig {
  const video: RTCRtpCodecParameters[] = [];
  // what Galène honours: NACK, PLI, FIR, REMB; plus transport-cc (we write the feedback, see twcc.ts)
  const rtcpFeedback = [useNACK(), usePLI(), useFIR(), useREMB(), useTWCC()];
  // each followed by RTX (RFC 4588): a publisher that offers it resends what we NACK on its RTX stream (up-stream.ts unwraps it)
  const repair = () => (rtx ? [new RTCRtpCodecParameters({ mimeType: 'video/rtx', clockRate: 90000 })] : []);
  if (codecs.includes('vp8')) video.push(useVP8({ rtcpFeedback }), ...repair());
  if (codecs.includes('vp9')) video.push(useVP9({ rtcpFeedback }), ...repair());
  if (codecs.includes('h264')) video.push(useH264({ rtcpFeedback }), ...repair());
  const audio = codecs.includes('opus') ? [useOPUS()] : [];
  return {
    ...base(engine, iceServers),
    codecs: { audio, video },
    headerExtensions: {
      audio: [useSdesMid(), useTransportWideCC(), useAbsSendTime(), useAudioLevelIndication()],
      video: [useSdesMid(), useSdesRTPStreamId(), useRepairedRtpStreamId(), useTransportWideCC(), useAbsSendTime()],
    },
  };
}

export interface CodecDescription {
  mimeType: string;
  clockRate: number;
  channels?: number;
  parameters?: string;
}

/**
 * Subscriber side: the server offers exactly the publisher's codec, with
 * NACK, PLI, REMB and transport-cc, and RTX for video (NACKs are answered on
 * the RTX stream when the subscriber accepts it). Chromium 156 sends no REMB even when
 * transport-cc is not offered, so TWCC feedback (werift's delay-based
 * congestion detector) is what Chromium subscribers give us; REMB is used
 * when a subscriber sends it.
 */
export function downConfig(engine: WeriftEngineOptions, iceServers: IceServer[], audio: CodecDescription[], video: CodecDescription[]): RTCPeerConnectionConfig {
  const make = (c: CodecDescription, kind: 'audio' | 'video') =>
    new RTCRtpCodecParameters({
      mimeType: c.mimeType,
      clockRate: c.clockRate,
      ...(c.channels ? { channels: c.channels } : {}),
      ...(c.parameters ? { parameters: c.parameters } : {}),
      rtcpFeedback: kind === 'video' ? [useNACK(), usePLI(), useFIR(), useREMB(), useTWCC()] : [useTWCC()],
    });
  const mid = useSdesMid();
  const twcc = useTransportWideCC();
  return {
    ...base(engine, iceServers),
    // each video codec is followed by its RTX (RFC 4588): werift gives it apt=<the codec's payload type>
    codecs: { audio: audio.map((c) => make(c, 'audio')), video: video.flatMap((c) => [make(c, 'video'), new RTCRtpCodecParameters({ mimeType: 'video/rtx', clockRate: 90000 })]) },
    // One object per extension for both kinds: werift numbers extensions by
    // position (audio then video), and a shared object keeps ONE id per URI
    // across the bundle. With two ids for transport-cc Chromium only reads
    // one of them, and every audio packet looked lost in its feedback.
    headerExtensions: {
      audio: [mid, twcc],
      video: [mid, twcc, useAbsSendTime()],
    },
  };
}

// RTCPool's wire words for the core's vocabulary (core/vocabulary.ts). ssp
// has no permissions nor streams of its own (media goes peer to peer); its
// `rtc:error` carries the core's error code as `reason`, so every core code
// must be one RTCPool's schema allows: the type check below says so.
import type { ErrorCode as WireErrorCode } from '@atrium/protocol/rtcpool';
import type { ErrorCode } from '../../core/vocabulary.ts';

const errorCodesFit: [ErrorCode] extends [WireErrorCode] ? true : false = true;
void errorCodesFit;

/** A core error code as `rtc:error`'s `reason`. */
export function wireErrorCode(code: ErrorCode): WireErrorCode {
  return code;
}

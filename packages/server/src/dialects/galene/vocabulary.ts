// Galène's wire words for the core's vocabulary (core/vocabulary.ts).
// Permissions and error codes are the same words on both sides; the type
// checks below fail to compile the day one side gains a word the other
// lacks, so the mapping is then written here rather than assumed. What a
// subscriber asks for is where the words differ: Galène lists media
// (`["audio", "video-low"]`), the core asks for a layer.
import type { ErrorCode as WireErrorCode, Permission as WirePermission, StreamRequest } from '@atrium/protocol/galene';
import type { ErrorCode, LayerRequest, MediaRequest, Permission } from '../../core/vocabulary.ts';

/** True when A and B are the same set of words. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

// Galène's permission words are the core's, and the other way round.
const permissionsMatch: Same<Permission, WirePermission> = true;
// Every code the core refuses with is one Galène clients know.
const errorCodesFit: [ErrorCode] extends [WireErrorCode] ? true : false = true;
void permissionsMatch;
void errorCodesFit;

/** Core permissions as Galène sends them (`joined`, `user`). */
export function wirePermissions(permissions: Permission[]): WirePermission[] {
  return permissions;
}

/** Permissions from a Galène frame (`maketoken`), in the core's words. */
export function corePermissions(permissions: WirePermission[]): Permission[] {
  return permissions;
}

/** A core error code as Galène's `error` field carries it. */
export function wireErrorCode(code: ErrorCode): WireErrorCode {
  return code;
}

/** One stream's media list (`requestStream`, or one label of `request`) as a layer request. */
export function layerRequest(media: readonly string[]): LayerRequest {
  return {
    audio: media.includes('audio'),
    video: media.includes('video') ? 'high' : media.includes('video-low') ? 'low' : 'none',
  };
}

/** A `request` message (media per label, '' for the rest) as the core's per-label request. */
export function mediaRequest(request: StreamRequest): MediaRequest {
  const out: MediaRequest = {};
  for (const [label, media] of Object.entries(request)) {
    // defineProperty: a label "__proto__" stays an ordinary key.
    Object.defineProperty(out, label, { value: layerRequest(media), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

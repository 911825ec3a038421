// What we send: the camera and microphone (one up-stream labelled
// `camera`, as Galène does) and a screen share (`screenshare`), the
// devices to use and whether video goes out as simulcast. Muting the
// microphone disables its track at once and tells the others through our
// user data; turning the camera on or off replaces the up-stream.
import { signal } from '@preact/signals';
import type { Stream } from '@atrium/client';
import { describe } from './errors.ts';
import * as session from './session.ts';

interface Prefs {
  camera: boolean;
  mic: boolean;
  videoDevice: string;
  audioDevice: string;
  simulcast: boolean;
}

const PREFS_KEY = 'atrium:media';
const saved = (() => {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY) ?? '{}') as Partial<Prefs>;
  } catch {
    return {};
  }
})();

export const prefs = signal<Prefs>({ camera: true, mic: true, videoDevice: '', audioDevice: '', simulcast: true, ...saved });
export const camOn = signal(false);
export const micOn = signal(false);
export const screenOn = signal(false);
/** Our camera's MediaStream, for the preview tile. */
export const localStream = signal<MediaStream | null>(null);
export const screenStream = signal<MediaStream | null>(null);
export const devices = signal<MediaDeviceInfo[]>([]);
export const busy = signal(false);

let camera: Stream | null = null;
let screen: Stream | null = null;

function savePrefs(patch: Partial<Prefs>): void {
  prefs.value = { ...prefs.value, ...patch };
  localStorage.setItem(PREFS_KEY, JSON.stringify(prefs.value));
}

/** Called once joined: starts what the person had on last time. */
export async function joined(): Promise<void> {
  // After a reconnection the SDK offers our up-streams again by itself.
  if (!session.can('present') || camera) return;
  await rebuildCamera(prefs.value.camera, prefs.value.mic);
  void listDevices();
}

export async function listDevices(): Promise<void> {
  try {
    devices.value = await navigator.mediaDevices.enumerateDevices();
  } catch {
    devices.value = [];
  }
}

export async function setCamera(on: boolean): Promise<void> {
  savePrefs({ camera: on });
  await rebuildCamera(on, micOn.value);
}

export function setMic(on: boolean): void {
  savePrefs({ mic: on });
  const track = localStream.value?.getAudioTracks()[0];
  if (on && !track) {
    void rebuildCamera(camOn.value, true);
    return;
  }
  if (track) track.enabled = on;
  micOn.value = on && !!track;
  session.publishMuted(!micOn.value);
}

export async function setDevices(videoDevice: string, audioDevice: string, simulcast: boolean): Promise<void> {
  savePrefs({ videoDevice, audioDevice, simulcast });
  if (camOn.value || micOn.value) await rebuildCamera(camOn.value, micOn.value);
}

/** Replaces the camera up-stream by one with the tracks wanted now (or closes it). */
async function rebuildCamera(video: boolean, audio: boolean): Promise<void> {
  if (busy.value) return;
  busy.value = true;
  try {
    const old = localStream.value;
    if (!video && !audio) {
      camera?.close();
      camera = null;
      stopTracks(old);
      localStream.value = null;
      camOn.value = false;
      micOn.value = false;
      session.publishMuted(true);
      return;
    }
    const p = prefs.value;
    let ms: MediaStream;
    try {
      ms = await navigator.mediaDevices.getUserMedia({
        video: video ? (p.videoDevice ? { deviceId: { exact: p.videoDevice } } : true) : false,
        audio: audio ? (p.audioDevice ? { deviceId: { exact: p.audioDevice } } : true) : false,
      });
    } catch (e) {
      session.notify('error', `Could not use your ${video ? 'camera' : 'microphone'}: ${mediaError(e)}`);
      return;
    }
    const s = session.newUpStream(camera?.localId);
    if (!s) {
      stopTracks(ms);
      return;
    }
    s.label = 'camera';
    for (const t of ms.getTracks()) s.addTrack(t, { simulcast: t.kind === 'video' && p.simulcast });
    s.onerror = (e) => session.notify('error', `Sending your camera failed: ${describe(e)}`);
    camera = s;
    stopTracks(old);
    localStream.value = ms;
    camOn.value = ms.getVideoTracks().length > 0;
    micOn.value = ms.getAudioTracks().length > 0 && audio;
    session.publishMuted(!micOn.value);
    if (devices.value.every((d) => !d.label)) void listDevices();
  } finally {
    busy.value = false;
  }
}

export async function setScreen(on: boolean): Promise<void> {
  if (!on) {
    screen?.close();
    screen = null;
    stopTracks(screenStream.value);
    screenStream.value = null;
    screenOn.value = false;
    return;
  }
  let ms: MediaStream;
  try {
    ms = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
  } catch (e) {
    if ((e as DOMException)?.name !== 'NotAllowedError') session.notify('error', `Could not share your screen: ${mediaError(e)}`);
    return;
  }
  const s = session.newUpStream();
  if (!s) return stopTracks(ms);
  s.label = 'screenshare';
  for (const t of ms.getTracks()) {
    s.addTrack(t);
    t.onended = () => void setScreen(false);
  }
  screen = s;
  screenStream.value = ms;
  screenOn.value = true;
}

/** Stops sending anything (permission to present withdrawn). */
export function stopAll(): void {
  if (camera || screen) session.notify('info', 'You may not present in this group any more.');
  reset();
}

/** Forgets everything local: the connection closed them already or is going away. */
export function reset(): void {
  camera?.close();
  screen?.close();
  camera = null;
  screen = null;
  stopTracks(localStream.value);
  stopTracks(screenStream.value);
  localStream.value = null;
  screenStream.value = null;
  camOn.value = false;
  micOn.value = false;
  screenOn.value = false;
}

function stopTracks(ms: MediaStream | null): void {
  for (const t of ms?.getTracks() ?? []) t.stop();
}

function mediaError(e: unknown): string {
  const name = (e as DOMException)?.name;
  if (name === 'NotAllowedError') return 'the browser was not allowed to use it; check the site permissions.';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'no such device was found; pick another one in Settings.';
  if (name === 'NotReadableError') return 'it is being used by another application.';
  return describe(e);
}

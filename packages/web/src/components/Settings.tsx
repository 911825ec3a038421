// Device selection and simulcast, in a modal dialog (Escape closes it).
import { useEffect, useRef, useState } from 'preact/hooks';
import { devices, listDevices, prefs, setDevices } from '../media.ts';

export function Settings({ open, onClose }: { open: boolean; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [video, setVideo] = useState(prefs.value.videoDevice);
  const [audio, setAudio] = useState(prefs.value.audioDevice);
  const [simulcast, setSimulcast] = useState(prefs.value.simulcast);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      setVideo(prefs.value.videoDevice);
      setAudio(prefs.value.audioDevice);
      setSimulcast(prefs.value.simulcast);
      void listDevices();
      d.showModal();
    } else if (!open && d.open) d.close();
  }, [open]);
  const cams = devices.value.filter((d) => d.kind === 'videoinput');
  const mics = devices.value.filter((d) => d.kind === 'audioinput');
  const save = (e: Event) => {
    e.preventDefault();
    void setDevices(video, audio, simulcast);
    onClose();
  };
  return (
    <dialog ref={ref} class="dialog" aria-labelledby="settings-title" onClose={onClose}>
      <form onSubmit={save}>
        <h2 id="settings-title">Settings</h2>
        <label for="camera-select">Camera</label>
        <select id="camera-select" value={video} onChange={(e) => setVideo(e.currentTarget.value)}>
          <option value="">Default camera</option>
          {cams.map((d, i) => (
            <option key={d.deviceId} value={d.deviceId}>
              {d.label || `Camera ${i + 1}`}
            </option>
          ))}
        </select>
        <label for="mic-select">Microphone</label>
        <select id="mic-select" value={audio} onChange={(e) => setAudio(e.currentTarget.value)}>
          <option value="">Default microphone</option>
          {mics.map((d, i) => (
            <option key={d.deviceId} value={d.deviceId}>
              {d.label || `Microphone ${i + 1}`}
            </option>
          ))}
        </select>
        <label class="check">
          <input type="checkbox" checked={simulcast} onChange={(e) => setSimulcast(e.currentTarget.checked)} />
          Simulcast (send a low-quality copy too, for people on weak connections)
        </label>
        <div class="row end">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary">
            Apply
          </button>
        </div>
      </form>
    </dialog>
  );
}

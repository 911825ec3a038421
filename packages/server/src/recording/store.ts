// The recordings on disk, as HTTP sees them: <root>/<group>/<file>. Lists a
// group's files, finds one for download and deletes one, refusing any name
// that could leave the group's folder. Files still being written end in
// .part and are listed as such.
import { readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PART } from './file.ts';

export interface RecordingEntry {
  name: string;
  size: number;
  /** Last written, ISO 8601. */
  modified: string;
  /** False while the recorder still writes it (a .part file). */
  complete: boolean;
}

export class RecordingNameError extends Error {}

/** A file name inside a group's folder: one path segment, no hidden or special names. */
export function checkRecordingName(name: string): void {
  if (name === '' || name.includes('/') || name.includes('\\') || name.startsWith('.') || name.includes('\0')) {
    throw new RecordingNameError(`"${name}" is not the name of a recording (a file name without "/" that does not start with ".")`);
  }
}

export class RecordingStore {
  constructor(readonly root: string) {}

  /** The folder of a group (its name is validated by the caller: it names a group). */
  dirOf(group: string): string {
    return join(this.root, ...group.split('/'));
  }

  /** The group's recordings, by name; an empty list when it has none (no folder yet). */
  async list(group: string): Promise<RecordingEntry[]> {
    const dir = this.dirOf(group);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: RecordingEntry[] = [];
    for (const name of names.sort()) {
      if (name.startsWith('.')) continue;
      const s = await stat(join(dir, name)).catch(() => undefined);
      if (!s?.isFile()) continue;
      out.push({ name, size: s.size, modified: s.mtime.toISOString(), complete: !name.endsWith(PART) });
    }
    return out;
  }

  /** The path and facts of one recording, or undefined when there is no such file. */
  async find(group: string, name: string): Promise<{ path: string; size: number; modified: Date } | undefined> {
    checkRecordingName(name);
    const path = join(this.dirOf(group), name);
    const s = await stat(path).catch(() => undefined);
    return s?.isFile() ? { path, size: s.size, modified: s.mtime } : undefined;
  }

  /** Deletes one recording; false when there was none. */
  async remove(group: string, name: string): Promise<boolean> {
    const found = await this.find(group, name);
    if (!found) return false;
    try {
      await unlink(found.path);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  }
}

// The chat history of one group: public messages, oldest first, pruned by
// age (the group's max-history-age) and by count so memory stays bounded.
import type { ChatEvent } from './client.ts';

export const MAX_HISTORY_ENTRIES = 500;

export class ChatHistory {
  private entries: ChatEvent[] = [];

  constructor(private maxAgeSeconds: number) {}

  setMaxAge(seconds: number): void {
    this.maxAgeSeconds = seconds;
  }

  add(event: ChatEvent, now = Date.now()): void {
    this.entries.push(event);
    if (this.entries.length > MAX_HISTORY_ENTRIES) this.entries.splice(0, this.entries.length - MAX_HISTORY_ENTRIES);
    this.prune(now);
  }

  /** Entries young enough to replay, oldest first, marked as history. */
  replay(now = Date.now()): ChatEvent[] {
    this.prune(now);
    return this.entries.map((e) => ({ ...e, history: true }));
  }

  /** Everything; or, as Galène, the messages of one user (`userId`), or just one of them (`id`). */
  clear(id?: string, userId?: string): void {
    if (!id && !userId) {
      this.entries = [];
      return;
    }
    this.entries = this.entries.filter((e) => !(e.source === userId && (!id || e.id === id)));
  }

  get size(): number {
    return this.entries.length;
  }

  private prune(now: number): void {
    const oldest = now - this.maxAgeSeconds * 1000;
    let drop = 0;
    while (drop < this.entries.length && this.entries[drop]!.time.getTime() < oldest) drop++;
    if (drop > 0) this.entries.splice(0, drop);
  }
}

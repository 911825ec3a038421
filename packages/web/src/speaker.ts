// Who is the active speaker: the loudest remote participant by audio energy,
// with some hysteresis so the choice does not flicker. Someone else takes
// over only after being the loudest speaker for `holdMs` (short pauses of
// theirs do not restart the count, a pause longer than `gapMs` does); when
// nobody speaks the last speaker stays. Pure logic, no DOM: the pop-out
// feeds it the energies the call's statistics give.

export interface SpeakerOptions {
  /** Energy (mean square amplitude per second) above which someone speaks. */
  threshold?: number;
  /** How long someone must be the loudest speaker before taking over. */
  holdMs?: number;
  /** A silence of the challenger longer than this restarts its count. */
  gapMs?: number;
}

export const DEFAULT_SPEAKER_OPTIONS: Required<SpeakerOptions> = { threshold: 0.0002, holdMs: 1000, gapMs: 1500 };

export class SpeakerSelector {
  /** The active speaker, or null before anyone spoke (or after they left). */
  current: string | null = null;
  private challenger: string | null = null;
  private since = 0;
  private heard = 0;
  private readonly opts: Required<SpeakerOptions>;

  constructor(options: SpeakerOptions = {}) {
    this.opts = { ...DEFAULT_SPEAKER_OPTIONS, ...options };
  }

  /** Takes the latest energy of each participant, at time `now` (ms); returns the active speaker. */
  update(levels: ReadonlyMap<string, number>, now: number): string | null {
    let loudest: string | null = null;
    let max = this.opts.threshold;
    for (const [id, energy] of levels) {
      if (energy > max) {
        max = energy;
        loudest = id;
      }
    }
    // Nobody speaks: keep whoever spoke last.
    if (loudest === null) return this.current;
    if (loudest === this.current) {
      this.challenger = null;
      return this.current;
    }
    if (this.current === null) {
      this.current = loudest;
      this.challenger = null;
      return this.current;
    }
    if (this.challenger !== loudest || now - this.heard > this.opts.gapMs) {
      this.challenger = loudest;
      this.since = now;
    }
    this.heard = now;
    if (now - this.since >= this.opts.holdMs) {
      this.current = loudest;
      this.challenger = null;
    }
    return this.current;
  }

  /** `id` left the call. */
  forget(id: string): void {
    if (this.current === id) this.current = null;
    if (this.challenger === id) this.challenger = null;
  }

  /** Makes `id` the active speaker at once (diagnostics and tests). */
  set(id: string | null): void {
    this.current = id;
    this.challenger = null;
  }
}

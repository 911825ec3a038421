// The SDK's one typed event emitter (ServerConnection, the mesh SDK, the
// window relay), for browsers, Electron renderers and Node alike: the event
// names and their argument tuples are a type, so a misspelt event or a
// listener of the wrong shape does not compile. Listeners run synchronously,
// in the order they were added; one that throws does not keep the others
// from running (its error is rethrown in a microtask, where it is seen).

export type Listener<Args extends unknown[]> = (...args: Args) => void;

type AnyListener = (...args: unknown[]) => void;

export class TypedEmitter<Events extends { [K in keyof Events]: unknown[] }> {
  /** Stored untyped; `on` and `emit` keep each event's listeners and arguments matched. */
  private readonly listeners = new Map<keyof Events, Set<AnyListener>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as unknown as AnyListener);
    return () => this.off(event, listener);
  }

  /** Adds a listener that runs at most once. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const off = this.on(event, (...args: Events[K]) => {
      off();
      listener(...args);
    });
    return off;
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.listeners.get(event)?.delete(listener as unknown as AnyListener);
  }

  /** How many listeners `event` has. */
  listenerCount<K extends keyof Events>(event: K): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /** Resolves with the arguments of the next `event`. */
  next<K extends keyof Events>(event: K): Promise<Events[K]> {
    return new Promise((resolve) => this.once(event, (...args: Events[K]) => resolve(args)));
  }

  protected emit<K extends keyof Events>(event: K, ...args: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const l of [...set]) {
      try {
        (l as unknown as Listener<Events[K]>)(...args);
      } catch (e) {
        // A listener's bug is the application's; report it without breaking the SDK's state.
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /** Drops every listener (the object is finished). */
  protected removeAllListeners(): void {
    this.listeners.clear();
  }
}

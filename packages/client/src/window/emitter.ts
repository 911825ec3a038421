// A small typed event emitter that runs in browsers, Electron renderers and
// Node alike: event names and their argument tuples are types, so a misspelt
// event or a wrong listener does not compile.

export type Listener<A extends unknown[]> = (...args: A) => void;

type AnyListener = (...args: unknown[]) => void;

export class TypedEmitter<E extends { [K in keyof E]: unknown[] }> {
  private readonly listeners = new Map<keyof E, Set<AnyListener>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as unknown as AnyListener);
    return () => this.off(event, listener);
  }

  /** Adds a listener called at most once; returns a function that removes it. */
  once<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    const wrapper: Listener<E[K]> = (...args) => {
      off();
      listener(...args);
    };
    const off = this.on(event, wrapper);
    return off;
  }

  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    this.listeners.get(event)?.delete(listener as unknown as AnyListener);
  }

  /** Calls every listener; one that throws does not stop the others (its error is rethrown in a later task). */
  protected emit<K extends keyof E>(event: K, ...args: E[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}

// A tiny typed listener registry: `on(name, listener)` returns the unsubscribe function, and a
// listener that throws is isolated from the component that emitted (its error is rethrown on a
// microtask, where it is reported but cannot break a call).

/** Subscribes to one event; returns the function that unsubscribes. */
export type Subscribe<Events> = <K extends keyof Events & string>(name: K, listener: (event: Events[K]) => void) => () => void;

export class Listeners<Events> {
  readonly #names: ReadonlySet<string>;
  readonly #owner: string;
  readonly #listeners = new Map<string, Set<(event: never) => void>>();

  constructor(owner: string, names: ReadonlyArray<keyof Events & string>) {
    this.#owner = owner;
    this.#names = new Set(names);
  }

  on<K extends keyof Events & string>(name: K, listener: (event: Events[K]) => void): () => void {
    if (!this.#names.has(name)) {
      throw new TypeError(`Cannot subscribe: "${name}" is not a ${this.#owner} event; known events: ${[...this.#names].join(", ")}`);
    }
    if (typeof listener !== "function") {
      throw new TypeError(`Cannot subscribe to "${name}": the listener must be a function, received ${typeof listener}`);
    }
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, set = new Set());
    const entry = listener as (event: never) => void;
    set.add(entry);
    return () => set!.delete(entry);
  }

  emit<K extends keyof Events & string>(name: K, event: Events[K]): void {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as (event: Events[K]) => void)(event);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

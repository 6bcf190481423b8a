/**
 * A spin budget that adapts: full while spinning catches replies, halved by each spin that ends
 * in a park, with a full-budget probe every `SPIN_PROBE_EVERY` failures.
 *
 * Spinning pays when the worker runs on another core. When the scheduler puts host and worker on
 * one core (it does, when they wake each other often), a spin only keeps the worker from running,
 * so every spin fails and parking at once is cheaper; the probes bring the full budget back once
 * replies arrive within it again.
 *
 * @module
 */

/** Failed spins between two full-budget probes. */
export const SPIN_PROBE_EVERY = 16;
/** Below this a spin cannot catch a worker's turnaround: parking at once is cheaper. */
export const SPIN_FLOOR_MS = 0.002;

/** The budget of the next spin, in milliseconds. */
export class AdaptiveSpin {
  /** The budget of the next spin, ms (0: park at once). */
  budgetMs: number;
  readonly #fullMs: number;
  #failures = 0;

  constructor(fullMs: number) {
    if (!(fullMs >= 0)) throw new RangeError(`A spin budget must be >= 0 ms, received ${fullMs}`);
    this.#fullMs = fullMs;
    this.budgetMs = fullMs;
  }

  /** A reply arrived while spinning: the spin paid. */
  caught(): void {
    this.budgetMs = this.#fullMs;
    this.#failures = 0;
  }

  /** The spin ran out and the lane parked. */
  parked(): void {
    this.#failures += 1;
    if (this.#failures % SPIN_PROBE_EVERY === 0) {
      this.budgetMs = this.#fullMs;
      return;
    }
    const half = this.budgetMs / 2;
    this.budgetMs = half >= SPIN_FLOOR_MS ? half : 0;
  }
}

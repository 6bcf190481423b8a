/**
 * A fixed-memory latency histogram with logarithmic buckets (about 5% relative error), cheap
 * enough to record every call.
 *
 * @module
 */

/** Smallest and largest values tracked, in milliseconds (1 µs to about 28 hours). */
const VALUE_MS_MIN = 0.001;
const VALUE_MS_MAX = 1e8;
/** Each bucket's upper bound is this much above the previous one's. */
const GROWTH = 1.1;
const BUCKETS = Math.ceil(Math.log(VALUE_MS_MAX / VALUE_MS_MIN) / Math.log(GROWTH)) + 1;

/** Quantiles of a histogram, in milliseconds. */
export interface Quantiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Records durations in milliseconds; reports quantiles. */
export class Histogram {
  readonly #counts = new Float64Array(BUCKETS);
  #count = 0;
  #max = 0;

  /** Adds one value (ms); values outside the range land in the first or last bucket. */
  record(valueMs: number): void {
    const clamped = Math.min(VALUE_MS_MAX, Math.max(VALUE_MS_MIN, valueMs));
    const index = Math.min(BUCKETS - 1, Math.ceil(Math.log(clamped / VALUE_MS_MIN) / Math.log(GROWTH)));
    this.#counts[index]! += 1;
    this.#count += 1;
    if (valueMs > this.#max) this.#max = valueMs;
  }

  /** The value below which a fraction `q` (0..1) of recorded values fall (a bucket upper bound). */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.#count));
    let seen = 0;
    for (let index = 0; index < BUCKETS; index++) {
      seen += this.#counts[index]!;
      if (seen >= rank) return Math.min(this.#max, VALUE_MS_MIN * GROWTH ** index);
    }
    return this.#max;
  }

  /** p50, p90, p99, max and the count. */
  summary(): Quantiles {
    return { count: this.#count, p50: this.quantile(0.5), p90: this.quantile(0.9), p99: this.quantile(0.99), max: this.#max };
  }
}

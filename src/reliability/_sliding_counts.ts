// Counts of named events over a sliding window, kept in a fixed ring of buckets: memory stays
// bounded whatever the event rate. An event leaves the window between (buckets - 1) / buckets and
// one whole window after it happened; more buckets make that edge sharper.

interface Slot<Name extends string> {
  /** Absolute bucket number (time / bucket length); a slot holding an older number is stale. */
  index: number;
  counts: Record<Name, number>;
}

export class SlidingCounts<Name extends string> {
  readonly #names: readonly Name[];
  readonly #bucketMs: number;
  readonly #slots: Array<Slot<Name>>;

  constructor(names: readonly Name[], windowMs: number, buckets: number) {
    this.#names = names;
    this.#bucketMs = windowMs / buckets;
    this.#slots = Array.from({ length: buckets }, () => this.#empty(-Infinity));
  }

  /** Counts `amount` events called `name` at time `now`. */
  add(name: Name, now: number, amount = 1): void {
    const index = Math.floor(now / this.#bucketMs);
    const position = ((index % this.#slots.length) + this.#slots.length) % this.#slots.length;
    if (this.#slots[position]!.index !== index) this.#slots[position] = this.#empty(index);
    this.#slots[position]!.counts[name] += amount;
  }

  /** Every name's count within the window ending at `now`. */
  totals(now: number): Record<Name, number> {
    const oldest = Math.floor(now / this.#bucketMs) - this.#slots.length;
    const totals = this.#empty(0).counts;
    for (const slot of this.#slots) {
      if (slot.index <= oldest) continue;
      for (const name of this.#names) totals[name] += slot.counts[name];
    }
    return totals;
  }

  #empty(index: number): Slot<Name> {
    return { index, counts: Object.fromEntries(this.#names.map((name) => [name, 0])) as Record<Name, number> };
  }
}

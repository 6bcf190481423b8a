/**
 * Arrow tables from tools: a table read from a shared-memory region views that region, which
 * stays mapped until `releaseTable(table)` (or until the table is garbage-collected).
 *
 * @module
 */
import { Table } from "apache-arrow";
import type { Region } from "../../ffi/region.ts";

const regions = new WeakMap<Table, Region>();
const collected = new FinalizationRegistry<Region>((region) => {
  if (!region.closed) region.close();
});

/** Whether `value` is an apache-arrow `Table`. */
export function isArrowTable(value: unknown): value is Table {
  return value instanceof Table;
}

/** @internal Ties `region`'s lifetime to `table`'s. */
export function adoptTable(table: Table, region: Region): Table {
  regions.set(table, region);
  collected.register(table, region, table);
  return table;
}

/**
 * Lets go of the shared memory behind a table a tool returned (unlinked when no process holds
 * it). The table's vectors must not be used afterwards: their buffers are detached, so they read
 * as empty instead of reading freed memory. A table not backed by shared memory is left as is.
 * Returns whether a region was released.
 *
 * @example
 * ```ts
 * import { tableFromArrays } from "apache-arrow";
 * import { releaseTable } from "@snakepit/snakepit";
 * console.log(releaseTable(tableFromArrays({ x: new Float64Array([1, 2]) }))); // false
 * ```
 */
export function releaseTable(table: Table): boolean {
  const region = regions.get(table);
  if (region === undefined) return false;
  regions.delete(table);
  collected.unregister(table);
  const open = !region.closed;
  if (open) region.close();
  return open;
}

/** Whether `table` views shared memory (a large table returned by a tool). */
export function isSharedTable(table: Table): boolean {
  const region = regions.get(table);
  return region !== undefined && !region.closed;
}

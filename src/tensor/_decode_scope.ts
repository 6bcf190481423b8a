/**
 * The decoding side of shared values: while one payload decodes, its scope checks each region
 * reference against the call's token, opens and adopts the region, and releases everything it
 * opened if decoding fails.
 *
 * @module
 */
import { type Table, tableFromIPC } from "apache-arrow";
import { Region } from "../../ffi/region.ts";
import { decodeDescriptor } from "../../ffi/tensor_descriptor.ts";
import { SharedMemoryError } from "../../ffi/shared_memory_error.ts";
import { RegionAccessError } from "../errors/region_errors.ts";
import { SerializationError } from "../errors/pool_errors.ts";
import { contiguousStrides, isTensorDtype } from "./dtypes.ts";
import { SharedTensor } from "./tensor.ts";
import { regionToken, type TokenRole, tokenMatches } from "./_token.ts";
import { adoptTable } from "./arrow.ts";
import type { CallTransfer } from "./_wire.ts";

let decodeScope: DecodeScope | undefined;

/** The scope of the payload decoding now, if any. */
export function currentDecodeScope(): DecodeScope | undefined {
  return decodeScope;
}

/**
 * Decodes one payload with `transfer` in scope: shared-memory values are checked against the
 * token for `role`, opened and adopted. If decoding fails, whatever it opened is released.
 */
export function withDecodeScope<T>(transfer: CallTransfer | undefined, role: TokenRole, decode: () => T): T {
  if (transfer === undefined) return decode();
  const previous = decodeScope;
  const current = new DecodeScope(transfer, role);
  decodeScope = current;
  try {
    return decode();
  } catch (error) {
    current.abandon();
    throw error;
  } finally {
    decodeScope = previous;
  }
}

export class DecodeScope {
  readonly #opened: Array<{ release(): void }> = [];
  constructor(readonly transfer: CallTransfer, readonly role: TokenRole) {}

  sharedTensor(body: unknown): SharedTensor {
    const { region, descriptor, generation } = this.#open(body, "tensor");
    const decoded = decodeDescriptor(descriptor);
    if (!isTensorDtype(decoded.dtype)) {
      region.close();
      throw new RegionAccessError(`Tensor in region ${region.name} has dtype ${decoded.dtype}, which this host cannot view`, { reason: "descriptor_invalid", regionName: region.name });
    }
    const span = this.#check(region, descriptor, generation);
    const tensor = new SharedTensor(
      region,
      true,
      decoded.dtype,
      decoded.shape,
      decoded.strides ?? contiguousStrides(decoded.shape),
      { byteOffset: decoded.byteOffset ?? 0, firstByte: span.firstByte, endByte: Math.max(span.endByte, span.firstByte) },
      // The descriptor's IS_COPIED says the worker copied an array into the region (DLPack's
      // meaning); `isCopied` on the host means the value did not travel by shared memory.
      {},
      generation,
    );
    this.#opened.push(tensor);
    this.transfer.note("shared", tensor.byteLength);
    return tensor;
  }

  sharedArrow(body: unknown): Table {
    const { region, descriptor, generation } = this.#open(body, "table");
    const span = this.#check(region, descriptor, generation);
    const bytes = region.view(Uint8Array, span.firstByte, span.endByte - span.firstByte);
    let table: Table;
    try {
      table = tableFromIPC(bytes);
    } catch (cause) {
      region.close();
      throw new SerializationError(`Cannot read the Arrow table in region ${region.name}: ${(cause as Error).message}`, { cause });
    }
    this.#opened.push({ release: () => region.close() });
    this.transfer.note("shared", bytes.byteLength);
    return adoptTable(table, region);
  }

  abandon(): void {
    for (const held of this.#opened.splice(0)) held.release();
  }

  #open(body: unknown, what: string): { region: Region; descriptor: Uint8Array; generation: number } {
    const [name, generation, descriptor, token] = Array.isArray(body) ? body : [];
    if (typeof name !== "string" || !Number.isSafeInteger(generation) || !(descriptor instanceof Uint8Array)) {
      throw new RegionAccessError(`A shared-memory ${what} reference is malformed`, { reason: "descriptor_invalid" });
    }
    const plane = this.transfer.plane;
    const expected = regionToken(plane.secret, this.role, this.transfer.requestId, name, generation, descriptor);
    if (!tokenMatches(token, expected)) {
      throw new RegionAccessError(
        `Refused region ${name}: its token was not issued for this call (forged, replayed or tampered)`,
        { reason: "token_invalid", regionName: name },
      );
    }
    if (plane.library === undefined) {
      throw new RegionAccessError(`Cannot map region ${name}: the native library is not loaded`, { reason: "zero_copy_disabled", regionName: name });
    }
    let region: Region;
    try {
      region = Region.open(plane.library, name, { generation });
    } catch (cause) {
      throw new RegionAccessError(`Cannot open region ${name} (${(cause as Error).message})`, { reason: "region_unavailable", regionName: name, cause });
    }
    let adopted: number;
    try {
      // Adoption: the new generation tells the worker it may let go, and makes its descriptor stale.
      adopted = this.role === "result" ? region.bumpGeneration() : generation;
    } catch (cause) {
      region.close();
      throw cause;
    }
    return { region, descriptor, generation: adopted };
  }

  /** Proves the descriptor fits `region` at `generation` (where adoption just moved it). */
  #check(region: Region, descriptor: Uint8Array, generation: number): { firstByte: number; endByte: number } {
    try {
      return region.checkDescriptor(withGeneration(descriptor, generation));
    } catch (cause) {
      region.close();
      const reason = cause instanceof SharedMemoryError && /generation/.test(cause.message) ? "region_unavailable" : "descriptor_invalid";
      throw new RegionAccessError(`Refused the descriptor for region ${region.name}: ${(cause as Error).message}`, { reason, regionName: region.name, cause });
    }
  }
}

function withGeneration(descriptor: Uint8Array, generation: number): Uint8Array {
  const copy = descriptor.slice();
  new DataView(copy.buffer).setBigUint64(48, BigInt(generation), true);
  return copy;
}


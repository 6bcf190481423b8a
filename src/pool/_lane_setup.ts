/**
 * The pool's side of a worker's fast lane: creates the lane region before the worker starts,
 * and turns it into a `FastLaneTransport` once the worker has mapped it.
 *
 * @module
 */
import type { NativeLibrary } from "../../ffi/native_library.ts";
import { Region, unlinkRegion } from "../../ffi/mod.ts";
import type { WorkerTransport } from "../bridge/transport.ts";
import { FastLaneTransport } from "../bridge/lane/lane_transport.ts";
import { LaneLayout, type LaneProtocolError, laneRegionBytes } from "../bridge/lane/ring.ts";
import type { ResolvedPoolOptions } from "./options.ts";
import type { LaneRequest, WorkerHandle } from "./_worker_handle.ts";

/**
 * How new workers of a pool are reached: the fast lane's settings, or undefined for gRPC only
 * (`transport: "grpc"`, or no native library).
 */
export function laneRequestFor(
  options: ResolvedPoolOptions,
  library: NativeLibrary | undefined,
  onBroken: (worker: WorkerHandle) => void,
): LaneRequest | undefined {
  if (options.transport === "grpc" || !library) return undefined;
  return {
    library,
    mode: options.transport,
    spinUs: options.laneSpinUs,
    pipelineDepth: options.pipelineDepth,
    onBroken,
  };
}

/** A lane region created for a worker that has not attached yet. */
export class PendingLane {
  readonly #library: NativeLibrary;
  readonly #region: Region;
  readonly #instance: string;
  readonly #layout: LaneLayout;
  #handedOver = false;

  constructor(library: NativeLibrary, instance: string) {
    this.#library = library;
    this.#instance = instance;
    this.#region = Region.create(library, { payloadBytes: laneRegionBytes(), instance });
    try {
      this.#layout = LaneLayout.initialize(this.#region.bytes());
    } catch (error) {
      this.#region.close();
      throw error;
    }
  }

  /** The region's name, for the worker's command line. */
  get name(): string {
    return this.#region.name;
  }

  /**
   * The worker mapped the lane: unlink its name (both processes hold mappings; nothing is left
   * in /dev/shm whoever dies first) and build the transport.
   */
  attach(
    control: WorkerTransport,
    spinUs: number,
    onBroken: (error: LaneProtocolError) => void,
  ): FastLaneTransport {
    this.#handedOver = true;
    unlinkRegion(this.#library, this.#region.name);
    const library = this.#library;
    const region = this.#region;
    const instance = this.#instance;
    return new FastLaneTransport({
      layout: this.#layout,
      wakeWord: (offset) => region.wakeWord(offset),
      spill: (frame) => {
        const spilled = Region.create(library, { payloadBytes: frame.byteLength, instance });
        spilled.bytes().set(frame);
        return { name: spilled.name, free: () => spilled.close() };
      },
      readSpill: (name, bytes) => {
        const spilled = Region.open(library, name);
        try {
          if (bytes > spilled.payloadBytes) {
            throw new RangeError(`spill region ${name} holds ${spilled.payloadBytes} bytes, the frame claims ${bytes}`);
          }
          const copy = spilled.bytes().slice(0, bytes);
          unlinkRegion(library, name);
          return copy;
        } finally {
          spilled.close();
        }
      },
      control,
      spinUs,
      release: () => region.close(),
      onBroken,
    });
  }

  /** Frees the region when the worker never attached (start-up failed, or gRPC was chosen). */
  discard(): void {
    if (!this.#handedOver) this.#region.close();
  }
}

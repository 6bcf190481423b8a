/**
 * What a fast lane needs from the native library and the worker's control channel.
 *
 * @module
 */
import type { WorkerTransport } from "../transport.ts";
import type { LaneLayout, LaneProtocolError } from "./ring.ts";

/** What the lane needs from the native library and the worker's control channel. */
export interface LaneEnvironment {
  /** The initialized lane region's payload. */
  layout: LaneLayout;
  /** Wakes every waiter parked on the lane word at `offset` (a futex wake). */
  wakeWord(offset: number): void;
  /** Puts `frame` in a region of its own; returns its name and the function that frees it. */
  spill(frame: Uint8Array): { name: string; free: () => void };
  /** Reads (a copy of) the first `bytes` of region `name` and unlinks it. */
  readSpill(name: string, bytes: number): Uint8Array;
  /** The gRPC transport of the same worker (ping, describe, out-of-band cancel). */
  control: WorkerTransport;
  /** Host spin budget before parking, in microseconds. */
  spinUs: number;
  /** Frees the lane region (after the transport is closed). */
  release(): void;
  /** Called once when the lane breaks the protocol: the worker must be replaced. */
  onBroken(error: LaneProtocolError): void;
}

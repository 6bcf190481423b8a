/**
 * The pool's share of the zero-copy data plane: its token secret, the threshold, whether its
 * workers can map regions (capability negotiation), and the tensors it allocates.
 *
 * @module
 */
import process from "node:process";
import type { NativeLibrary } from "../../ffi/native_library.ts";
import type { WorkerDescription } from "../bridge/transport.ts";
import type { TensorDtype } from "../tensor/dtypes.ts";
import { SharedTensor, Tensor, type TensorFromOptions } from "../tensor/tensor.ts";
import { CallTransfer, type TensorPlane } from "../tensor/_wire.ts";
import { newRegionSecret } from "../tensor/_token.ts";
import type { ResolvedPoolOptions } from "./options.ts";

let warned = false;

/** One pool's tensor settings, shared by every call it makes. */
export class PoolTensors {
  readonly plane: TensorPlane;
  #reason: string | undefined;

  constructor(readonly options: ResolvedPoolOptions) {
    this.plane = {
      library: undefined,
      secret: newRegionSecret(),
      thresholdBytes: options.zeroCopyThresholdBytes,
      zeroCopy: false,
      instance: options.instance,
      chunkedCopyThresholdBytes: options.chunkedCopyThresholdBytes,
    };
    this.#reason = options.zeroCopy === "off" ? 'zeroCopy is "off"' : "the native library is not loaded";
  }

  /** Why values are copied instead of shared, or undefined when they are shared. */
  get copyReason(): string | undefined {
    return this.#reason;
  }

  /** Uses `library` for regions (called once the pool opened it). */
  attach(library: NativeLibrary | undefined): void {
    this.plane.library = library;
    if (library !== undefined && this.options.zeroCopy === "auto") {
      this.plane.zeroCopy = true;
      this.#reason = undefined;
    }
  }

  /** What a worker needs to check and create regions: the secret, the switch, the threshold. */
  workerEnv(): Record<string, string> {
    return {
      SNAKEPIT_REGION_SECRET: Buffer.from(this.plane.secret).toString("hex"),
      SNAKEPIT_ZERO_COPY: this.plane.zeroCopy ? "1" : "0",
      SNAKEPIT_ZERO_COPY_THRESHOLD: String(this.plane.thresholdBytes),
      SNAKEPIT_CHUNKED_COPY_THRESHOLD: String(this.plane.chunkedCopyThresholdBytes),
    };
  }

  /**
   * Capability negotiation: when a worker reports that it cannot map regions, the pool copies
   * every value from then on, and warns once with the reason.
   */
  negotiate(workers: Iterable<{ description: WorkerDescription; id: string }>): void {
    if (this.options.zeroCopy === "off") return;
    if (this.plane.zeroCopy) {
      for (const worker of workers) {
        if (!worker.description.capabilities.zeroCopy) {
          this.plane.zeroCopy = false;
          this.#reason = `worker ${worker.id} cannot map shared memory (no native library, or /dev/shm unusable there)`;
          break;
        }
      }
    }
    if (!this.plane.zeroCopy && !warned) {
      warned = true;
      process.emitWarning(
        `Snakepit: tensors and tables are copied over the transport instead of shared (${this.#reason}); results are marked isCopied.`,
        { code: "SNAKEPIT_ZERO_COPY_UNAVAILABLE" },
      );
    }
  }

  /** A new per-call transfer. */
  transfer(requestId: string): CallTransfer {
    return new CallTransfer(this.plane, requestId);
  }

  /** A zero-filled tensor: in shared memory when this pool shares, else in this process. */
  tensor(shape: readonly number[], dtype: TensorDtype): Tensor {
    return this.plane.zeroCopy
      ? SharedTensor.allocate(this.plane.library, shape, dtype, { instance: this.plane.instance })
      : Tensor.zeros(shape, dtype);
  }

  /** A tensor holding a copy of `data`: in shared memory when this pool shares, else in this process. */
  tensorFrom(data: ArrayBufferView, options: TensorFromOptions = {}): Tensor {
    if (this.plane.zeroCopy) {
      return SharedTensor.fromArray(this.plane.library, data, { ...options, instance: this.plane.instance });
    }
    const copy = new Uint8Array(data.byteLength);
    copy.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    return Tensor.from(new (data.constructor as new (buffer: ArrayBuffer) => ArrayBufferView)(copy.buffer), options);
  }
}

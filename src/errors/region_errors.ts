/**
 * Refused access to a shared-memory region named in a call: the token does not match, the region
 * is gone or stale, or its descriptor does not fit. Raised on whichever side received the value.
 *
 * @module
 */
import { GrpcStatus, SnakepitError, type SnakepitErrorOptions } from "./snakepit_error.ts";

/** Why a region named in a call was refused. */
export type RegionAccessReason =
  /** The token is not the one this pool issued for this call (forged, replayed or tampered). */
  | "token_invalid"
  /** A shared-memory value reached a side that cannot map regions (zero-copy is off there). */
  | "zero_copy_disabled"
  /** The region is gone, released, or at another generation (a stale descriptor). */
  | "region_unavailable"
  /** The descriptor does not fit the region (out of bounds, bad dtype, misaligned). */
  | "descriptor_invalid";

const REASONS: readonly RegionAccessReason[] = [
  "token_invalid",
  "zero_copy_disabled",
  "region_unavailable",
  "descriptor_invalid",
];

/** Options of {@link RegionAccessError}. */
export interface RegionAccessErrorOptions extends SnakepitErrorOptions {
  reason: RegionAccessReason;
  /** The region concerned, when known. */
  regionName?: string;
}

/**
 * A region named in a call's arguments or result was refused before any view of it was built.
 *
 * @example
 * ```ts
 * import { RegionAccessError } from "@snakepit/snakepit";
 * const error = new RegionAccessError("token does not match", { reason: "token_invalid" });
 * console.log(error.code, error.reason, error.retryable); // region_access token_invalid false
 * ```
 */
export class RegionAccessError extends SnakepitError {
  readonly code = "region_access" as const;
  readonly retryable = false;
  readonly grpcStatus: number = GrpcStatus.PERMISSION_DENIED;
  readonly reason: RegionAccessReason;
  readonly regionName: string | undefined;
  constructor(message: string, options: RegionAccessErrorOptions) {
    super(message, options);
    this.reason = options.reason;
    this.regionName = options.regionName;
  }

  /** The reason named by a worker's error details, or `descriptor_invalid` when unknown. */
  static reasonFrom(value: unknown): RegionAccessReason {
    return REASONS.includes(value as RegionAccessReason) ? value as RegionAccessReason : "descriptor_invalid";
  }

  protected override details(): Record<string, unknown> {
    return { reason: this.reason, regionName: this.regionName };
  }
}

/**
 * Region tokens: an HMAC-SHA256, keyed by a per-pool secret that only the pool and its workers
 * hold, over what a value in a call may open: the direction, the request id, the region's name
 * and generation, and the descriptor's bytes. A worker refuses any region its request does not
 * carry a token for, so a forged descriptor, or one replayed from another call or session, is
 * refused before the region is opened. (`python/src/snakepit_bridge/tensors.py` is the twin.)
 *
 * @module
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Bytes of a pool secret and of a token. */
export const TOKEN_BYTES = 32;
const DOMAIN = "snakepit-region-v1\0";

/** Which way a value travels. */
export type TokenRole = "arg" | "result";

/** A new random pool secret. */
export function newRegionSecret(): Uint8Array {
  return new Uint8Array(randomBytes(TOKEN_BYTES));
}

/** The token for one region reference in one call. */
export function regionToken(
  secret: Uint8Array,
  role: TokenRole,
  requestId: string,
  name: string,
  generation: number,
  descriptor: Uint8Array,
): Uint8Array {
  const mac = createHmac("sha256", secret);
  mac.update(`${DOMAIN}${role}\0${requestId}\0${name}\0${generation}\0`);
  mac.update(descriptor);
  return new Uint8Array(mac.digest());
}

/** Constant-time comparison of a received token with the expected one. */
export function tokenMatches(received: unknown, expected: Uint8Array): boolean {
  return received instanceof Uint8Array && received.byteLength === expected.byteLength &&
    timingSafeEqual(received, expected);
}

import { test } from "node:test";
import assert from "node:assert/strict";
import { AdaptiveSpin, SPIN_FLOOR_MS, SPIN_PROBE_EVERY } from "../src/bridge/lane/_adaptive_spin.ts";

test("a lane's spin budget halves with each spin that parks, down to parking at once", () => {
  const spin = new AdaptiveSpin(0.05);
  assert.equal(spin.budgetMs, 0.05);
  spin.parked();
  assert.equal(spin.budgetMs, 0.025);
  for (let failure = 2; failure < SPIN_PROBE_EVERY - 1; failure++) spin.parked();
  assert.equal(spin.budgetMs, 0, `below ${SPIN_FLOOR_MS} ms a spin is not worth it`);
});

test("a lane's spin budget comes back in full when a spin catches a reply, or for a probe", () => {
  const spin = new AdaptiveSpin(0.05);
  for (let failure = 1; failure < SPIN_PROBE_EVERY; failure++) spin.parked();
  assert.equal(spin.budgetMs, 0);
  spin.parked();
  assert.equal(spin.budgetMs, 0.05, `every ${SPIN_PROBE_EVERY}th failure probes with the full budget`);
  spin.parked();
  spin.caught();
  assert.equal(spin.budgetMs, 0.05);
});

test("a spin budget of zero stays zero, and a negative one is refused", () => {
  const spin = new AdaptiveSpin(0);
  spin.parked();
  spin.caught();
  assert.equal(spin.budgetMs, 0);
  assert.throws(() => new AdaptiveSpin(-1), RangeError);
});

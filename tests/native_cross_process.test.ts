/**
 * Shared memory across processes: TypeScript (this runtime) and Python peers map the same
 * regions, count references on them, and contend for their locks.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { openNativeLibrary, reapRegions, Region } from "../ffi/mod.ts";
import {
  pseudoRandomBytes,
  regionExists,
  startPeer,
  toHex,
  uniqueInstance,
} from "./_native_helpers.ts";

test("bytes TypeScript writes into a region are the bytes Python reads from it", async () => {
  const library = await openNativeLibrary();
  const region = Region.create(library, {
    payloadBytes: 64 * 1024,
    instance: uniqueInstance("tsw"),
  });
  try {
    const data = pseudoRandomBytes(64 * 1024, 0xfeed);
    region.bytes().set(data);
    const peer = startPeer(["read", region.name, String(data.byteLength)]);
    assert.equal(await peer.nextLine(), toHex(data));
    assert.deepEqual(await peer.exited(), { code: 0, signal: null });
  } finally {
    region.close();
    library.close();
  }
  assert.equal(regionExists(region.name), false, "the last close unlinked the region");
});

test("bytes Python writes into a region it created are the bytes TypeScript reads", async () => {
  const library = await openNativeLibrary();
  const data = pseudoRandomBytes(4096, 0xbeef);
  const peer = startPeer(["create", uniqueInstance("pyw"), "8192", toHex(data)]);
  let name = "";
  try {
    name = await peer.nextLine();
    using region = Region.open(library, name);
    assert.equal(region.payloadBytes, 8192);
    assert.deepEqual(region.bytes().subarray(0, 4096), data);
    region.bytes()[5000] = 7;
    const reader = startPeer(["read", name, "5001"]);
    assert.equal((await reader.nextLine()).slice(-2), "07");
    assert.equal((await reader.exited()).code, 0);
  } finally {
    peer.finish();
    assert.equal((await peer.exited()).code, 0);
    library.close();
  }
  assert.equal(regionExists(name), false, "the last holder's close unlinked it");
});

test("8 processes retaining and releasing 1000 times each leave the count at exactly zero", async () => {
  const library = await openNativeLibrary();
  const region = Region.create(library, { payloadBytes: 4096, instance: uniqueInstance("churn") });
  try {
    const peers = Array.from({ length: 8 }, () => startPeer(["churn", region.name, "1000"]));
    for (const peer of peers) assert.equal(await peer.nextLine(), "churned", peer.stderr());
    for (const peer of peers) assert.deepEqual(await peer.exited(), { code: 0, signal: null });
    const info = region.info();
    assert.equal(info.referenceCount, 1, "only this Region's reference is left");
    assert.equal(info.holders, 1);
    assert.equal(region.release(), true, "the last release unlinks");
    assert.equal(region.info().referenceCount, 0);
    assert.equal(regionExists(region.name), false);
  } finally {
    region.close();
    library.close();
  }
});

test("a Python holder SIGKILLed while holding the exclusive lock is recovered with ownerDied", async () => {
  const library = await openNativeLibrary();
  const region = Region.create(library, { payloadBytes: 4096, instance: uniqueInstance("kill") });
  try {
    const peer = startPeer(["hold", region.name, "exclusive", "forever"]);
    assert.equal(await peer.nextLine(), "held", peer.stderr());
    assert.equal(region.tryLockShared(), undefined, "the peer holds it");
    const killedAt = performance.now();
    peer.child.kill("SIGKILL");
    const lock = await region.lockExclusive({ timeoutMs: 5000 });
    const recoveryMs = performance.now() - killedAt;
    assert.equal(lock.ownerDied, true);
    assert.ok(recoveryMs < 1000, `recovered within the bound (took ${recoveryMs.toFixed(1)} ms)`);
    assert.equal(region.info().lockOwnerDeaths, 1);
    assert.equal(region.info().ownerDied, true);
    lock.release();
    const again = region.tryLockExclusive();
    assert.equal(again?.ownerDied, false, "the next acquisition is clean");
    again?.release();
    assert.equal((await peer.exited()).signal, "SIGKILL");
    region.close();
    assert.equal(regionExists(region.name), true, "the dead peer's reference still counts");
    const report = reapRegions(library, { instance: region.name.split("-")[1], graceMs: 0 });
    assert.deepEqual([report.reaped, report.sparedLive], [1, 0]);
    assert.equal(regionExists(region.name), false, "the reaper removed it");
  } finally {
    region.close();
    library.close();
  }
});

test("the reaper removes a dead process's regions and spares a live process's", async () => {
  const library = await openNativeLibrary();
  const instance = uniqueInstance("reap");
  const doomed = startPeer(["create", instance, "4096", "aa", "forever"]);
  const living = startPeer(["create", instance, "4096", "bb"]);
  try {
    const doomedName = await doomed.nextLine();
    const livingName = await living.nextLine();
    doomed.child.kill("SIGKILL");
    assert.equal((await doomed.exited()).signal, "SIGKILL");
    assert.equal(regionExists(doomedName), true, "a SIGKILLed creator leaves its region behind");
    const report = reapRegions(library, { instance, graceMs: 0 });
    assert.deepEqual(
      { scanned: report.scanned, reaped: report.reaped, sparedLive: report.sparedLive },
      { scanned: 2, reaped: 1, sparedLive: 1 },
    );
    assert.equal(regionExists(doomedName), false);
    assert.equal(regionExists(livingName), true);
    // Across every instance, a region with a live holder is never touched.
    assert.ok(reapRegions(library).sparedLive >= 1);
    assert.equal(regionExists(livingName), true);
  } finally {
    living.finish();
    assert.equal((await living.exited()).code, 0);
    library.close();
  }
});

test("a writer is not starved by Python readers that keep the shared lock busy", async () => {
  const library = await openNativeLibrary();
  const region = Region.create(library, { payloadBytes: 4096, instance: uniqueInstance("starve") });
  const readers = Array.from({ length: 3 }, () => startPeer(["reader", region.name, "2", "2"]));
  try {
    for (const reader of readers) assert.equal(await reader.nextLine(), "ready", reader.stderr());
    const block = region.bytes().subarray(0, 4096);
    const waitsMs: number[] = [];
    for (const waitStrategy of ["auto", "poll"] as const) {
      for (let round = 1; round <= 10; round += 1) {
        const start = performance.now();
        const lock = await region.lockExclusive({ timeoutMs: 2000, waitStrategy });
        waitsMs.push(performance.now() - start);
        block.fill(round);
        lock.release();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    const slowest = Math.max(...waitsMs);
    // Without writer preference the writer would wait for the readers to stop (2 s).
    assert.ok(
      slowest < 1000,
      `every exclusive acquisition was quick (slowest ${slowest.toFixed(1)} ms)`,
    );
    for (const reader of readers) {
      const result = JSON.parse(await reader.nextLine()) as { reads: number; torn: number };
      assert.ok(result.reads > 20, `the reader kept reading (${result.reads} reads)`);
      assert.equal(result.torn, 0, "no reader ever saw a half-written block");
      assert.equal((await reader.exited()).code, 0);
    }
  } finally {
    for (const reader of readers) reader.child.kill("SIGKILL");
    for (const reader of readers) await reader.exited();
    region.close();
    // Readers killed by a failed assertion leave their references: the reaper takes them.
    reapRegions(library, { instance: region.name.split("-")[1], graceMs: 0 });
    library.close();
  }
});

/**
 * Specification of a region's RW lock from TypeScript: try-locks, timed and abortable waits that
 * never freeze the event loop (Deno: a worker-thread wait; Bun: polling), and lock guards.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { type LockOptions, openNativeLibrary, Region, SharedMemoryError } from "../ffi/mod.ts";
import { uniqueInstance } from "./_native_helpers.ts";

async function withRegions(
  body: (first: Region, second: Region) => Promise<void> | void,
): Promise<void> {
  const library = await openNativeLibrary();
  const first = Region.create(library, { payloadBytes: 64, instance: uniqueInstance("lock") });
  const second = Region.open(library, first.name);
  try {
    await body(first, second);
  } finally {
    second.close();
    first.close();
    library.close();
  }
}

const strategies: LockOptions["waitStrategy"][] = ["auto", "poll"];

test("shared locks coexist; an exclusive lock excludes both modes until released", () =>
  withRegions((first, second) => {
    const shared = first.tryLockShared();
    const alsoShared = second.tryLockShared();
    assert.ok(shared && alsoShared);
    assert.equal(second.tryLockExclusive(), undefined);
    shared.release();
    alsoShared.release();
    {
      using exclusive = first.tryLockExclusive();
      assert.ok(exclusive);
      assert.equal(exclusive.mode, "exclusive");
      assert.equal(exclusive.ownerDied, false);
      assert.equal(second.tryLockShared(), undefined);
      assert.equal(second.tryLockExclusive(), undefined);
      assert.equal(first.info().exclusiveLockHeld, true);
    }
    const again = second.tryLockExclusive();
    assert.ok(again, "`using` released it");
    again.release();
    again.release();
    assert.equal(again.released, true);
  }));

for (const waitStrategy of strategies) {
  test(`a wait (${waitStrategy}) keeps the event loop running and ends soon after the release`, () =>
    withRegions(async (first, second) => {
      const held = first.tryLockExclusive()!;
      let ticks = 0;
      const ticker = setInterval(() => (ticks += 1), 1);
      let releasedAt = 0;
      setTimeout(() => {
        releasedAt = performance.now();
        held.release();
      }, 100);
      try {
        const lock = await second.lockShared({ timeoutMs: 5000, waitStrategy });
        const lateMs = performance.now() - releasedAt;
        assert.ok(ticks >= 10, `timers kept firing during the wait (${ticks} ticks)`);
        assert.ok(lateMs < 200, `acquired ${lateMs.toFixed(2)} ms after the release`);
        lock.release();
      } finally {
        clearInterval(ticker);
      }
    }));

  test(`a wait (${waitStrategy}) past its timeout rejects with timed_out`, () =>
    withRegions(async (first, second) => {
      const held = first.tryLockShared()!;
      const start = performance.now();
      await assert.rejects(
        second.lockExclusive({ timeoutMs: 60, waitStrategy }),
        (error: unknown) => {
          assert.ok(error instanceof SharedMemoryError);
          assert.equal(error.statusName, "timed_out");
          assert.match(
            error.message,
            /^Cannot lockExclusive region \/snakepit-.*: the lock was not free before the deadline \[timed_out\]/,
          );
          return true;
        },
      );
      assert.ok(performance.now() - start >= 55);
      const reader = first.tryLockShared();
      assert.ok(reader, "a timed-out writer left no claim behind");
      reader.release();
      held.release();
    }));

  test(`an aborted wait (${waitStrategy}) rejects with the signal's reason and holds nothing`, () =>
    withRegions(async (first, second) => {
      const held = first.tryLockExclusive()!;
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error("no longer needed")), 20);
      await assert.rejects(
        second.lockExclusive({ signal: controller.signal, waitStrategy }),
        { message: "no longer needed" },
      );
      held.release();
      const after = first.tryLockExclusive();
      assert.ok(after, "the aborted waiter holds no lock and no claim");
      after.release();
    }));
}

test("an already aborted signal rejects before touching the lock", () =>
  withRegions(async (first) => {
    const controller = new AbortController();
    controller.abort(new Error("stop"));
    await assert.rejects(first.lockShared({ signal: controller.signal }), { message: "stop" });
    assert.equal(first.info().sharedLocksHeld, 0);
  }));

test("timeoutMs 0 on a busy lock rejects at once; on a free lock it succeeds", () =>
  withRegions(async (first, second) => {
    const lock = await first.lockExclusive({ timeoutMs: 0 });
    await assert.rejects(second.lockShared({ timeoutMs: 0 }), { statusName: "timed_out" });
    lock.release();
  }));

test("closing a Region during its wait rejects the wait with a closed error", () =>
  withRegions(async (first, second) => {
    const held = first.tryLockExclusive()!;
    const waiting = second.lockShared({ timeoutMs: 5000 });
    setTimeout(() => second.close(), 20);
    await assert.rejects(waiting, { name: "SharedMemoryError", statusName: "closed" });
    held.release();
  }));

test("closing a Region releases its locks; its guards become no-ops", () =>
  withRegions(async (first, second) => {
    const library = await openNativeLibrary();
    const third = Region.open(library, first.name);
    const lock = third.tryLockExclusive()!;
    third.close();
    lock.release();
    const freed = second.tryLockExclusive();
    assert.ok(freed, "closing gave the lock back");
    freed.release();
    library.close();
  }));

test("bad lock options throw TypeError or RangeError", () =>
  withRegions(async (first) => {
    await assert.rejects(first.lockShared({ timeoutMs: -1 }), {
      name: "RangeError",
      message: "Cannot lockShared: options.timeoutMs must be a number >= 0, received -1",
    });
    await assert.rejects(first.lockShared({ signal: "x" as never }), TypeError);
    await assert.rejects(first.lockShared({ waitStrategy: "spin" as never }), RangeError);
  }));

test("closing the library during a wait ends the wait with a closed error, then unloads", async () => {
  const library = await openNativeLibrary();
  const holder = Region.create(library, { payloadBytes: 64, instance: uniqueInstance("unload") });
  const waiter = Region.open(library, holder.name);
  const held = holder.tryLockExclusive()!;
  const waiting = waiter.lockShared({ timeoutMs: 5000 });
  setTimeout(() => library.close(), 20);
  await assert.rejects(waiting, { name: "SharedMemoryError", statusName: "closed" });
  assert.equal(holder.closed && waiter.closed, true);
  held.release();
  assert.throws(() => library.abiVersion(), { statusName: "closed" });
});

/**
 * Specification of Region (ffi/region.ts): creating, opening, viewing and closing shared-memory
 * regions, reference counts, and the errors each failure raises.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { NativeError } from "../src/errors/mod.ts";
import {
  NativeLibraryError,
  openNativeLibrary,
  Region,
  REGION_PAYLOAD_BYTES_MAX,
  SharedMemoryError,
} from "../ffi/mod.ts";
import { regionExists, uniqueInstance } from "./_native_helpers.ts";

const MISSING = "/snakepit-nobody-0123456789abcdef0123456789abcdef";

test("a created region is zeroed, named by its instance, mode 0600, and shared with an opener", async () => {
  const library = await openNativeLibrary();
  const instance = uniqueInstance("create");
  try {
    using region = Region.create(library, { payloadBytes: 10_000, instance });
    assert.match(region.name, new RegExp(`^/snakepit-${instance}-[0-9a-f]{32}$`));
    assert.equal(region.payloadBytes, 10_000);
    assert.ok(region.bytes().every((byte) => byte === 0));
    const { statSync } = await import("node:fs");
    assert.equal(statSync(`/dev/shm${region.name}`).mode & 0o777, 0o600);
    region.view(Uint32Array, 8, 2).set([0xdeadbeef, 7]);
    using opened = Region.open(library, region.name);
    assert.deepEqual([...opened.view(Uint32Array, 8, 2)], [0xdeadbeef, 7]);
    const info = opened.info();
    assert.equal(info.referenceCount, 2);
    assert.equal(info.referencesHeld, 1);
    assert.equal(info.payloadOffset % 256, 0);
    assert.equal(info.generation, 1);
    assert.ok(Math.abs(info.createdAt.getTime() - Date.now()) < 60_000);
  } finally {
    library.close();
  }
});

test("close detaches every view, and later calls throw a closed error without native calls", async () => {
  const library = await openNativeLibrary();
  try {
    const region = Region.create(library, { payloadBytes: 64, instance: uniqueInstance("close") });
    const bytes = region.bytes();
    const floats = region.view(Float64Array);
    bytes[0] = 1;
    region.close();
    region.close();
    assert.equal(region.closed, true);
    assert.equal(bytes.length, 0, "the view is detached, not dangling");
    assert.equal(floats.length, 0);
    assert.equal(bytes[0], undefined);
    for (const call of [() => region.bytes(), () => region.info(), () => region.retain()]) {
      assert.throws(call, (error: unknown) => {
        assert.ok(error instanceof SharedMemoryError);
        assert.equal(error.statusName, "closed");
        assert.equal(error.regionName, region.name);
        assert.match(
          error.message,
          /^Cannot call \w+ on region \/snakepit-.*: this Region is closed/,
        );
        return true;
      });
    }
    assert.equal(regionExists(region.name), false, "its last reference went with it");
  } finally {
    library.close();
  }
});

test("closing the library closes its regions first", async () => {
  const library = await openNativeLibrary();
  const region = Region.create(library, { payloadBytes: 64, instance: uniqueInstance("libcl") });
  const view = region.bytes();
  library.close();
  assert.equal(region.closed, true);
  assert.equal(view.length, 0);
  assert.equal(regionExists(region.name), false);
});

test("retain and release balance, the last release unlinks, and one more is over_release", async () => {
  const library = await openNativeLibrary();
  try {
    using region = Region.create(library, { payloadBytes: 64, instance: uniqueInstance("refs") });
    region.retain();
    assert.equal(region.info().referenceCount, 2);
    assert.equal(region.release(), false);
    assert.equal(region.release(), true);
    assert.equal(regionExists(region.name), false);
    region.bytes()[0] = 5; // the mapping outlives the name until close()
    assert.throws(() => region.release(), (error: unknown) => {
      assert.ok(error instanceof SharedMemoryError);
      assert.equal(error.statusName, "over_release");
      assert.match(error.message, /released more often than retained \[over_release\]/);
      return true;
    });
    assert.throws(() => region.retain(), {
      name: "SharedMemoryError",
      statusName: "region_released",
    });
    assert.throws(() => Region.open(library, region.name), { statusName: "not_found" });
  } finally {
    library.close();
  }
});

test("opening a missing region is not_found, with the system call and errno", async () => {
  const library = await openNativeLibrary();
  try {
    assert.throws(() => Region.open(library, MISSING), (error: unknown) => {
      assert.ok(error instanceof SharedMemoryError);
      assert.ok(error instanceof NativeLibraryError);
      assert.ok(error instanceof NativeError);
      assert.equal(error.code, "native");
      assert.equal(error.op, "open");
      assert.equal(error.statusName, "not_found");
      assert.equal(error.status, -4);
      assert.equal(error.errno, 2);
      assert.equal(error.syscall, "shm_open");
      assert.equal(error.regionName, MISSING);
      assert.equal(
        error.message,
        `Cannot open shared-memory region ${MISSING}: no region has this name (never created, ` +
          "or already unlinked) [not_found]; shm_open failed with errno 2 (ENOENT). Check the " +
          "name, and that the producer keeps its reference until the consumer has opened the region.",
      );
      return true;
    });
  } finally {
    library.close();
  }
});

test("a region larger than /dev/shm's free space is shm_full, saying how to enlarge it", async (context) => {
  const library = await openNativeLibrary();
  try {
    const available = library.shmAvailableBytes();
    const payloadBytes = available + 2 ** 30;
    if (payloadBytes > REGION_PAYLOAD_BYTES_MAX) {
      context.skip(`/dev/shm has ${available} bytes free: more than the region limit`);
      return;
    }
    assert.throws(() => Region.create(library, { payloadBytes }), (error: unknown) => {
      assert.ok(error instanceof SharedMemoryError);
      assert.equal(error.statusName, "shm_full");
      assert.equal(error.syscall, "statvfs");
      assert.match(
        error.message,
        new RegExp(
          `^Cannot create a shared-memory region of ${payloadBytes} bytes: /dev/shm has too little free space \\(${
            payloadBytes + 4096
          } bytes needed, \\d+ free\\) \\[shm_full\\]`,
        ),
      );
      assert.match(error.message, /--shm-size=2g/);
      assert.match(error.message, /mount -o remount,size=8G \/dev\/shm/);
      assert.match(error.suggestion ?? "", /Kubernetes/);
      return true;
    });
  } finally {
    library.close();
  }
});

test("limits: a payload past 64 GiB is region_too_large", async () => {
  const library = await openNativeLibrary();
  try {
    assert.throws(
      () => Region.create(library, { payloadBytes: REGION_PAYLOAD_BYTES_MAX + 1 }),
      { name: "SharedMemoryError", statusName: "region_too_large" },
    );
    assert.equal(library.limits().regionPayloadBytesMax, REGION_PAYLOAD_BYTES_MAX);
    assert.equal(library.limits().processRegionsMax, 1024);
  } finally {
    library.close();
  }
});

test("bad arguments throw TypeError or RangeError naming the option and the value", async () => {
  const library = await openNativeLibrary();
  try {
    const create = (options: unknown) => () => Region.create(library, options as never);
    assert.throws(create({ payloadBytes: 0 }), {
      name: "RangeError",
      message:
        "Cannot create a shared-memory region: options.payloadBytes must be a positive integer, received 0",
    });
    assert.throws(create({ payloadBytes: 1.5 }), RangeError);
    assert.throws(create({ payloadBytes: 8, instance: "has-dash" }), {
      name: "RangeError",
      message:
        'Cannot create a shared-memory region: options.instance must match /^[A-Za-z0-9_]{1,20}$/, received "has-dash"',
    });
    assert.throws(create({ payloadBytes: 8, instance: "x".repeat(21) }), RangeError);
    assert.throws(create(null), TypeError);
    assert.throws(() => Region.create({} as never, { payloadBytes: 8 }), {
      name: "TypeError",
      message:
        "Cannot create a shared-memory region: library must be a NativeLibrary from openNativeLibrary(), received object",
    });
    assert.throws(() => Region.open(library, "/etc/passwd"), RangeError);
    assert.throws(() => Region.open(library, 5 as never), TypeError);
    assert.throws(() => Region.open(library, MISSING, { generation: -1 }), RangeError);
    using region = Region.create(library, { payloadBytes: 16, instance: uniqueInstance("args") });
    assert.throws(() => region.view(Float64Array, 4), RangeError, "misaligned");
    assert.throws(() => region.view(Float64Array, 8, 2), RangeError, "past the end");
  } finally {
    library.close();
  }
});

test("a generation mismatch refuses the open; bumping the generation makes old ones stale", async () => {
  const library = await openNativeLibrary();
  try {
    using region = Region.create(library, { payloadBytes: 16, instance: uniqueInstance("gen") });
    assert.equal(region.bumpGeneration(), 2);
    assert.throws(() => Region.open(library, region.name, { generation: 1 }), {
      statusName: "generation_mismatch",
    });
    using opened = Region.open(library, region.name, { generation: 2, retain: false });
    assert.equal(opened.info().referencesHeld, 0);
    assert.throws(() => opened.release(), { statusName: "over_release" });
  } finally {
    library.close();
  }
});

test("process usage counts the open regions and returns to what it was", async () => {
  const library = await openNativeLibrary();
  try {
    const before = library.processUsage();
    const regions = Array.from(
      { length: 5 },
      () => Region.create(library, { payloadBytes: 1 << 20, instance: uniqueInstance("usage") }),
    );
    const during = library.processUsage();
    assert.equal(during.regions, before.regions + 5);
    assert.equal(during.mappedBytes, before.mappedBytes + 5 * ((1 << 20) + 4096));
    for (const region of regions) region.close();
    assert.deepEqual(library.processUsage(), before);
  } finally {
    library.close();
  }
});

test("a reserved region allocates its pages up front", async () => {
  const library = await openNativeLibrary();
  try {
    using region = Region.create(library, {
      payloadBytes: 1 << 20,
      instance: uniqueInstance("rsv"),
      reserve: true,
    });
    const { statSync } = await import("node:fs");
    assert.ok(statSync(`/dev/shm${region.name}`).blocks * 512 >= 1 << 20);
  } finally {
    library.close();
  }
});

// The fast lane: shared-memory rings between the host and a real Python worker. The rest of
// the suite runs against both transports (scripts/test_all.sh runs it again with
// SNAKEPIT_TRANSPORT=grpc); these tests cover what only the lane has: its layout checks, the
// doorbell, spilled frames, its fallbacks, protocol faults and crashes while parked.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import process from "node:process";
import {
  Pool,
  type PythonError,
  QueueTimeoutError,
  TransportError,
  WorkerBusyError,
  WorkerCrashedError,
  WorkerStartError,
} from "../mod.ts";
import {
  FRAME_SPILL,
  HEADER_BYTES,
  LANE_VERSION,
  LaneLayout,
  LaneProtocolError,
  laneRegionBytes,
  OFF,
  SLOT_HEADER_BYTES,
} from "../src/bridge/lane/ring.ts";
import { isAlive, testPoolOptions, waitFor } from "./_helpers.ts";

const FAULTS = "snakepit_bridge.examples.faults:FaultsAdapter";

function lanePool(overrides: Parameters<typeof testPoolOptions>[0] = {}) {
  return Pool.start(testPoolOptions({ transport: "fast-lane", ...overrides }));
}

function shmRegions(): string[] {
  return readdirSync("/dev/shm").filter((name) => name.startsWith("snakepit-"));
}

describe("the ring layout", () => {
  const slotBytes = 256;
  const slotCount = 4;
  const fresh = () => LaneLayout.initialize(new Uint8Array(laneRegionBytes(slotBytes, slotCount)), slotBytes, slotCount);

  test("a fresh header names the protocol, a random non-zero epoch and the slot geometry", () => {
    const layout = fresh();
    assert.equal(layout.load(OFF.version), LANE_VERSION);
    assert.notEqual(layout.epoch, 0);
    assert.notEqual(fresh().epoch, layout.epoch, "two lanes get different epochs");
    assert.equal(layout.capacity, slotBytes - SLOT_HEADER_BYTES);
    assert.equal(layout.requestSlot(0), HEADER_BYTES);
    assert.equal(layout.requestSlot(slotCount), HEADER_BYTES, "indices wrap around the ring");
    assert.equal(layout.responseSlot(0), HEADER_BYTES + slotBytes * slotCount);
  });

  test("frames written round-trip, across the u32 wrap of the counters", () => {
    const layout = fresh();
    for (const index of [0, 1, 5, 0xffff_fffe, 0xffff_ffff]) {
      const frame = new Uint8Array([1, 2, 3, index & 0xff]);
      layout.writeRequest(index, frame);
      assert.deepEqual(layout.readRequest(index), frame);
    }
  });

  test("a slot from another epoch, a torn slot and impossible lengths are refused", () => {
    const layout = fresh();
    layout.writeRequest(2, new Uint8Array([9, 9]));
    const word = layout.requestSlot(2) >>> 2;
    const corrupt = (index: number, value: number, pattern: RegExp) => {
      const saved = layout.words[word + index];
      layout.words[word + index] = value;
      assert.throws(() => layout.readRequest(2), (error: unknown) => error instanceof LaneProtocolError && pattern.test((error as Error).message));
      layout.words[word + index] = saved;
    };
    corrupt(1, layout.epoch ^ 1, /epoch .* \(a stale ring\)/);
    corrupt(0, 6, /carries frame 6 \(a stale or torn slot\)/);
    corrupt(2, 0, /claims 0 bytes; a slot holds 1 to 240/);
    corrupt(2, slotBytes, /claims 256 bytes/);
    assert.throws(() => layout.readRequest(3), LaneProtocolError, "a slot never written is refused");
    assert.deepEqual(layout.readRequest(2), new Uint8Array([9, 9]), "the intact slot still reads");
  });

  test("a region that is not a lane, or speaks another version, is refused", () => {
    const bytes = new Uint8Array(laneRegionBytes(slotBytes, slotCount));
    assert.throws(() => new LaneLayout(bytes), /Fast lane protocol error: the region is not a fast lane/);
    LaneLayout.initialize(bytes, slotBytes, slotCount);
    new Uint32Array(bytes.buffer)[OFF.version >>> 2] = LANE_VERSION + 1;
    assert.throws(() => new LaneLayout(bytes), /the lane speaks version 2, this host 1/);
    assert.throws(() => LaneLayout.initialize(new Uint8Array(1024), slotBytes, slotCount), RangeError);
    assert.equal(FRAME_SPILL, 9);
  });
});

describe("calls over the fast lane", () => {
  test("values, errors with tracebacks, sessions and streams behave as over gRPC", async () => {
    await using lane = await lanePool();
    await using grpc = await Pool.start(testPoolOptions({ transport: "grpc" }));
    const value = { text: "héllo", bytes: new Uint8Array([0, 1, 255]), list: [1, 2.5, null, true], big: 2n ** 60n };
    assert.deepEqual(await lane.call("echo", { value }), await grpc.call("echo", { value }));
    const errors = (await Promise.all(
      [lane, grpc].map((pool) => pool.call("fail_async", { message: "boom" }).catch((e) => e)),
    )) as PythonError[];
    assert.equal(errors[0].constructor, errors[1].constructor);
    assert.equal(errors[0].message, errors[1].message);
    assert.ok(errors[0].frames.length > 0, "the traceback crossed the lane");
    assert.deepEqual(errors[0].frames, errors[1].frames);
    await lane.call("remember", { key: "k", value: 41 }, { sessionId: "s1" });
    assert.equal(await lane.call("remember", { key: "k", value: null }, { sessionId: "s1" }), 41);
    const items: number[] = [];
    for await (const item of lane.stream<number>("count_async", { n: 40 })) items.push(item);
    assert.deepEqual(items, Array.from({ length: 40 }, (_, index) => index));
  });

  test("frames larger than a slot spill into regions of their own, both ways, and none is left", async () => {
    await using pool = await lanePool();
    const before = shmRegions().length;
    for (const size of [9000, 1 << 20, 20 << 20]) {
      const value = new Uint8Array(size);
      for (let index = 0; index < size; index += 4093) value[index] = index & 0xff;
      const back = await pool.call<Uint8Array>("echo", { value });
      assert.equal(back.byteLength, size);
      assert.deepEqual(back, value);
    }
    assert.equal(await pool.call("echo", { value: "small after big" }), "small after big");
    assert.ok(shmRegions().length <= before, "every spill region was unlinked");
  });

  test("a call aborted while the host spins rejects with the signal's reason and Python is told", async () => {
    await using pool = await lanePool({ laneSpinUs: 10_000 });
    const controller = new AbortController();
    const call = pool.call("wait_cancellable", { label: "spin", seconds: 5 }, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error("stop spinning")), 3);
    await assert.rejects(call, /stop spinning/);
    await waitFor(async () => (await pool.call<string[]>("records")).includes("spin:cancelled"), 3_000, "the tool to see the cancel");
  });

  test("a worker SIGKILLed while the host is parked rejects its call with WorkerCrashedError at once", async () => {
    await using pool = await lanePool({ laneSpinUs: 20 });
    const [pid] = pool.workerPids;
    const call = pool.call("block", { seconds: 30 });
    await new Promise((resolve) => setTimeout(resolve, 200)); // Long past the spin: parked.
    const killedAt = performance.now();
    process.kill(pid!, "SIGKILL");
    const error = await call.catch((e) => e);
    const detectedMs = performance.now() - killedAt;
    assert.ok(error instanceof WorkerCrashedError, String(error));
    assert.equal(error.signal, "SIGKILL");
    assert.ok(detectedMs < 1_000, `detected in ${detectedMs.toFixed(1)} ms`);
    assert.equal(await pool.call("echo", { value: "replaced" }, { timeoutMs: 15_000 }), "replaced");
  });

  for (const kind of ["stale-epoch", "torn", "oversized", "garbage", "unknown-id"]) {
    test(`a ${kind} response slot is a typed error, and the worker is replaced`, async () => {
      await using pool = await lanePool({ adapter: FAULTS });
      const [pid] = pool.workerPids;
      const killed: string[] = [];
      pool.on("worker:killed", (event) => killed.push(event.reason));
      const error = await pool.call("corrupt_lane", { kind }).catch((e) => e);
      assert.ok(error instanceof TransportError, String(error));
      assert.match(error.message, /Fast lane protocol error: .*the worker is being replaced/);
      await waitFor(() => !isAlive(pid!), 3_000, "the worker with the broken lane to be killed");
      assert.deepEqual(killed, ["lane-protocol"]);
      assert.equal(await pool.call("corrupt_lane", { kind: "nonsense" }).catch((e) => e.pythonType), "ValueError");
    });
  }
});

describe("pipelining into a worker's ring", () => {
  test("calls past the running one wait in the ring, count as queued, and run one after another", async () => {
    await using pool = await lanePool();
    const calls = Array.from({ length: 5 }, () => pool.call<[number, number]>("block", { seconds: 0.05 }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const stats = pool.stats();
    assert.equal(stats.inFlight, 5, "all five were handed to the worker");
    assert.equal(stats.queued, 4, "four wait behind the running one");
    const intervals = (await Promise.all(calls)).sort((a, b) => a[0] - b[0]);
    for (let index = 1; index < intervals.length; index++) {
      assert.ok(intervals[index]![0] >= intervals[index - 1]![1] - 0.005, "one at a time");
    }
  });

  test("pipelineDepth 0 keeps waiting calls in the pool's queue", async () => {
    await using pool = await lanePool({ pipelineDepth: 0 });
    const calls = Array.from({ length: 3 }, () => pool.call("block", { seconds: 0.05 }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(pool.stats().inFlight, 1);
    assert.equal(pool.stats().queued, 2);
    await Promise.all(calls);
  });

  test("a worker killed with calls in its ring fails only the running call; the waiting ones run on its replacement", async () => {
    await using pool = await lanePool();
    const [pid] = pool.workerPids;
    const running = pool.call("block", { seconds: 30 }).catch((e) => e);
    const waiting = ["b", "c", "d"].map((label) => pool.call("record", { label }, { timeoutMs: 20_000 }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(pool.stats().queued, 3);
    process.kill(pid!, "SIGKILL");
    assert.ok((await running) instanceof WorkerCrashedError);
    assert.deepEqual(await Promise.all(waiting), [1, 2, 3], "they ran, in order, on the new worker");
    assert.notEqual(pool.workerPids[0], pid);
  });

  test("a call in the ring past its queueTimeoutMs fails at that deadline and never runs", async () => {
    await using pool = await lanePool();
    const running = pool.call("block", { seconds: 1 });
    const started = performance.now();
    const error = await pool.call("record", { label: "late" }, { queueTimeoutMs: 100 }).catch((e) => e);
    const waitedMs = performance.now() - started;
    assert.ok(error instanceof QueueTimeoutError, String(error));
    assert.ok(waitedMs < 800, `rejected at its deadline, not when the worker got to it (${waitedMs.toFixed(0)} ms)`);
    await running;
    assert.deepEqual(await pool.call("records"), [], "the expired call never ran");
  });

  test("a session's worker running a call is busy for strict-fail-fast even with room in its ring", async () => {
    await using pool = await lanePool({ sessionMode: "strict-fail-fast" });
    await pool.call("remember", { key: "k", value: 1 }, { sessionId: "s" });
    const running = pool.call("block", { seconds: 0.3 }, { sessionId: "s" });
    await assert.rejects(pool.call("noop", {}, { sessionId: "s" }), WorkerBusyError);
    await running;
  });
});

describe("choosing the transport", () => {
  test("transport and laneSpinUs are validated with the option's name", async () => {
    await assert.rejects(lanePool({ transport: "pipes" as never }), /options\.transport must be "auto", "fast-lane" or "grpc"/);
    await assert.rejects(lanePool({ laneSpinUs: -1 }), /options\.laneSpinUs must be a non-negative integer/);
    await assert.rejects(lanePool({ laneSpinUs: 20_000 }), /options\.laneSpinUs must be at most 10000/);
  });

  test("$SNAKEPIT_TRANSPORT picks the transport when the option is absent, and is checked", async () => {
    const saved = process.env.SNAKEPIT_TRANSPORT;
    try {
      process.env.SNAKEPIT_TRANSPORT = "carrier-pigeon";
      await assert.rejects(Pool.start(testPoolOptions()), /\$SNAKEPIT_TRANSPORT must be "auto", "fast-lane" or "grpc", received "carrier-pigeon"/);
    } finally {
      if (saved === undefined) delete process.env.SNAKEPIT_TRANSPORT;
      else process.env.SNAKEPIT_TRANSPORT = saved;
    }
  });

  test('a worker that cannot map the lane fails "fast-lane" start-up and falls back under "auto"', async () => {
    const env = { SNAKEPIT_NATIVE_LIB: "/nonexistent/libsnakepit.so" };
    const error = await lanePool({ env }).catch((e) => e);
    assert.ok(error instanceof WorkerStartError, String(error));
    assert.match(error.message, /it cannot serve the fast lane \(unavailable: .*nonexistent/);
    await using pool = await Pool.start(testPoolOptions({ transport: "auto", env }));
    assert.equal(await pool.call("echo", { value: "over gRPC" }), "over gRPC");
  });
});

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { CircuitBreaker, Pool, WorkerCrashedError, TelemetryBus, type TelemetryEvent } from "../mod.ts";
import { testPoolOptions, waitFor } from "./_helpers.ts";

describe("telemetry bus", () => {
  test("call stop and exception, and worker lifecycle with exit classification, arrive as typed events", async () => {
    const bus = new TelemetryBus();
    const events: TelemetryEvent[] = [];
    bus.subscribe((event) => events.push(event));
    await using pool = await Pool.start(testPoolOptions({ name: "bus", adapter: "snakepit_bridge.examples.numeric:NumericAdapter", restartBackoffMs: 10 }));
    bus.observePool(pool);
    await pool.call("add", { a: 1, b: 2 }, { correlationId: "c-ok" });
    await assert.rejects(pool.call("fail", { message: "x" }, { correlationId: "c-bad" }));
    process.kill(pool.workerPids[0]!, "SIGKILL");
    await waitFor(() => events.some((event) => event.name === "worker:ready"), 5000, "the replacement to be ready");
    const names = events.map((event) => event.name);
    assert.deepEqual(names.slice(0, 4), ["call:start", "call:stop", "call:start", "call:exception"]);
    const stop = events.find((event) => event.name === "call:stop");
    assert.equal(stop?.name === "call:stop" && stop.event.correlationId, "c-ok");
    const failure = events.find((event) => event.name === "call:exception");
    assert.equal(failure?.name === "call:exception" && failure.event.errorCode, "python");
    const exit = events.find((event) => event.name === "worker:exit");
    assert.equal(exit?.name === "worker:exit" && exit.event.classification, "killed");
    assert.ok(names.includes("worker:restart") && names.includes("worker:spawn"));
  });

  test("subscribers filter by name and predicate, and sample", () => {
    const bus = new TelemetryBus();
    const failures: TelemetryEvent[] = [];
    const none: TelemetryEvent[] = [];
    const all: TelemetryEvent[] = [];
    bus.subscribe((event) => failures.push(event), { names: ["health:alert"], filter: (event) => event.name === "health:alert" && event.event.status === "fail" });
    bus.subscribe((event) => none.push(event), { sampleRate: 0 });
    bus.subscribe((event) => all.push(event), { sampleRate: 1 });
    for (let index = 0; index < 100; index++) bus.publish("health:alert", { component: "pool:a", status: index % 2 ? "fail" : "pass" });
    assert.equal(failures.length, 50);
    assert.equal(none.length, 0);
    assert.equal(all.length, 100);
  });

  test("breaker state changes are forwarded", () => {
    const bus = new TelemetryBus();
    const events: TelemetryEvent[] = [];
    bus.subscribe((event) => events.push(event), { names: ["breaker:state-change"] });
    const breaker = new CircuitBreaker({ name: "gpu", failureThreshold: 1 });
    bus.observeBreaker(breaker);
    breaker.acquire().failure(new WorkerCrashedError("crashed on purpose", { workerId: "w", exit: { exitCode: null, signal: "SIGKILL", classification: "killed", stderrTail: "" } } as never));
    breaker.reset();
    assert.deepEqual(events.map((event) => event.name === "breaker:state-change" && `${event.event.from}->${event.event.to}`).slice(-1), ["open->closed"]);
  });

  test("invalid subscribe options fail fast naming the option and the value", () => {
    assert.throws(() => new TelemetryBus().subscribe(() => {}, { sampleRate: 2 }), {
      name: "RangeError",
      message: "Cannot subscribe to telemetry: options.sampleRate must be between 0 and 1, received 2",
    });
  });
});

describe("shared-memory events", () => {
  test("creating, opening, releasing and closing regions arrive as shm:allocate and shm:release", async () => {
    const { openNativeLibrary, Region } = await import("../mod.ts");
    const library = await openNativeLibrary();
    const bus = new TelemetryBus();
    const events: TelemetryEvent[] = [];
    bus.subscribe((event) => events.push(event), { names: ["shm:allocate", "shm:release"] });
    const stop = bus.observeSharedMemory();
    try {
      const region = Region.create(library, { payloadBytes: 4096, instance: "telemetry" });
      const peer = Region.open(library, region.name);
      peer.close();
      region.close();
      const seen = events.map((event) =>
        event.name === "shm:allocate" || event.name === "shm:release" ? `${event.name} ${event.event.kind} ${event.event.payloadBytes}` : "");
      assert.deepEqual(seen, [
        "shm:allocate allocate 4096",
        "shm:allocate open 4096",
        "shm:release close 4096",
        "shm:release close 4096",
      ]);
      assert.ok(events.every((event) => event.name.startsWith("shm:") && (event.event as { name: string }).name === region.name));
    } finally {
      stop();
      library.close();
    }
  });
});

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Pool } from "../mod.ts";
import { NUMERIC, testPoolOptions } from "./_helpers.ts";

describe("values round-trip faithfully through a worker", () => {
  let pool: Pool;
  before(async () => {
    pool = await Pool.start(testPoolOptions());
  });
  after(() => pool.close());

  const echo = (value: unknown) => pool.call("echo", { value });

  test("integers beyond 2^53 arrive as bigint and return unchanged", async () => {
    for (const value of [2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n]) {
      assert.equal(await echo(value), value);
    }
    assert.equal(await echo(2 ** 53), 2 ** 53);
    assert.equal(await echo(-7), -7);
  });

  test("floats keep NaN, Infinity and full precision", async () => {
    assert.ok(Number.isNaN(await echo(Number.NaN)));
    assert.equal(await echo(Infinity), Infinity);
    assert.equal(await echo(-Infinity), -Infinity);
    assert.equal(await echo(0.1 + 0.2), 0.1 + 0.2);
    assert.equal(await echo(Number.MIN_VALUE), Number.MIN_VALUE);
  });

  test("strings keep any Unicode, including NUL and astral characters", async () => {
    const text = "ascii \u0000 é ß 漢字 😀 \u{10FFFF} \uFEFF";
    assert.equal(await echo(text), text);
  });

  test("bytes arrive as a plain Uint8Array", async () => {
    const bytes = new Uint8Array(256).map((_, index) => index);
    const result = await echo(bytes);
    assert.ok(result instanceof Uint8Array);
    assert.equal(Object.getPrototypeOf(result), Uint8Array.prototype);
    assert.deepEqual([...(result as Uint8Array)], [...bytes]);
  });

  test("nested maps and lists, booleans and null survive", async () => {
    const value = { a: [1, [2, [3, { deep: null }]]], b: { c: true, d: false }, "key with space": "", empty: {}, list: [] };
    assert.deepEqual(await echo(value), value);
    assert.equal(await echo(null), null);
  });

  test("the async echo tool returns the same values", async () => {
    assert.deepEqual(await pool.call("echo_async", { value: { x: [1n << 60n, "y"] } }), { x: [1n << 60n, "y"] });
  });
});

describe("the json encoding (for debugging) round-trips what JSON can carry", () => {
  test("numbers, strings, NaN/Infinity, nesting", async () => {
    await using pool = await Pool.start(testPoolOptions({ encoding: "json" }));
    const value = { n: 1.5, s: "é😀", list: [1, null, true], inf: Infinity, nan: Number.NaN };
    const result = await pool.call<typeof value>("echo", { value });
    assert.deepEqual({ ...result, nan: 0 }, { ...value, nan: 0 });
    assert.ok(Number.isNaN(result.nan));
  });
});

describe("a numpy adapter computes and streams", () => {
  test("numbers computed by numpy come back as numbers", async () => {
    await using pool = await Pool.start(testPoolOptions({ adapter: NUMERIC }));
    assert.equal(await pool.call("add", { a: 2, b: 40 }), 42);
    const stats = await pool.call<Record<string, number>>("stats", { values: [1, 2, 3, 4] });
    assert.equal(stats.mean, 2.5);
    assert.equal(stats.min, 1);
    assert.equal(stats.max, 4);
  });

  test("a generator tool streams its items in order", async () => {
    await using pool = await Pool.start(testPoolOptions({ adapter: NUMERIC }));
    const items: unknown[] = [];
    for await (const item of pool.stream("count", { n: 5 })) items.push(item);
    assert.deepEqual(items, [0, 1, 2, 3, 4]);
  });

  test("breaking out of a stream frees the worker for the next call", async () => {
    await using pool = await Pool.start(testPoolOptions({ adapter: NUMERIC }));
    for await (const item of pool.stream<number>("count", { n: 1000, delay_ms: 5 })) {
      if (item === 2) break;
    }
    assert.equal(await pool.call("add", { a: 1, b: 1 }), 2);
  });

  test("describe lists tools with docstrings and signatures", async () => {
    await using pool = await Pool.start(testPoolOptions({ adapter: NUMERIC }));
    const description = pool.describe();
    const count = description.tools.find((tool) => tool.name === "count");
    assert.ok(count, "count tool is described");
    assert.equal(count.streaming, true);
    assert.match(count.signature, /n: int/);
    assert.ok(description.tools.every((tool) => tool.doc.length > 0), "every tool has a docstring");
    assert.equal(description.capabilities.protocolVersion, 1);
    assert.ok(description.capabilities.nativeAbiVersion >= 1, "the worker loaded the native library");
  });
});

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  InvalidArgumentsError,
  Pool,
  PythonError,
  SerializationError,
  SnakepitError,
  UnknownToolError,
} from "../mod.ts";
import { NUMERIC, testPoolOptions } from "./_helpers.ts";

describe("failures arrive as typed errors", () => {
  let pool: Pool;
  before(async () => {
    pool = await Pool.start(testPoolOptions({ adapter: NUMERIC }));
  });
  after(() => pool.close());

  test("a ValueError arrives as PythonError with type, message, traceback and cause chain", async () => {
    const error = await pool.call("fail", { message: "on purpose" }, { correlationId: "corr-1" }).then(
      () => assert.fail("expected a rejection"),
      (error) => error,
    );
    assert.ok(error instanceof PythonError);
    assert.ok(error instanceof SnakepitError);
    assert.equal(error.code, "python");
    assert.equal(error.pythonType, "ValueError");
    assert.equal(error.pythonModule, "builtins");
    assert.match(error.message, /on purpose/);
    assert.equal(error.correlationId, "corr-1");
    assert.equal(error.tool, "fail");
    assert.ok(error.frames.some((frame) => /raise ValueError/.test(frame.source)), "the raising line is in the traceback");
    assert.equal(error.causes[0]?.relation, "cause");
    assert.equal(error.causes[0]?.pythonType, "KeyError");
    assert.match(error.pythonTraceback, /^Traceback \(most recent call last\):/);
    const json = error.toJSON();
    assert.equal(json.code, "python");
    assert.equal(json.pythonType, "ValueError");
  });

  test("an unknown tool is an UnknownToolError naming the tools there are", async () => {
    const error = await pool.call("no_such_tool").catch((error) => error);
    assert.ok(error instanceof UnknownToolError);
    assert.equal(error.code, "unknown_tool");
    assert.match(error.message, /no_such_tool/);
    assert.match(error.message, /add/);
  });

  test("arguments that do not fit the signature are an InvalidArgumentsError", async () => {
    const error = await pool.call("add", { a: 1, nope: 2 }).catch((error) => error);
    assert.ok(error instanceof InvalidArgumentsError);
    assert.equal(error.code, "invalid_arguments");
    assert.match(error.message, /nope|b/);
  });

  test("a result Python cannot encode is a SerializationError", async () => {
    const error = await pool.call("power", { base: 2, exponent: 70 }).catch((error) => error);
    assert.ok(error instanceof SerializationError, String(error));
    assert.match(error.message, /71 bits.*above 2\*\*64-1/);
  });
});

describe("arguments that cannot be encoded are refused before anything is sent", () => {
  let pool: Pool;
  before(async () => {
    pool = await Pool.start(testPoolOptions());
  });
  after(() => pool.close());

  const cases: Array<[string, unknown, RegExp]> = [
    ["a function", () => 1, /^Cannot encode args\.value as msgpack: it is a function; pass data, not code$/],
    ["a symbol", Symbol("s"), /^Cannot encode args\.value as msgpack: it is a symbol; pass a string instead$/],
    ["a DataView", new DataView(new ArrayBuffer(4)), /args\.value as msgpack: it is a DataView, which would lose its element type/],
    ["a bigint past 64 bits", 2n ** 70n, /outside the 64-bit integer range/],
    ["a class instance", new (class Point {})(), /instance of Point/],
    ["a function deep inside", { list: [1, { f: () => 1 }] }, /Cannot encode args\.value\.list\[1\]\.f as msgpack: it is a function/],
  ];
  for (const [what, value, pattern] of cases) {
    test(`${what} is a SerializationError naming its path`, async () => {
      const error = await pool.call("echo", { value }).catch((error) => error);
      assert.ok(error instanceof SerializationError, String(error));
      assert.equal(error.code, "serialization");
      assert.match(error.message, pattern);
    });
  }

  test("a cyclic value is refused, not a stack overflow", async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const error = await pool.call("echo", { value: cyclic }).catch((error) => error);
    assert.ok(error instanceof SerializationError);
    assert.match(error.message, /nested deeper than 64 levels/);
  });

  test("the pool keeps serving after refused arguments", async () => {
    assert.equal(await pool.call("echo", { value: 1 }), 1);
  });
});

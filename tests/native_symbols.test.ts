/**
 * One symbol table, checked: the exports of zig/c_api.zig, the TypeScript table (ffi/symbols.ts)
 * and the Python table (snakepit_bridge.native) must agree on names, parameter kinds and results,
 * and the status codes and constants they mirror must agree too.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  NATIVE_ABI_VERSION,
  NATIVE_STATUS_NAME_BYTES_MAX,
  NativeOp,
  NativeStatus,
  nativeSymbols,
} from "../ffi/mod.ts";

const repositoryRoot = fileURLToPath(new URL("..", import.meta.url));
const python = join(repositoryRoot, ".venv", "bin", "python");
const readZig = (name: string): string => readFileSync(join(repositoryRoot, "zig", name), "utf8");

type Table = Record<string, { parameters: string[]; result: string }>;

interface PythonTables {
  symbols: Table;
  statuses: Record<string, number>;
  ops: Record<string, number>;
  status_name_bytes_max: number;
  abi_version: number;
}

/** The neutral kind of a Zig parameter or result type as it may appear in the C ABI. */
function kindOfZigType(zigType: string, where: string): string {
  if (zigType.includes("*")) return "buffer";
  if (zigType === "u32" || zigType === "i32" || zigType === "u64") return zigType;
  throw new Error(
    `${where}: type ${zigType} is not allowed in the C ABI (u32, i32, u64, pointers)`,
  );
}

/** Parses `export fn name(params) result` declarations out of Zig source. */
function parseZigExports(source: string): Table {
  const table: Table = {};
  const declaration = /export\s+fn\s+(\w+)\s*\(([^)]*)\)\s*([^\s{]+)\s*\{/g;
  for (const [, name, parameterList, result] of source.matchAll(declaration)) {
    const parameters = parameterList.split(",").map((part) => part.trim()).filter((part) => part)
      .map((parameter) => {
        const colon = parameter.indexOf(":");
        assert.ok(colon > 0, `${name}: cannot parse parameter "${parameter}"`);
        return kindOfZigType(parameter.slice(colon + 1).trim(), `${name}(${parameter})`);
      });
    table[name] = { parameters, result: kindOfZigType(result, `${name} result`) };
  }
  return table;
}

function typeScriptTable(): Table {
  return Object.fromEntries(
    Object.entries(nativeSymbols).map((
      [name, symbol],
    ) => [name, { parameters: [...symbol.parameters], result: symbol.result }]),
  );
}

function pythonTables(): PythonTables {
  const script = "from snakepit_bridge import native\nprint(native.symbol_table_json())";
  return JSON.parse(execFileSync(python, ["-c", script], { encoding: "utf8" })) as PythonTables;
}

function zigOps(): Record<string, number> {
  const body = /pub const Op = enum\(u32\) \{([\s\S]*?)\n\};/.exec(readZig("os_failure.zig"));
  assert.ok(body, "zig/os_failure.zig declares `pub const Op = enum(u32) { ... }`");
  const entries = [...body[1].matchAll(/^\s*(\w+)\s*=\s*(\d+),/gm)];
  return Object.fromEntries(entries.map(([, name, value]) => [name, Number(value)]));
}

function zigStatuses(): Record<string, number> {
  const body = /pub const Status = enum\(i32\) \{([\s\S]*?)\n\s*pub fn/.exec(readZig("status.zig"));
  assert.ok(body, "zig/status.zig declares `pub const Status = enum(i32) { ... }`");
  const entries = [...body[1].matchAll(/^\s*(\w+)\s*=\s*(-?\d+),/gm)];
  return Object.fromEntries(entries.map(([, name, value]) => [name, Number(value)]));
}

test("the parser finds every export of zig/c_api.zig and only there", () => {
  const zigTable = parseZigExports(readZig("c_api.zig"));
  assert.ok(Object.keys(zigTable).length >= 4, "c_api.zig exports at least four functions");
  for (const name of Object.keys(zigTable)) assert.match(name, /^snakepit_[a-z0-9_]+$/);
  const otherFiles = readdirSync(join(repositoryRoot, "zig"))
    .filter((file) => file.endsWith(".zig") && file !== "c_api.zig");
  assert.ok(otherFiles.includes("root.zig"));
  for (const file of otherFiles) {
    assert.doesNotMatch(readZig(file), /export\s+fn/, `${file} must not export symbols`);
  }
});

test("the parser rejects types the C ABI forbids", () => {
  assert.throws(
    () => parseZigExports("export fn snakepit_bad(data: [*]const u8, length: usize) i32 {"),
    /snakepit_bad\(length: usize\): type usize is not allowed in the C ABI/,
  );
  assert.throws(() => parseZigExports("export fn snakepit_bad() bool {"), /type bool/);
  assert.deepEqual(parseZigExports("export fn snakepit_fine(\n    value: u32,\n) i32 {"), {
    snakepit_fine: { parameters: ["u32"], result: "i32" },
  });
});

test("every export returns an i32 status and takes no usize", () => {
  const source = readZig("c_api.zig");
  for (const [name, symbol] of Object.entries(parseZigExports(source))) {
    assert.equal(symbol.result, "i32", `${name} returns an i32 status`);
  }
  for (const [, parameters] of source.matchAll(/export\s+fn\s+\w+\s*\(([^)]*)\)/g)) {
    assert.doesNotMatch(parameters, /usize|isize|\[\*:0\]/, "no usize and no C strings in the ABI");
  }
});

test("ffi/symbols.ts has exactly the exports of zig/c_api.zig", () => {
  const zigTable = parseZigExports(readZig("c_api.zig"));
  assert.deepEqual(Object.keys(typeScriptTable()).sort(), Object.keys(zigTable).sort());
  assert.deepEqual(typeScriptTable(), zigTable);
});

test("the Python table has exactly the exports of zig/c_api.zig", () => {
  const zigTable = parseZigExports(readZig("c_api.zig"));
  const { symbols } = pythonTables();
  assert.deepEqual(Object.keys(symbols).sort(), Object.keys(zigTable).sort());
  assert.deepEqual(symbols, zigTable);
});

test("status codes agree between zig/status.zig, TypeScript and Python", () => {
  const statuses = zigStatuses();
  assert.equal(statuses.ok, 0);
  assert.deepEqual({ ...NativeStatus }, statuses);
  assert.deepEqual(pythonTables().statuses, statuses);
});

test("operation codes of error records agree between zig/os_failure.zig, TypeScript and Python", () => {
  const ops = zigOps();
  assert.equal(ops.none, 0);
  assert.equal(ops.shm_open, 1);
  assert.deepEqual({ ...NativeOp }, ops);
  assert.deepEqual(pythonTables().ops, ops);
});

test("the symbols that may block are marked, and only those", () => {
  const blocking = Object.entries(nativeSymbols).filter(([, symbol]) => "blocking" in symbol)
    .map(([name]) => name);
  assert.deepEqual(blocking, ["snakepit_region_wait_word", "snakepit_lock_acquire"]);
});

test("the ABI version and status name bound agree between Zig, TypeScript and Python", () => {
  const abiVersion = /pub const abi_version: u32 = (\d+);/.exec(readZig("version.zig"));
  const nameBytesMax = /pub const name_bytes_max = (\d+);/.exec(readZig("status.zig"));
  assert.ok(abiVersion && nameBytesMax, "zig/ declares abi_version and name_bytes_max");
  const tables = pythonTables();
  assert.equal(NATIVE_ABI_VERSION, Number(abiVersion[1]));
  assert.equal(tables.abi_version, Number(abiVersion[1]));
  assert.equal(NATIVE_STATUS_NAME_BYTES_MAX, Number(nameBytesMax[1]));
  assert.equal(tables.status_name_bytes_max, Number(nameBytesMax[1]));
});

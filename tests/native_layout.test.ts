/**
 * The TypeScript and Python mirrors of the region header and descriptor layouts agree with the
 * library's (`snakepit_header_layout`, `snakepit_descriptor_layout`, `snakepit_limits`).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import {
  DESCRIPTOR_BYTES,
  DESCRIPTOR_FIELDS,
  DESCRIPTOR_NDIM_MAX,
  HEADER_BYTES,
  HEADER_FIELDS,
  openNativeLibrary,
  readRegionHeader,
  Region,
  REGION_PAYLOAD_BYTES_MAX,
} from "../ffi/mod.ts";
import { python, uniqueInstance } from "./_native_helpers.ts";

interface PythonLayouts {
  header: Record<string, [number, number]>;
  descriptor: Record<string, [number, number]>;
}

function pythonLayouts(): PythonLayouts {
  const script = "import json\nfrom snakepit_bridge import native_header, native_descriptor\n" +
    "print(json.dumps({'header': native_header.FIELDS, 'descriptor': native_descriptor.FIELDS}))";
  return JSON.parse(execFileSync(python, ["-c", script], { encoding: "utf8" })) as PythonLayouts;
}

const asPairs = (fields: Record<string, readonly [number, number]>) =>
  Object.values(fields).map(([offset, bytes]) => [offset, bytes]);

test("the header mirrors in TypeScript and Python match the library's layout, field by field", async () => {
  const library = await openNativeLibrary();
  try {
    const native = library.headerLayout();
    assert.equal(native.length, Object.keys(HEADER_FIELDS).length);
    assert.deepEqual(asPairs(HEADER_FIELDS), native);
    const mirror = pythonLayouts().header;
    assert.deepEqual(Object.keys(mirror), Object.keys(HEADER_FIELDS));
    assert.deepEqual(asPairs(mirror), native);
    assert.equal(library.limits().headerBytes, HEADER_BYTES);
  } finally {
    library.close();
  }
});

test("the descriptor mirrors in TypeScript and Python match the library's layout", async () => {
  const library = await openNativeLibrary();
  try {
    const native = library.descriptorLayout();
    assert.deepEqual(asPairs(DESCRIPTOR_FIELDS), native);
    const mirror = pythonLayouts().descriptor;
    assert.deepEqual(Object.keys(mirror), Object.keys(DESCRIPTOR_FIELDS));
    assert.deepEqual(asPairs(mirror), native);
    const limits = library.limits();
    assert.equal(limits.descriptorBytes, DESCRIPTOR_BYTES);
    assert.equal(limits.ndimMax, DESCRIPTOR_NDIM_MAX);
    assert.equal(limits.regionPayloadBytesMax, REGION_PAYLOAD_BYTES_MAX);
  } finally {
    library.close();
  }
});

test("a header read from /dev/shm by the mirrors says what the library says", async () => {
  const library = await openNativeLibrary();
  try {
    using region = Region.create(library, { payloadBytes: 3000, instance: uniqueInstance("hdr") });
    region.retain();
    const raw = readFileSync(`/dev/shm${region.name}`).subarray(0, HEADER_BYTES);
    const header = readRegionHeader(raw);
    const info = region.info();
    assert.equal(header.layoutVersion, 1);
    assert.equal(header.generation, info.generation);
    assert.equal(header.totalBytes, 3000 + 4096);
    assert.equal(header.payloadOffset, info.payloadOffset);
    assert.equal(header.payloadBytes, 3000);
    assert.equal(header.creatorPid, process.pid);
    assert.equal(header.referenceCount, 2);
    assert.deepEqual(header.holders, [[process.pid, 2]]);
    assert.deepEqual(header.readers, []);
    const script = "import sys, json, dataclasses\nfrom snakepit_bridge.native_header import " +
      "read_region_header\nprint(json.dumps(dataclasses.asdict(read_region_header(" +
      "open(sys.argv[1], 'rb').read(1280)))))";
    const fromPython = JSON.parse(
      execFileSync(python, ["-c", script, `/dev/shm${region.name}`], { encoding: "utf8" }),
    );
    assert.equal(fromPython.payload_bytes, 3000);
    assert.equal(fromPython.reference_count, 2);
    assert.deepEqual(fromPython.holders, [[process.pid, 2]]);
    assert.throws(() => readRegionHeader(new Uint8Array(HEADER_BYTES)), RangeError);
    assert.throws(() => readRegionHeader(new Uint8Array(10)), RangeError);
  } finally {
    library.close();
  }
});

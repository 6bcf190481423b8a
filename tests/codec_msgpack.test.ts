import { test } from "node:test";
import assert from "node:assert/strict";
import { Packr } from "msgpackr";
import { decodeValue, encodeValue } from "../src/codec/mod.ts";
import { SerializationError } from "../src/errors/pool_errors.ts";

// The reference: msgpackr with the codec's own settings.
const reference = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true } as ConstructorParameters<typeof Packr>[0]);

test("every one-byte msgpack value decodes as the full decoder decodes it", () => {
  for (let byte = 0; byte < 256; byte++) {
    const bytes = Uint8Array.of(byte);
    let expected: unknown;
    try {
      expected = reference.unpack(bytes);
    } catch {
      // Not a complete value on its own (a header that needs more bytes): still refused.
      assert.throws(() => decodeValue(bytes), SerializationError, `byte 0x${byte.toString(16)}`);
      continue;
    }
    assert.deepEqual(decodeValue(bytes), expected, `byte 0x${byte.toString(16)}`);
  }
  assert.equal(decodeValue(Uint8Array.of(0xc0)), null);
  assert.equal(decodeValue(Uint8Array.of(0xff)), -1);
});

test("empty arguments encode as one empty-map byte, a fresh array each time", () => {
  const first = encodeValue({});
  assert.deepEqual([...first], [0x80]);
  first[0] = 0x90; // A caller scribbling on one encoding does not change the next.
  assert.deepEqual([...encodeValue({})], [0x80]);
  assert.deepEqual([...encodeValue(Object.create(null))], [0x80]);
  assert.deepEqual(decodeValue(encodeValue({})), {});
});

test("objects that are not empty plain objects still take the full encoder", () => {
  assert.deepEqual(decodeValue(encodeValue({ a: 1 })), { a: 1 });
  assert.deepEqual(decodeValue(encodeValue([])), []);
  // A class instance is refused by the walk, as before (only plain data crosses).
  class Empty {}
  assert.throws(() => encodeValue(new Empty(), "args"), SerializationError);
});

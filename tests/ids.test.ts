import { test } from "node:test";
import assert from "node:assert/strict";
import { newTraceparent, randomHex } from "../src/pool/_ids.ts";

test("newTraceparent makes valid, distinct W3C traceparents", () => {
  const seen = new Set<string>();
  for (let index = 0; index < 5000; index++) {
    const traceparent = newTraceparent();
    assert.match(traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.ok(!traceparent.includes("-00000000000000000000000000000000-"));
    seen.add(traceparent);
  }
  assert.equal(seen.size, 5000);
});

test("randomHex returns the requested number of bytes across pool refills", () => {
  for (const bytes of [1, 8, 16, 4000, 4096]) assert.match(randomHex(bytes), new RegExp(`^[0-9a-f]{${bytes * 2}}$`));
  const values = new Set(Array.from({ length: 2000 }, () => randomHex(8)));
  assert.equal(values.size, 2000);
});

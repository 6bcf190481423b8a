import { test } from "node:test";
import assert from "node:assert/strict";
import { newCorrelationId, newTraceparent, randomHex } from "../src/pool/_ids.ts";

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

test("newCorrelationId makes distinct version-4 UUIDs, as crypto.randomUUID does", () => {
  const seen = new Set<string>();
  // Past one 4 KiB block of random bytes (16 a UUID), so refills are crossed too.
  for (let index = 0; index < 5000; index++) {
    const id = newCorrelationId();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 5000);
  // Every free hex digit varies: no position is stuck (the dashes, the version digit and the
  // variant digit, which holds 8 to b, are checked by the pattern).
  const ids = [...seen];
  for (let at = 0; at < 36; at++) {
    if ([8, 13, 14, 18, 19, 23].includes(at)) continue;
    assert.ok(new Set(ids.map((id) => id[at])).size > 4, `digit ${at} barely varies`);
  }
});

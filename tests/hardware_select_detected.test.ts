import { test } from "node:test";
import assert from "node:assert/strict";
import { detect, select, selectDevice } from "../mod.ts";

test("select() on this machine matches selectDevice(detect()) and falls back from CUDA to what is here", async () => {
  const chosen = await select({ prefer: "cuda" });
  assert.deepEqual(chosen, selectDevice(await detect(), { prefer: "cuda" }));
  assert.ok(["cuda", "mps", "rocm", "cpu"].includes(chosen.backend));
});

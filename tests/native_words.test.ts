/**
 * Futex words in a region's payload (the fast lane's doorbells): publish, wake and wait, within
 * this process and across a real Python process mapping the same region.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  NativeLibraryError,
  openNativeLibrary,
  Region,
  SharedMemoryError,
  unlinkRegion,
  WORD_SPIN_NS_MAX,
} from "../ffi/mod.ts";
import { python, regionExists, uniqueInstance, withTimeout } from "./_native_helpers.ts";

const isDeno = "Deno" in globalThis;
const WORD = 0;
const PARKED = 4;

/** Resolves once `condition()` holds, polling every millisecond, or rejects after `timeoutMs`. */
async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Runs `script` in the project's Python with `args`; resolves its stdout lines and exit code. */
function runPython(script: string, args: string[]) {
  const child = spawn(python, ["-c", script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let errors = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (errors += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    done: () =>
      withTimeout(
        exited.then((code) => ({ code, lines: output.trim().split("\n"), errors })),
        20_000,
        () => `python ${args.join(" ")}; stderr: ${errors}`,
      ),
  };
}

// Python parks on the word with the parked flag, then reports what woke it.
const PYTHON_WAITER = `
import sys
from snakepit_bridge import native
from snakepit_bridge.native_region import Region
library = native.load()
with Region.open(library, sys.argv[1]) as region:
    value, timed_out = region.wait_word(${WORD}, 0, parked_offset=${PARKED}, timeout=10.0)
    flag = int.from_bytes(region.view()[${PARKED}:${PARKED + 4}], "little")
    print(value, timed_out, flag, flush=True)
`;

// Python waits (bounded) until the TypeScript waiter raised its parked flag, then publishes.
const PYTHON_PUBLISHER = `
import sys, time
from snakepit_bridge import native
from snakepit_bridge.native_region import Region
library = native.load()
with Region.open(library, sys.argv[1]) as region:
    view = region.view()
    deadline = time.monotonic() + 10
    while int.from_bytes(view[${PARKED}:${PARKED + 4}], "little") == 0:
        if time.monotonic() > deadline:
            sys.exit("the TypeScript waiter never raised its parked flag")
        time.sleep(0.001)
    view.release()
    print(region.publish_word(${WORD}, int(sys.argv[2]), ${PARKED}), flush=True)
`;

async function withRegion(
  tag: string,
  body: (region: Region, library: Awaited<ReturnType<typeof openNativeLibrary>>) => Promise<void>,
): Promise<void> {
  const library = await openNativeLibrary();
  const region = Region.create(library, { payloadBytes: 64, instance: uniqueInstance(tag) });
  try {
    await body(region, library);
  } finally {
    region.close();
    library.close();
  }
}

test("publishWord stores the value and reports false when nobody is parked", async () => {
  await withRegion("wpub", (region) => {
    const words = region.view(Uint32Array, 0, 16);
    assert.equal(region.publishWord(WORD, 0xffff_fffe, PARKED), false);
    assert.equal(words[0], 0xffff_fffe);
    assert.equal(words[1], 0, "the parked flag stays down");
    assert.equal(region.publishWord(60, 3), false, "the last word of the payload, no flag");
    assert.equal(words[15], 3);
    words[1] = 1; // a waiter's raised flag: the publish clears it and wakes (nobody, here)
    assert.equal(region.publishWord(WORD, 5, PARKED), true);
    assert.equal(words[1], 0);
    region.wakeWord(WORD);
    return Promise.resolve();
  });
});

test("waitWordSync returns at once when the word already differs from expected", async () => {
  await withRegion("wdiff", (region) => {
    region.publishWord(WORD, 7);
    const start = performance.now();
    assert.deepEqual(region.waitWordSync(WORD, 6, { parkedOffset: PARKED }), {
      value: 7,
      timedOut: false,
    });
    assert.ok(performance.now() - start < 1000);
    assert.equal(region.view(Uint32Array, PARKED, 1)[0], 0, "the flag is down after the wait");
    return Promise.resolve();
  });
});

test("waitWordSync times out with the unchanged value, after spinning and sleeping", async () => {
  await withRegion("wtime", (region) => {
    region.publishWord(WORD, 3);
    assert.deepEqual(region.waitWordSync(WORD, 3, { spinNs: 1000, timeoutNs: 0 }), {
      value: 3,
      timedOut: true,
    });
    const start = performance.now();
    const result = region.waitWordSync(WORD, 3, { parkedOffset: PARKED, timeoutNs: 20_000_000 });
    assert.deepEqual(result, { value: 3, timedOut: true });
    assert.ok(performance.now() - start >= 19, "it slept for its 20 ms timeout");
    assert.equal(region.view(Uint32Array, PARKED, 1)[0], 0, "the flag is down after a timeout");
    return Promise.resolve();
  });
});

test("word methods refuse bad offsets, values and options, naming each", async () => {
  await withRegion("wbad", (region) => {
    const name = region.name;
    const offsetRange = (argument: string, received: string) =>
      new RegExp(
        `^Cannot publishWord on region ${name}: ${argument} must be a multiple of 4 from 0 to 60 ` +
          `\\(the payload is 64 bytes\\), received ${received}$`,
      );
    assert.throws(() => region.publishWord(2, 1), {
      name: "RangeError",
      message: offsetRange("wordOffset", "2"),
    });
    assert.throws(() => region.publishWord(64, 1), {
      name: "RangeError",
      message: offsetRange("wordOffset", "64"),
    });
    assert.throws(() => region.publishWord(-4, 1), RangeError);
    assert.throws(() => region.publishWord(0.5, 1), RangeError);
    assert.throws(() => region.publishWord(0, 1, 62), {
      message: offsetRange("parkedOffset", "62"),
    });
    assert.throws(() => region.publishWord(8, 1, 8), {
      name: "RangeError",
      message: `Cannot publishWord on region ${name}: parkedOffset must differ from wordOffset, ` +
        "received 8 for both",
    });
    assert.throws(() => region.publishWord("0" as unknown as number, 1), {
      name: "TypeError",
      message: `Cannot publishWord on region ${name}: wordOffset must be a number, received string`,
    });
    assert.throws(() => region.publishWord(0, 2 ** 32), {
      name: "RangeError",
      message: `Cannot publishWord on region ${name}: value must be an integer from 0 to ` +
        `4294967295, received ${2 ** 32}`,
    });
    assert.throws(() => region.publishWord(0, -1), /value must be an integer/);
    assert.throws(() => region.wakeWord(3), /Cannot wakeWord on region .*: wordOffset must be/);
    assert.throws(
      () => region.waitWordSync(0, 1.5),
      /waitWordSync .*: expected must be an integer/,
    );
    assert.throws(
      () => region.waitWordSync(0, 0, { parkedOffset: 0 }),
      /options.parkedOffset must differ/,
    );
    assert.throws(() => region.waitWordSync(0, 0, { spinNs: WORD_SPIN_NS_MAX + 1 }), {
      name: "RangeError",
      message: `Cannot waitWordSync on region ${name}: options.spinNs must be an integer from 0 ` +
        `to ${WORD_SPIN_NS_MAX}, received ${WORD_SPIN_NS_MAX + 1}`,
    });
    assert.throws(() => region.waitWordSync(0, 0, { timeoutNs: -1 }), {
      name: "RangeError",
      message: `Cannot waitWordSync on region ${name}: options.timeoutNs must be an integer >= 0 ` +
        "or Infinity, received -1",
    });
    assert.throws(() => region.waitWordSync(0, 0, { timeoutNs: NaN }), /timeoutNs must be/);
    assert.throws(
      () => region.waitWordSync(0, 0, null as unknown as object),
      {
        name: "TypeError",
        message: `Cannot waitWordSync on region ${name}: options must be an object, received null`,
      },
    );
    assert.deepEqual(
      [...region.view(Uint32Array, 0, 16)],
      new Array(16).fill(0),
      "nothing was written",
    );
    return Promise.resolve();
  });
});

test("word methods of a closed Region throw closed without reaching native code", async () => {
  const library = await openNativeLibrary();
  const region = Region.create(library, { payloadBytes: 64, instance: uniqueInstance("wclo") });
  region.close();
  const closed = (op: string) => (error: unknown) =>
    error instanceof SharedMemoryError && error.statusName === "closed" &&
    error.message.startsWith(`Cannot call ${op} on region ${region.name}: this Region is closed`);
  assert.throws(() => region.publishWord(0, 1), closed("publishWord"));
  assert.throws(() => region.wakeWord(0), closed("wakeWord"));
  assert.throws(() => region.waitWordSync(0, 0), closed("waitWordSync"));
  await assert.rejects(region.waitWord(0, 0), closed("waitWord"));
  library.close();
});

test("unlinkRegion removes a name once, then reports false; bad names are refused", async () => {
  const library = await openNativeLibrary();
  const region = Region.create(library, { payloadBytes: 16, instance: uniqueInstance("wunl") });
  try {
    assert.equal(regionExists(region.name), true);
    assert.equal(unlinkRegion(library, region.name), true);
    assert.equal(regionExists(region.name), false);
    assert.equal(unlinkRegion(library, region.name), false);
    region.bytes()[0] = 1; // the mapping stays valid
    assert.throws(() => unlinkRegion(library, "/etc/passwd"), {
      name: "RangeError",
      message:
        /^Cannot unlink a shared-memory region: name must match .*, received "\/etc\/passwd"$/,
    });
    assert.throws(() => unlinkRegion(library, 5 as unknown as string), {
      name: "TypeError",
      message: "Cannot unlink a shared-memory region: name must be a string, received number",
    });
    assert.throws(
      () => unlinkRegion({}, region.name),
      /Cannot unlink a shared-memory region: library must be a NativeLibrary/,
    );
  } finally {
    region.close();
    library.close();
  }
});

test("a Python process parked in wait_word is woken by publishWord, which sees it parked", async () => {
  await withRegion("wxpw", async (region) => {
    const flag = region.view(Uint32Array, PARKED, 1);
    const peer = runPython(PYTHON_WAITER, [region.name]);
    await until(() => Atomics.load(flag, 0) === 1, "the Python waiter to raise its parked flag");
    assert.equal(region.publishWord(WORD, 7, PARKED), true, "the waiter was parked");
    const { code, lines, errors } = await peer.done();
    assert.equal(code, 0, errors);
    assert.deepEqual(lines, ["7 False 0"], "woken with the new value, flag down, no timeout");
  });
});

test("waitWordSync wakes when a Python process publishes, and the publisher saw it parked", async () => {
  await withRegion("wxps", async (region) => {
    const peer = runPython(PYTHON_PUBLISHER, [region.name, "11"]);
    const result = region.waitWordSync(WORD, 0, { parkedOffset: PARKED, timeoutNs: 10e9 });
    assert.deepEqual(result, { value: 11, timedOut: false });
    const { code, lines, errors } = await peer.done();
    assert.equal(code, 0, errors);
    assert.deepEqual(lines, ["True"]);
    assert.equal(region.view(Uint32Array, PARKED, 1)[0], 0);
  });
});

test(
  "waitWord rejects under Bun, which has no nonblocking FFI calls",
  { skip: isDeno },
  async () => {
    await withRegion("wbun", async (region) => {
      await assert.rejects(region.waitWord(WORD, 0, { timeoutNs: 0 }), (error: unknown) => {
        assert.ok(error instanceof NativeLibraryError);
        assert.equal(error.statusName, "unsupported_runtime");
        assert.match(
          error.message,
          /^Cannot waitWord on region .*: nonblocking native waits need Deno/,
        );
        return true;
      });
    });
  },
);

test(
  "waitWord resolves without blocking the event loop when Python publishes",
  { skip: !isDeno },
  async () => {
    await withRegion("wxpd", async (region) => {
      const pending = region.waitWord(WORD, 0, { parkedOffset: PARKED, timeoutNs: 10e9 });
      let ticks = 0;
      const ticker = setInterval(() => (ticks += 1), 1);
      try {
        const peer = runPython(PYTHON_PUBLISHER, [region.name, "12"]);
        assert.deepEqual(await withTimeout(pending, 15_000, () => "waitWord"), {
          value: 12,
          timedOut: false,
        });
        const { code, lines, errors } = await peer.done();
        assert.equal(code, 0, errors);
        assert.deepEqual(lines, ["True"]);
        assert.ok(ticks > 0, "timers ran while the wait was pending");
      } finally {
        clearInterval(ticker);
      }
      assert.deepEqual(await region.waitWord(WORD, 12, { timeoutNs: 1_000_000 }), {
        value: 12,
        timedOut: true,
      });
    });
  },
);

test(
  "closing the Region ends a pending waitWord with a closed error",
  { skip: !isDeno },
  async () => {
    const library = await openNativeLibrary();
    const region = Region.create(library, { payloadBytes: 64, instance: uniqueInstance("wclw") });
    const flag = region.view(Uint32Array, PARKED, 1);
    const pending = region.waitWord(WORD, 0, { parkedOffset: PARKED });
    await until(() => Atomics.load(flag, 0) === 1, "the wait to park");
    region.close();
    await assert.rejects(
      withTimeout(pending, 5_000, () => "the closed wait to end"),
      (error: unknown) => error instanceof SharedMemoryError && error.statusName === "closed",
    );
    library.close();
  },
);

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { TEST_STATE_DIRECTORY } from "./_helpers.ts";

/** Runs scripts/doctor.ts on the runtime running this test (Bun or Deno). */
function doctor(args: string[], env: Record<string, string> = {}): { status: number | null; output: string } {
  const isDeno = "Deno" in globalThis;
  const runtimeArgs = isDeno ? ["run", "-A", "scripts/doctor.ts", ...args] : ["run", "scripts/doctor.ts", ...args];
  const result = spawnSync(process.execPath, runtimeArgs, {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...process.env, SNAKEPIT_STATE_DIR: TEST_STATE_DIRECTORY, NO_COLOR: "1", ...env },
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe("the doctor command", () => {
  test("on a set-up machine every check passes, each on its own line, and it exits 0", () => {
    const { status, output } = doctor([]);
    assert.equal(status, 0, output);
    for (const step of ["[1/5] Python interpreter and modules", "[2/5] native library", "[3/5] /dev/shm", "[4/5] hardware", "[5/5] worker round trip"]) {
      assert.ok(output.includes(step), `progress line "${step}" in:\n${output}`);
    }
    assert.match(output, /✓ PASS interpreter: Python 3\.\d+\.\d+ at .*\(found via project-venv\)/);
    assert.match(output, /✓ PASS worker round trip: a worker started and answered in \d+ ms/);
    assert.match(output, /✓ PASS hardware: .*device cpu/);
    assert.match(output, /All checks passed\./);
  });

  test("a broken interpreter fails with the fix and a non-zero exit", () => {
    const { status, output } = doctor([], { SNAKEPIT_PYTHON: "/nonexistent/python" });
    assert.equal(status, 1, output);
    assert.match(output, /✗ FAIL interpreter: .*\/nonexistent\/python.*not an executable file/);
    assert.match(output, /fix: .*make setup/);
    assert.match(output, /✗ FAIL worker round trip: skipped: no usable interpreter/);
    assert.match(output, /2 check\(s\) failed\./);
  });

  test("an interpreter lacking the worker's modules is named with the pip command that fixes it", () => {
    const { status, output } = doctor(["--python", "/usr/bin/python3"]);
    if (/PASS modules/.test(output)) return; // A system Python with every module installed is fine too.
    assert.equal(status, 1, output);
    assert.match(output, /✗ FAIL interpreter: \/usr\/bin\/python3 \(Python 3\.\d+\.\d+\) lacks .*\(found via option\)/);
    assert.match(output, /fix: \/usr\/bin\/python3 -m pip install /);
  });
});

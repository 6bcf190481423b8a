import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { torchView } from "../mod.ts";
import { PYTHON } from "./_helpers.ts";

function withFakePython(output: string, body: (python: string) => Promise<void>): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), "snakepit-torch-"));
  const python = join(directory, "python");
  writeFileSync(python, `#!/bin/sh\necho '${output}'\n`);
  chmodSync(python, 0o755);
  return body(python).finally(() => rmSync(directory, { recursive: true, force: true }));
}

describe("what torch sees", () => {
  test("the project venv answers; without torch installed it says so", async () => {
    const view = await torchView(PYTHON);
    assert.equal(typeof view.installed, "boolean");
    if (view.installed) assert.ok(Array.isArray(view.devices));
  });

  test("a CUDA build's devices are reported as torch names them", () =>
    withFakePython(
      '{"installed": true, "version": "2.5.1+cu124", "builtWithCuda": "12.4", "cudaAvailable": true, "devices": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memoryTotalBytes": 85520809984, "computeCapability": "9.0"}], "mpsAvailable": false}',
      async (python) => {
        const view = await torchView(python);
        assert.ok(view.installed);
        assert.equal(view.builtWithCuda, "12.4");
        assert.deepEqual(view.devices.map((device) => device.computeCapability), ["9.0"]);
      },
    ));

  test("an interpreter that answers nonsense is an error naming it", () =>
    withFakePython("not json", async (python) => {
      await assert.rejects(torchView(python), { message: new RegExp(`^Cannot ask torch: ${python} printed "not json`) });
    }));
});

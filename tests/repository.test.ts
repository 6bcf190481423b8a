// Repository-level guarantees: generated code matches proto/, and the package is JSR-publishable.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";

test("generated protobuf code matches proto/ (run `make proto` after editing a .proto)", () => {
  const directory = mkdtempSync(join(tmpdir(), "proto-drift-"));
  try {
    const python = join(directory, "py");
    const typescript = join(directory, "ts");
    execFileSync("bash", ["scripts/gen_proto.sh", python, typescript], { stdio: "pipe" });
    const committedPython = resolve("python/src/snakepit_bridge/_generated");
    for (const file of readdirSync(python).filter((name) => name.endsWith(".py") || name.endsWith(".pyi"))) {
      assert.equal(
        readFileSync(join(python, file), "utf8"),
        readFileSync(join(committedPython, file), "utf8"),
        `python/src/snakepit_bridge/_generated/${file} is stale`,
      );
    }
    assert.equal(
      readFileSync(join(typescript, "proto_descriptor.ts"), "utf8"),
      readFileSync(resolve("src/generated/proto_descriptor.ts"), "utf8"),
      "src/generated/proto_descriptor.ts is stale",
    );
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test("the package passes `deno publish --dry-run` (JSR readiness)", () => {
  const run = spawnSync(resolve("node_modules/.bin/deno"), ["publish", "--dry-run", "--allow-dirty"], {
    encoding: "utf8",
    env: { ...process.env, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
    timeout: 120_000,
  });
  const output = `${run.stdout}${run.stderr}`;
  assert.equal(run.status, 0, output);
  assert.match(output, /Dry run complete/);
});

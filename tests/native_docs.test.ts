// docs/native.md's TypeScript examples run, unchanged but for the import path, under the
// runtime running this test, and print what their comments say.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";

function examples(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

function run(code: string): string {
  const directory = mkdtempSync(join(resolve("tests"), ".native-example-"));
  try {
    const file = join(directory, "example.ts");
    writeFileSync(file, code.replaceAll('"@snakepit/snakepit"', JSON.stringify(resolve("mod.ts"))));
    const args = "Deno" in globalThis ? ["run", "-A", "--quiet", file] : ["run", file];
    return execFileSync(process.execPath, args, { encoding: "utf8", timeout: 60_000 });
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

test("docs/native.md's example runs and prints what its comments say", () => {
  const [example] = examples("docs/native.md");
  assert.ok(example, "docs/native.md has a ts example");
  const expected = [...example.matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map((match) =>
    match[1]
  );
  assert.deepEqual(expected, ["0 24", "false 6", "2", "false"]);
  assert.equal(run(example), expected.join("\n") + "\n");
});

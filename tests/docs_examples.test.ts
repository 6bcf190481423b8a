// Every TypeScript example in README.md, mod.ts and docs/*.md is run, unchanged but for the
// import path, under the runtime running this test, and its output checked against the values
// its `// comments` promise.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";

function examples(file: string, strip: (line: string) => string = (line) => line): string[] {
  const text = readFileSync(file, "utf8").split("\n").map(strip).join("\n");
  return [...text.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

function runExample(code: string): string {
  const directory = mkdtempSync(join(resolve("tests"), ".example-"));
  try {
    const file = join(directory, "example.ts");
    writeFileSync(file, code.replaceAll('"@snakepit/snakepit"', JSON.stringify(resolve("mod.ts"))));
    const isDeno = "Deno" in globalThis;
    const args = isDeno ? ["run", "-A", "--quiet", file] : ["run", file];
    return execFileSync(process.execPath, args, { encoding: "utf8", timeout: 60_000 });
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** The values promised by `console.log(...); // value` comments, in order. */
function promisedOutput(code: string): string[] {
  return [...code.matchAll(/console\.log\(.*\);?\s*\/\/ (.+)$/gm)].map((match) => match[1]!.split(":")[0]!.trim());
}

test("the README's usage example runs and prints what its comments say", () => {
  const [usage] = examples("README.md");
  assert.ok(usage, "README has a ts example");
  const output = runExample(usage);
  assert.match(output, /^3\n4611686018427387905n?\n0\n1\n2\nValueError raise ValueError/m);
});

test("the module doc example in mod.ts runs", () => {
  const [example] = examples("mod.ts", (line) => line.replace(/^ \* ?/, ""));
  assert.ok(example, "mod.ts has a ts example");
  const output = runExample(example.replace("size: 2,", 'size: 2, workerLogs: "silent",'));
  assert.match(output, /^3\n0\n1\n2\nValueError\n$/);
});

for (const guide of readdirSync("docs").filter((name) => name.endsWith(".md")).sort()) {
  const blocks = examples(join("docs", guide));
  blocks.forEach((code, index) => {
    test(`docs/${guide} example ${index + 1} runs and prints what its comments promise`, () => {
      const lines = runExample(code).trimEnd().split("\n");
      assert.deepEqual(lines, promisedOutput(code));
    });
  });
}

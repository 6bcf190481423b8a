import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { PYTHON_SOURCES, resolvePython, validatePython } from "../mod.ts";
import { PYTHON } from "./_helpers.ts";

/** Runs `body` in an empty directory with a controlled environment, then restores both. */
function inSandbox(env: Record<string, string | undefined>, body: (directory: string) => void): void {
  const directory = realpathSync(mkdtempSync(join(tmpdir(), "snakepit-pyenv-")));
  const previousDirectory = process.cwd();
  const previousEnv = { ...process.env };
  try {
    process.chdir(directory);
    for (const name of ["SNAKEPIT_PYTHON", "VIRTUAL_ENV", "CONDA_PREFIX"]) delete process.env[name];
    for (const [name, value] of Object.entries(env)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = typeof value === "string" ? value.replaceAll("$DIR", directory) : value;
    }
    body(directory);
  } finally {
    process.chdir(previousDirectory);
    for (const name of Object.keys(process.env)) if (!(name in previousEnv)) delete process.env[name];
    Object.assign(process.env, previousEnv);
    rmSync(directory, { recursive: true, force: true });
  }
}

function executable(path: string, text: string): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, 0o755);
}

describe("interpreter resolution order", () => {
  test("the documented order is option, SNAKEPIT_PYTHON, project venv, VIRTUAL_ENV, uv, poetry, conda, PATH", () => {
    assert.deepEqual(PYTHON_SOURCES, ["option", "SNAKEPIT_PYTHON", "project-venv", "VIRTUAL_ENV", "uv", "poetry", "conda", "PATH"]);
  });

  test("uv's interpreter is used when there is no venv, then poetry's, then the active conda environment's", () => {
    inSandbox({ PATH: "$DIR/tools:/usr/bin:/bin" }, (directory) => {
      const uvPython = join(directory, "uv-python/bin/python");
      const poetryPython = join(directory, "poetry-env/bin/python");
      const condaPython = join(directory, "conda/bin/python");
      for (const path of [uvPython, poetryPython, condaPython]) executable(path, "#!/bin/sh\n");
      executable(join(directory, "tools/uv"), `#!/bin/sh\n[ "$1 $2" = "python find" ] && echo ${uvPython}\n`);
      executable(join(directory, "tools/poetry"), `#!/bin/sh\n[ "$1 $2 $3" = "env info --executable" ] && echo ${poetryPython}\n`);
      process.env.CONDA_PREFIX = join(directory, "conda");
      assert.deepEqual(resolvePython(), { path: uvPython, source: "uv" });
      rmSync(join(directory, "tools/uv"));
      assert.deepEqual(resolvePython(), { path: poetryPython, source: "poetry" });
      rmSync(join(directory, "tools/poetry"));
      assert.deepEqual(resolvePython(), { path: condaPython, source: "conda" });
      delete process.env.CONDA_PREFIX;
      assert.equal(resolvePython().source, "PATH");
    });
  });

  test("the project venv and an active virtualenv come before the tools", () => {
    inSandbox({ PATH: "$DIR/tools:/usr/bin:/bin" }, (directory) => {
      executable(join(directory, "tools/uv"), "#!/bin/sh\necho /usr/bin/python3\n");
      executable(join(directory, "active/bin/python"), "#!/bin/sh\n");
      process.env.VIRTUAL_ENV = join(directory, "active");
      assert.equal(resolvePython().source, "VIRTUAL_ENV");
      executable(join(directory, ".venv/bin/python"), "#!/bin/sh\n");
      assert.deepEqual(resolvePython(), { path: join(directory, ".venv/bin/python"), source: "project-venv" });
    });
  });
});

describe("interpreter validation", () => {
  test("the project venv passes: Python 3.10+ with grpc, numpy, msgpack and snakepit_bridge", async () => {
    const verdict = await validatePython(PYTHON);
    assert.equal(verdict.ok, true, verdict.diagnosis);
    assert.match(verdict.version ?? "", /^3\.(1\d|[2-9]\d)\.\d+$/);
    assert.deepEqual([verdict.missingModules, verdict.diagnosis, verdict.fix], [[], undefined, undefined]);
  });

  test("a missing module is named, with the pip command that installs it", async () => {
    const verdict = await validatePython(PYTHON, { requiredModules: ["grpc", "surely_not_installed_module"] });
    assert.equal(verdict.ok, false);
    assert.deepEqual(verdict.missingModules, ["surely_not_installed_module"]);
    assert.match(verdict.diagnosis ?? "", /lacks surely_not_installed_module$/);
    assert.equal(verdict.fix, `${PYTHON} -m pip install surely_not_installed_module`);
  });

  test("an interpreter older than 3.10 is refused with the command that installs a newer one", async () => {
    const directory = mkdtempSync(join(tmpdir(), "snakepit-oldpy-"));
    try {
      const old = join(directory, "python");
      executable(old, `#!/bin/sh\necho '{"version": [3, 8, 18], "modules": {}}'\n`);
      const verdict = await validatePython(old);
      assert.equal(verdict.ok, false);
      assert.equal(verdict.version, "3.8.18");
      assert.equal(verdict.diagnosis, `${old} is Python 3.8.18; the workers need 3.10 or newer`);
      assert.match(verdict.fix ?? "", /uv python install 3\.12/);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });

  test("something that is not Python is diagnosed, not thrown", async () => {
    const verdict = await validatePython("/nonexistent/python");
    assert.equal(verdict.ok, false);
    assert.match(verdict.diagnosis ?? "", /^\/nonexistent\/python did not run as Python/);
    assert.match(verdict.fix ?? "", /make setup/);
  });

  test("invalid options fail fast naming the option and the value", async () => {
    await assert.rejects(validatePython(PYTHON, { timeoutMs: 0 }), {
      name: "RangeError",
      message: "Cannot validate Python: options.timeoutMs must be a positive number of milliseconds, received 0",
    });
  });
});

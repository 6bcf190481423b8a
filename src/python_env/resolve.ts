/**
 * Finds the Python interpreter that runs the workers.
 *
 * @module
 */
import { execFileSync } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve as resolvePath } from "node:path";
import process from "node:process";
import { ConfigurationError } from "../errors/pool_errors.ts";

/** Where the interpreter came from, in the order they are tried. */
export type PythonSource = "option" | "SNAKEPIT_PYTHON" | "project-venv" | "VIRTUAL_ENV" | "uv" | "poetry" | "conda" | "PATH";

/** Every source, in the order `resolvePython` tries them. */
export const PYTHON_SOURCES: readonly PythonSource[] = ["option", "SNAKEPIT_PYTHON", "project-venv", "VIRTUAL_ENV", "uv", "poetry", "conda", "PATH"];

const TOOL_TIMEOUT_MS = 5000;

/** A resolved interpreter. */
export interface ResolvedPython {
  path: string;
  source: PythonSource;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(command: string): string | undefined {
  for (const directory of (process.env.PATH ?? "").split(delimiter)) {
    if (directory && isExecutableFile(join(directory, command))) return join(directory, command);
  }
  return undefined;
}

/** The interpreter a project tool (uv, poetry) reports, when the tool is installed and answers. */
function fromTool(command: string, args: string[]): string | undefined {
  const tool = findOnPath(command);
  if (!tool) return undefined;
  try {
    const path = execFileSync(tool, args, { encoding: "utf8", timeout: TOOL_TIMEOUT_MS, stdio: ["ignore", "pipe", "ignore"] }).trim();
    return path && isExecutableFile(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

function explicit(path: string, source: PythonSource, what: string): ResolvedPython {
  const candidate = isAbsolute(path) || path.includes("/") ? resolvePath(path) : findOnPath(path);
  if (candidate && isExecutableFile(candidate)) return { path: candidate, source };
  throw new ConfigurationError(
    `Cannot start pool: ${what} is "${path}", which is not an executable file` +
      (candidate && candidate !== path ? ` (looked at ${candidate})` : ""),
    { suggestion: "point it at a Python 3.10+ interpreter, e.g. .venv/bin/python, or run `make setup`" },
  );
}

/**
 * Resolves the interpreter, in this order: the `pythonPath` option, `$SNAKEPIT_PYTHON`,
 * `.venv/bin/python` in the working directory, `$VIRTUAL_ENV/bin/python` (an active virtualenv),
 * uv's choice (`uv python find`), poetry's environment (`poetry env info --executable`), the
 * active conda environment (`$CONDA_PREFIX/bin/python`), then `python3` on `PATH`. uv and poetry
 * are asked only when installed.
 *
 * @example
 * ```ts
 * const { path, source } = resolvePython();
 * console.log(path, source); // e.g. /app/.venv/bin/python project-venv
 * ```
 *
 * @param pythonPath the pool's `pythonPath` option, when given
 * @throws ConfigurationError when an explicit choice does not exist, or nothing is found
 */
export function resolvePython(pythonPath?: string): ResolvedPython {
  if (pythonPath !== undefined) return explicit(pythonPath, "option", "options.pythonPath");
  const fromEnv = process.env.SNAKEPIT_PYTHON;
  if (fromEnv) return explicit(fromEnv, "SNAKEPIT_PYTHON", "$SNAKEPIT_PYTHON");
  const projectVenv = resolvePath(".venv/bin/python");
  if (isExecutableFile(projectVenv)) return { path: projectVenv, source: "project-venv" };
  const virtualEnv = process.env.VIRTUAL_ENV;
  if (virtualEnv && isExecutableFile(join(virtualEnv, "bin", "python"))) {
    return { path: join(virtualEnv, "bin", "python"), source: "VIRTUAL_ENV" };
  }
  const fromUv = fromTool("uv", ["python", "find"]);
  if (fromUv) return { path: fromUv, source: "uv" };
  const fromPoetry = fromTool("poetry", ["env", "info", "--executable"]);
  if (fromPoetry) return { path: fromPoetry, source: "poetry" };
  const condaPrefix = process.env.CONDA_PREFIX;
  if (condaPrefix && isExecutableFile(join(condaPrefix, "bin", "python"))) {
    return { path: join(condaPrefix, "bin", "python"), source: "conda" };
  }
  const onPath = findOnPath("python3");
  if (onPath) return { path: onPath, source: "PATH" };
  throw new ConfigurationError("Cannot start pool: no Python interpreter found", {
    suggestion: "set options.pythonPath or $SNAKEPIT_PYTHON, or create .venv with `make setup`",
  });
}

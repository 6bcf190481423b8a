/**
 * Finds the Python interpreter that runs the workers.
 *
 * @module
 */
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, isAbsolute, join, resolve as resolvePath } from "node:path";
import process from "node:process";
import { ConfigurationError } from "../errors/pool_errors.ts";

/** Where the interpreter came from, in the order they are tried. */
export type PythonSource = "option" | "SNAKEPIT_PYTHON" | "project-venv" | "VIRTUAL_ENV" | "PATH";

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
 * Resolves the interpreter: `pythonPath` option, then `$SNAKEPIT_PYTHON`, then `.venv/bin/python`
 * in the working directory, then `$VIRTUAL_ENV/bin/python`, then `python3` on `PATH`.
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
  const onPath = findOnPath("python3");
  if (onPath) return { path: onPath, source: "PATH" };
  throw new ConfigurationError("Cannot start pool: no Python interpreter found", {
    suggestion: "set options.pythonPath or $SNAKEPIT_PYTHON, or create .venv with `make setup`",
  });
}

/**
 * Validates an interpreter: Python 3.10 or newer, with the modules the workers need; says what
 * is wrong and the command that fixes it.
 *
 * @module
 */
import { execFile } from "node:child_process";
import { z } from "zod";
import { parseTelemetryOptions } from "../telemetry/_parse_options.ts";

/** Oldest Python the workers support. */
export const PYTHON_VERSION_MIN = [3, 10] as const;
/** Modules every worker needs (import names). */
export const REQUIRED_MODULES: readonly string[] = ["grpc", "numpy", "msgpack", "snakepit_bridge"];
/** Modules needed only for Arrow tables. */
export const ARROW_MODULES: readonly string[] = ["pyarrow"];

/** Package names to install for an import name, where they differ. */
const PACKAGE_OF: Record<string, string> = { grpc: "grpcio", snakepit_bridge: "-e python" };

/** Options of `validatePython`. */
export interface ValidatePythonOptions {
  /** Import names that must be importable. Default `REQUIRED_MODULES`. */
  requiredModules?: readonly string[];
  /** Also require pyarrow (for Arrow tables). Default false. */
  arrow?: boolean;
  /** How long the interpreter may take to answer. Default 15000 ms. */
  timeoutMs?: number;
}

/** The verdict on an interpreter. */
export interface PythonValidation {
  ok: boolean;
  path: string;
  /** `"3.12.3"`, or undefined when the interpreter did not run. */
  version: string | undefined;
  missingModules: string[];
  /** What is wrong, in a sentence; undefined when ok. */
  diagnosis: string | undefined;
  /** The command that fixes it; undefined when ok. */
  fix: string | undefined;
}

const optionsSchema = z.object({
  requiredModules: z.array(z.string().regex(/^[A-Za-z_][\w.]*$/, { message: "must be module names" }), {
    invalid_type_error: "must be an array of module names",
  }).optional(),
  arrow: z.boolean({ invalid_type_error: "must be a boolean" }).default(false),
  timeoutMs: z.number({ invalid_type_error: "must be a number of milliseconds" }).int({ message: "must be a whole number of milliseconds" })
    .min(1, { message: "must be a positive number of milliseconds" }).default(15_000),
}).strict();

// find_spec does not import the module: fast, and a module that fails at import is the worker's
// problem to report, with its traceback.
const PROBE = `
import importlib.util, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = importlib.util.find_spec(name) is not None
    except Exception:
        found[name] = False
print(json.dumps({"version": list(sys.version_info[:3]), "modules": found}))
`;

/**
 * Checks that `pythonPath` runs, is 3.10 or newer and has the required modules.
 *
 * @example
 * ```ts
 * const verdict = await validatePython(resolvePython().path);
 * if (!verdict.ok) console.error(verdict.diagnosis, "\nfix:", verdict.fix);
 * ```
 */
export async function validatePython(pythonPath: string, options: ValidatePythonOptions = {}): Promise<PythonValidation> {
  const parsed = parseTelemetryOptions(optionsSchema, options, "validate Python");
  const modules = [...(parsed.requiredModules ?? REQUIRED_MODULES), ...(parsed.arrow ? ARROW_MODULES : [])];
  const output = await new Promise<{ stdout: string; error: string | undefined }>((resolve) => {
    execFile(pythonPath, ["-c", PROBE, ...modules], { timeout: parsed.timeoutMs, encoding: "utf8" }, (error, stdout, stderr) => {
      resolve({ stdout, error: error ? `${error.message}${stderr ? `: ${stderr.trim()}` : ""}` : undefined });
    });
  });
  const failed = (diagnosis: string, fix: string, version?: string, missingModules: string[] = []): PythonValidation => ({
    ok: false,
    path: pythonPath,
    version,
    missingModules,
    diagnosis,
    fix,
  });
  let probe: { version: number[]; modules: Record<string, boolean> };
  try {
    if (output.error !== undefined) throw new Error(output.error);
    probe = JSON.parse(output.stdout.trim().split("\n").at(-1) ?? "");
  } catch (error) {
    return failed(
      `${pythonPath} did not run as Python (${error instanceof Error ? error.message.split("\n")[0] : String(error)})`,
      "create the project environment with `make setup`, or point $SNAKEPIT_PYTHON at a Python 3.10+ interpreter",
    );
  }
  const version = probe.version.join(".");
  const [major = 0, minor = 0] = probe.version;
  if (major < PYTHON_VERSION_MIN[0] || (major === PYTHON_VERSION_MIN[0] && minor < PYTHON_VERSION_MIN[1])) {
    return failed(
      `${pythonPath} is Python ${version}; the workers need ${PYTHON_VERSION_MIN.join(".")} or newer`,
      "uv python install 3.12 && uv venv --python 3.12 .venv && make setup",
      version,
    );
  }
  const missing = modules.filter((name) => !probe.modules[name]);
  if (missing.length > 0) {
    const packages = missing.map((name) => PACKAGE_OF[name] ?? name);
    return failed(
      `${pythonPath} (Python ${version}) lacks ${missing.join(", ")}`,
      `${pythonPath} -m pip install ${packages.join(" ")}`,
      version,
      missing,
    );
  }
  return { ok: true, path: pythonPath, version, missingModules: [], diagnosis: undefined, fix: undefined };
}

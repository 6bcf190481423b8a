/**
 * The Python environment: which interpreter runs the workers, whether it can, and the doctor.
 *
 * @example
 * ```ts
 * import { resolvePython, validatePython } from "@snakepit/snakepit";
 *
 * const { path, source } = resolvePython();
 * const verdict = await validatePython(path);
 * console.log(source, verdict.ok ? verdict.version : `${verdict.diagnosis}; fix: ${verdict.fix}`);
 * ```
 *
 * @module
 */
export { PYTHON_SOURCES, type PythonSource, resolvePython, type ResolvedPython } from "./resolve.ts";
export {
  ARROW_MODULES,
  PYTHON_VERSION_MIN,
  REQUIRED_MODULES,
  type PythonValidation,
  validatePython,
  type ValidatePythonOptions,
} from "./validate.ts";
export { type DoctorCheck, type DoctorOptions, runDoctor } from "./doctor.ts";

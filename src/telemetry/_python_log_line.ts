// Parses the worker's structured log lines (python/src/snakepit_bridge/log_records.py).

/** A Python log record as the worker writes it. */
export interface PythonLogRecord {
  level: "trace" | "debug" | "info" | "warn" | "error" | "fatal";
  message: string;
  logger: string;
  correlationId: string | undefined;
  traceparent: string | undefined;
  exception: string | undefined;
}

const LEVELS: Record<string, PythonLogRecord["level"]> = {
  debug: "debug",
  info: "info",
  warning: "warn",
  warn: "warn",
  error: "error",
  critical: "fatal",
  fatal: "fatal",
};

/** The record in `line`, or undefined when it is not one (plain stderr output). */
export function parsePythonLogLine(line: string): PythonLogRecord | undefined {
  if (!line.startsWith('{"snakepit":')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== "object") return undefined;
  const entry = value as Record<string, unknown>;
  if (entry.snakepit !== 1 || typeof entry.message !== "string") return undefined;
  return {
    level: LEVELS[String(entry.level)] ?? "info",
    message: entry.message,
    logger: typeof entry.logger === "string" ? entry.logger : "root",
    correlationId: typeof entry.correlation_id === "string" && entry.correlation_id ? entry.correlation_id : undefined,
    traceparent: typeof entry.traceparent === "string" && entry.traceparent ? entry.traceparent : undefined,
    exception: typeof entry.exception === "string" ? entry.exception : undefined,
  };
}

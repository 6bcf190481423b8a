import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import process from "node:process";
import { Registry } from "prom-client";
import { GpuProfiler, Pool, PoolMetrics } from "../mod.ts";
import { testPoolOptions } from "./_helpers.ts";

interface Dashboard {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
}

const dashboard: Dashboard = JSON.parse(readFileSync(resolve("docs/grafana-dashboard.json"), "utf8"));
const expressions = dashboard.panels.flatMap((panel) => panel.targets.map((target) => target.expr));

describe("the Grafana dashboard", () => {
  test("every metric it queries is one the library exports", async () => {
    const registry = new Registry();
    const metrics = new PoolMetrics({ registry });
    new GpuProfiler({ registry, nvidiaSmiPath: "/nonexistent" });
    await using pool = await Pool.start(testPoolOptions({ name: "dash" }));
    metrics.observe(pool);
    await pool.call("echo", { value: 1 });
    const exported = new Set([...(await registry.metrics()).matchAll(/^# TYPE (\w+) (\w+)$/gm)].flatMap(([, name, type]) =>
      type === "histogram" ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!]
    ));
    const queried = new Set(expressions.flatMap((expr) => [...expr.matchAll(/\bsnakepit_\w+/g)].map(([name]) => name)));
    assert.ok(queried.size >= 12, `the dashboard covers the metrics (${[...queried].join(", ")})`);
    for (const name of queried) assert.ok(exported.has(name), `${name} is exported`);
  });

  test("every query is valid PromQL (promtool check rules)", (t) => {
    const directory = mkdtempSync(join(tmpdir(), "snakepit-dash-"));
    try {
      const rules = expressions.map((expr, index) =>
        `      - record: dashboard:query_${index}\n        expr: ${JSON.stringify(expr.replaceAll("$__rate_interval", "5m").replaceAll("$pool", ".*"))}`
      );
      const path = join(directory, "rules.yml");
      writeFileSync(path, `groups:\n  - name: dashboard\n    rules:\n${rules.join("\n")}\n`);
      const check = spawnSync("promtool", ["check", "rules", path], { encoding: "utf8" });
      if (check.error) {
        if (process.env.CI === "true") throw new Error("promtool is not installed; `make setup` installs it");
        return t.skip("promtool is not installed (run `make setup`)");
      }
      assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

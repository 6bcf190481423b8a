// `bun run doctor` / `deno task doctor`: checks this machine can run workers; exits 1 with the fix
// when something is wrong. `--python PATH` checks a given interpreter.
import process from "node:process";
import { runDoctor } from "../src/python_env/doctor.ts";

const flag = process.argv.indexOf("--python");
const pythonPath = flag >= 0 ? process.argv[flag + 1] : undefined;
console.log("snakepit doctor\n");
const { ok } = await runDoctor({ pythonPath });
process.exit(ok ? 0 : 1);

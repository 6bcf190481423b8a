"""The bare mechanism of a subprocess bridge, as a baseline for bench/fast_lane.ts.

One JSON object a line on stdin, `{"id": ..., "tool": ..., "args": {...}}`; one reply a line on
stdout, `{"id": ..., "result": ...}`. Tools: `noop` returns null; `echo` decodes `args.value`
(base64) and returns it re-encoded, so that bytes pay what a JSON bridge makes them pay. Exits
when stdin closes.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any


def answer(request: dict[str, Any]) -> dict[str, Any]:
    tool = request.get("tool")
    if tool == "noop":
        return {"id": request["id"], "result": None}
    if tool == "echo":
        value = base64.b64decode(request["args"]["value"])
        return {"id": request["id"], "result": base64.b64encode(value).decode("ascii")}
    return {"id": request.get("id"), "error": f"unknown tool {tool!r}"}


def main() -> None:
    stdin = sys.stdin.buffer
    stdout = sys.stdout
    while True:
        line = stdin.readline()
        if not line:
            return
        stdout.write(json.dumps(answer(json.loads(line))) + "\n")
        stdout.flush()


if __name__ == "__main__":
    main()

"""A peer process for the cross-process shared-memory tests (Python's and TypeScript's).

Usage: ``python native_peer.py COMMAND NAME [ARGS...]``. Every command prints one line when it is
ready (so the caller can await it instead of sleeping) and exits 0 when done:

- ``read NAME LENGTH``: prints the first LENGTH payload bytes as hex.
- ``write NAME HEX``: writes the bytes at payload offset 0, prints ``written``.
- ``create INSTANCE SIZE HEX [forever]``: creates a region, writes HEX at offset 0, prints its
  name, then keeps it until stdin closes (so the caller can open it first), or until killed.
- ``churn NAME COUNT``: opens the region, retains and releases it COUNT times, prints ``churned``.
- ``hold NAME MODE [forever]``: opens the region, takes its lock (MODE shared or exclusive, or
  ``none``), prints ``held``, then waits for stdin to close; with ``forever``, until it is
  killed (some runtimes close a child's stdin just before they signal it).
- ``pulse NAME ROUNDS HOLD_MS``: for bench/. Prints ``ready``, then ROUNDS times takes the
  exclusive lock, writes the round number (u64 at payload byte 0), holds the lock HOLD_MS, writes
  the release time (``time.time_ns()``, u64 at byte 8), releases it, and waits until the caller
  acknowledges the round (u64 at byte 16). Talks through the region rather than stdout, whose
  delivery delay would swamp what is measured.
- ``reader NAME SECONDS HOLD_MS``: takes the shared lock over and over for SECONDS, holding it
  HOLD_MS each time and checking that the first 4096 payload bytes are all equal (a writer
  under the exclusive lock fills them with one value); prints ``ready`` first, then JSON.
"""

from __future__ import annotations

import json
import sys
import time

from snakepit_bridge import native
from snakepit_bridge.native_region import Region


def main(arguments: list[str]) -> int:
    command, target, *rest = arguments
    library = native.load()
    if command == "create":
        size, data = int(rest[0]), bytes.fromhex(rest[1])
        with Region.create(library, size, instance=target) as region:
            view = region.view()
            view[: len(data)] = data
            view.release()
            print(region.name, flush=True)
            while rest[2:] == ["forever"]:
                time.sleep(3600)
            sys.stdin.read()
        return 0
    with Region.open(library, target) as region:
        if command == "read":
            view = region.view()
            print(bytes(view[: int(rest[0])]).hex(), flush=True)
            view.release()
        elif command == "write":
            data = bytes.fromhex(rest[0])
            view = region.view()
            view[: len(data)] = data
            view.release()
            print("written", flush=True)
        elif command == "churn":
            for _ in range(int(rest[0])):
                region.retain()
                region.release()
            print("churned", flush=True)
        elif command == "hold":
            lock = None if rest[0] == "none" else getattr(region, f"lock_{rest[0]}")(timeout=10)
            print("held", flush=True)
            while rest[1:] == ["forever"]:
                time.sleep(3600)
            sys.stdin.read()
            if lock is not None:
                lock.release()
        elif command == "pulse":
            view = region.view()
            print("ready", flush=True)
            for round_number in range(1, int(rest[0]) + 1):
                lock = region.lock_exclusive(timeout=10)
                view[0:8] = round_number.to_bytes(8, "little")
                time.sleep(float(rest[1]) / 1000)
                view[8:16] = time.time_ns().to_bytes(8, "little")
                lock.release()
                deadline = time.monotonic() + 10
                while int.from_bytes(view[16:24], "little") < round_number:
                    if time.monotonic() > deadline:
                        raise SystemExit("the caller never acknowledged a round")
                    time.sleep(0.0001)
            view.release()
        elif command == "reader":
            print(json.dumps(read_loop(region, float(rest[0]), float(rest[1]) / 1000)), flush=True)
        else:
            raise SystemExit(f"unknown command {command}")
    return 0


def read_loop(region: Region, seconds: float, hold_seconds: float) -> dict[str, int]:
    view = region.view()
    print("ready", flush=True)
    reads = torn = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with region.lock_shared(timeout=5):
            block = bytes(view[:4096])
            if block.count(block[0]) != len(block):
                torn += 1
            reads += 1
            time.sleep(hold_seconds)
    view.release()
    return {"reads": reads, "torn": torn}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

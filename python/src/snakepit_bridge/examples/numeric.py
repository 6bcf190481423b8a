"""`NumericAdapter`: small numpy tools, one of each kind (plain, streaming, failing, cancellable).

Not thread-safe on purpose: its calls run one at a time, which is what the tests use to show
that Ping still answers while a tool holds the worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from snakepit_bridge.adapter import Adapter, tool
from snakepit_bridge.context import ToolContext

SLEEP_STEP_S = 0.01


class NumericAdapter(Adapter):
    thread_safe = False

    @tool
    def add(self, a: float, b: float) -> float:
        """Adds two numbers (ints stay ints)."""
        return a + b

    @tool
    def stats(self, values: list[float]) -> dict[str, float]:
        """Mean, standard deviation, minimum and maximum of a list of numbers."""
        if not values:
            raise ValueError("stats needs at least one value, got an empty list")
        array = np.asarray(values, dtype=np.float64)
        return {
            "mean": float(array.mean()),
            "std": float(array.std()),
            "min": float(array.min()),
            "max": float(array.max()),
        }

    @tool
    def matmul_trace(self, n: int, seed: int = 0) -> float:
        """Trace of A @ B for two seeded n-by-n random matrices (a small CPU workload)."""
        if n < 1:
            raise ValueError(f"n must be a positive integer, got {n}")
        generator = np.random.default_rng(seed)
        left = generator.standard_normal((n, n))
        right = generator.standard_normal((n, n))
        return float(np.trace(left @ right))

    @tool
    def power(self, base: int, exponent: int) -> int:
        """base ** exponent; results beyond 64 bits fail to encode, on purpose of the tests."""
        return base**exponent

    @tool
    def arange(self, n: int) -> np.ndarray:
        """numpy.arange(n) as an ndarray: a Tensor on the host (shared memory when large)."""
        return np.arange(n)

    @tool
    def count(self, n: int, delay_ms: float = 0, fail_at: int | None = None) -> Iterator[int]:
        """Streams 0..n-1, waiting delay_ms before each item; raises at item `fail_at` if set."""
        for index in range(n):
            if delay_ms > 0:
                time.sleep(delay_ms / 1000.0)
            if fail_at is not None and index == fail_at:
                raise RuntimeError(f"count failed on purpose at item {index}")
            yield index

    @tool
    def fail(self, message: str) -> None:
        """Raises ValueError(message) on purpose, caused by a KeyError (for error-path tests)."""
        try:
            {}["missing"]
        except KeyError as error:
            raise ValueError(message) from error

    @tool
    def sleep(self, seconds: float, ctx: ToolContext) -> float:
        """Sleeps in small steps; stops with a cancelled error as soon as the call is cancelled.

        Returns the seconds actually slept.
        """
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if ctx.cancelled:
                ctx.check_cancelled()
            time.sleep(SLEEP_STEP_S)
        return time.monotonic() - started

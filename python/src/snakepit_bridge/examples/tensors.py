"""`TensorAdapter`: tools that take and return numpy arrays, Arrow tables and pandas frames, used
by the zero-copy guide (docs/zero-copy.md), its tests and bench/zero_copy.ts."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np

from snakepit_bridge.adapter import Adapter, tool
from snakepit_bridge.context import ToolContext


class TensorAdapter(Adapter):
    thread_safe = False

    @tool
    def noop(self) -> None:
        """Does nothing (the baseline of the zero-copy benchmark)."""
        return None

    @tool
    def ramp(self) -> np.ndarray:
        """0 to 99,999 as float64, from a call without arguments (its regions are made only for
        the result)."""
        return np.arange(100_000, dtype=np.float64)

    @tool
    def inspect(self, x: np.ndarray) -> dict[str, Any]:
        """What arrived: dtype, shape, writeable, whether it views shared memory, and a checksum."""
        return {
            "dtype": str(x.dtype),
            "shape": list(x.shape),
            "writeable": bool(x.flags.writeable),
            "shared": _views_mmap(x),
            "sum": float(x.sum(dtype=np.float64)) if x.size else 0.0,
        }

    @tool
    def first(self, x: np.ndarray) -> float:
        """Reads one element: the handoff benchmark's tool."""
        return float(x.flat[0]) if x.size else 0.0

    @tool
    def echo(self, x: Any) -> Any:
        """Returns its argument (an array comes back as an array of the same size)."""
        return x

    @tool
    def ramps(self, n: int, count: int) -> Iterator[np.ndarray]:
        """Yields `count` float32 arrays of `n` elements: `np.arange(n) + i` for each i."""
        for index in range(count):
            yield np.arange(n, dtype=np.float32) + index

    @tool
    def scale(self, x: np.ndarray, factor: float) -> np.ndarray:
        """A new array: x * factor."""
        return x * factor

    @tool
    def fill(self, x: np.ndarray, value: float) -> None:
        """Writes `value` into every element, in place: the host sees it without a reply."""
        x[...] = value

    @tool
    def arange(self, n: int, dtype: str = "float64") -> np.ndarray:
        """np.arange(n) as `dtype`: one copy into shared memory when large."""
        return np.arange(n).astype(dtype)

    @tool
    def alloc_arange(self, n: int, dtype: str, ctx: ToolContext) -> np.ndarray:
        """np.arange(n) written straight into shared memory (`ctx.alloc_tensor`): no copy."""
        out = ctx.alloc_tensor((n,), dtype)
        out[...] = np.arange(n)
        return out

    @tool
    def table_summary(self, table: Any) -> dict[str, Any]:
        """Rows, column names and the sum of each numeric column of a pyarrow Table."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not isinstance(table, pa.Table):
            raise TypeError(f"table must arrive as a pyarrow.Table, got {type(table).__name__}")
        sums = {
            name: float(pc.sum(table[name]).as_py() or 0)
            for name in table.column_names
            if pa.types.is_integer(table[name].type) or pa.types.is_floating(table[name].type)
        }
        return {"rows": table.num_rows, "columns": table.column_names, "sums": sums}

    @tool
    def frame(self, n: int) -> Any:
        """A pandas DataFrame of n rows (it comes back as an Arrow table)."""
        import pandas as pd

        return pd.DataFrame(
            {"id": np.arange(n, dtype=np.int64), "value": np.arange(n, dtype=np.float64) / 2}
        )

    @tool
    def torch_sum(self, x: np.ndarray) -> float:
        """torch.from_dlpack on the argument (no copy), then its sum."""
        import torch

        return float(torch.from_dlpack(x).sum().item())

    @tool
    def alloc_then_die(self, n: int, ctx: ToolContext) -> None:
        """Allocates a result region, then SIGKILLs its own process (the leak test)."""
        ctx.alloc_tensor((n,), "float32")[...] = 1
        os.kill(os.getpid(), signal.SIGKILL)


def _views_mmap(array: np.ndarray) -> bool:
    import mmap

    base: Any = array
    while base is not None:
        if isinstance(base, mmap.mmap):
            return True
        if isinstance(base, memoryview):
            base = base.obj
            continue
        base = getattr(base, "base", None)
    return False

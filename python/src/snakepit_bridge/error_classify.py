"""Classification of a tool's exception: its wire `kind`, details, suggestion and retryability.

The exception's class decides first: `MemoryError` (numpy's allocation failures included) and
torch's `OutOfMemoryError` are out of memory, numpy's `UFuncTypeError` family is a dtype
mismatch, `ImportError` is an import failure. Only when the class is a generic one that numpy and
torch raise for everything (`ValueError`, `RuntimeError`, `TypeError`, `AssertionError`,
`IndexError`) is the message parsed (`error_messages`), and then only for the kinds that class
can carry. torch is never imported here: its classes are recognised by module and name, which is
also how an exception from a torch that is loaded in the worker is found.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from snakepit_bridge import error_messages

KIND_PYTHON = "python"
KIND_SHAPE_MISMATCH = "shape_mismatch"
KIND_DTYPE_MISMATCH = "dtype_mismatch"
KIND_DEVICE = "device"
KIND_OUT_OF_MEMORY = "out_of_memory"
KIND_IMPORT = "import"

# (module, qualified name) of classes recognised anywhere in an exception's MRO.
_TORCH_OUT_OF_MEMORY = {
    ("torch", "OutOfMemoryError"),
    ("torch.cuda", "OutOfMemoryError"),
    ("torch._C", "OutOfMemoryError"),
    ("torch._C", "_OutOfMemoryError"),
}
_TORCH_DEVICE = {
    ("torch", "AcceleratorError"),
    ("torch._C", "AcceleratorError"),
    ("torch.cuda", "CudaError"),
    ("torch.cuda", "DeferredCudaCallError"),
}
_NUMPY_DTYPE_NAMES = {"UFuncTypeError"}

# The generic classes whose messages are parsed, and which kinds each may turn out to be.
_PARSED: tuple[tuple[type[BaseException], tuple[str, ...]], ...] = (
    (RuntimeError, (KIND_OUT_OF_MEMORY, KIND_DEVICE, KIND_SHAPE_MISMATCH, KIND_DTYPE_MISMATCH)),
    (ValueError, (KIND_SHAPE_MISMATCH, KIND_DTYPE_MISMATCH, KIND_DEVICE)),
    (TypeError, (KIND_DTYPE_MISMATCH, KIND_SHAPE_MISMATCH)),
    (AssertionError, (KIND_DEVICE,)),
    (IndexError, (KIND_SHAPE_MISMATCH,)),
)
_PARSERS = {
    KIND_OUT_OF_MEMORY: error_messages.out_of_memory_details,
    KIND_DEVICE: error_messages.device_details,
    KIND_SHAPE_MISMATCH: error_messages.shape_details,
    KIND_DTYPE_MISMATCH: error_messages.dtype_details,
}

# Builtins that usually pass: a retry of an idempotent call may well succeed.
_TRANSIENT = (TimeoutError, ConnectionError)

_BUILTIN_SUGGESTIONS: tuple[tuple[type[BaseException], str], ...] = (
    (FileNotFoundError, "Check the path: it is resolved on the worker, from the worker's cwd"),
    (PermissionError, "Check the file permissions for the user the worker runs as"),
    (RecursionError, "The tool recursed too deeply; make it iterative or reduce the input depth"),
    (TimeoutError, "A timeout inside the tool; retry an idempotent call or raise its timeout"),
    (ConnectionError, "A connection inside the tool failed; retry an idempotent call"),
    (NotImplementedError, "The tool does not implement this case"),
)


@dataclass(frozen=True)
class Classification:
    """What the worker tells the host about an exception beyond its type and message."""

    kind: str = KIND_PYTHON
    details: dict[str, Any] = field(default_factory=dict)
    suggestion: str = ""
    retryable: bool = False


def classify_exception(exc: BaseException) -> Classification:
    """Classifies an exception raised by tool code (never raises)."""
    by_type = _by_type(exc)
    if by_type is not None:
        return by_type
    for base, kinds in _PARSED:
        if isinstance(exc, base):
            parsed = _by_message(exc, kinds)
            if parsed is not None:
                return parsed
            break
    return _builtin(exc)


def _class_names(exc: BaseException) -> set[tuple[str, str]]:
    return {(cls.__module__, cls.__qualname__) for cls in type(exc).__mro__}


def _by_type(exc: BaseException) -> Classification | None:
    names = _class_names(exc)
    if names & _TORCH_OUT_OF_MEMORY:
        details = error_messages.out_of_memory_details(_text(exc)) or {"device": "cuda"}
        return out_of_memory(_with_torch_memory(details))
    if isinstance(exc, MemoryError):
        return out_of_memory(_host_memory_details(exc))
    if names & _TORCH_DEVICE:
        details = error_messages.device_details(_text(exc)) or {"reason": "error", "device": "cuda"}
        return device(details)
    if any(name in _NUMPY_DTYPE_NAMES and module.startswith("numpy") for module, name in names):
        details = error_messages.dtype_details(_text(exc)) or {"expected": None, "got": None}
        return dtype_mismatch(details)
    if isinstance(exc, ImportError):
        module = exc.name or ""
        where = f"module {module!r}" if module else "the module"
        return Classification(
            kind=KIND_IMPORT,
            details={"module": module or None},
            suggestion=(
                f"Install the package that provides {where} into the interpreter the pool "
                "runs (its pythonPath), or fix the import"
            ),
        )
    return None


def _by_message(exc: BaseException, kinds: tuple[str, ...]) -> Classification | None:
    text = _text(exc)
    for kind in kinds:
        details = _PARSERS[kind](text)
        if details is None:
            continue
        if kind == KIND_OUT_OF_MEMORY:
            return out_of_memory(_with_torch_memory(details))
        if kind == KIND_DEVICE:
            return device(details)
        if kind == KIND_SHAPE_MISMATCH:
            return shape_mismatch(details)
        return dtype_mismatch(details)
    return None


def _builtin(exc: BaseException) -> Classification:
    suggestion = next((text for base, text in _BUILTIN_SUGGESTIONS if isinstance(exc, base)), "")
    return Classification(suggestion=suggestion, retryable=isinstance(exc, _TRANSIENT))


def out_of_memory(details: dict[str, Any]) -> Classification:
    on_host = details.get("device") == "cpu"
    suggestion = (
        "Reduce the batch or array size, process the data in chunks, or give the worker more memory"
        if on_host
        else "Reduce the batch size, free cached memory (torch.cuda.empty_cache(), drop unused "
        "tensors), or use a device with more memory"
    )
    return Classification(KIND_OUT_OF_MEMORY, details, suggestion)


def device(details: dict[str, Any]) -> Classification:
    reason = details.get("reason")
    if reason == "mismatch":
        suggestion = (
            "Move every tensor to the same device (tensor.to(device)) before combining them"
        )
    elif reason == "not_available":
        suggestion = (
            f"Device {details.get('device')!r} is not available on this worker: run on a host "
            "that has it, or fall back to the CPU"
        )
    else:
        suggestion = "The accelerator reported an error; the device may need a worker restart"
    return Classification(KIND_DEVICE, details, suggestion)


def shape_mismatch(details: dict[str, Any]) -> Classification:
    expected, got = details.get("expected"), details.get("got")
    dimension = details.get("dimension")
    parts = []
    if expected is not None and got is not None:
        parts.append(
            f"expected a shape compatible with {_shape_text(expected)}, got {_shape_text(got)}"
        )
    elif expected is not None:
        parts.append(f"the target shape is {_shape_text(expected)}")
    if dimension is not None:
        parts.append(f"dimension {dimension} differs")
    reason = "; ".join(parts) if parts else "the operands' shapes do not fit"
    return Classification(
        KIND_SHAPE_MISMATCH,
        details,
        f"Check the input shapes ({reason}); reshape, transpose or slice the input to match",
    )


def dtype_mismatch(details: dict[str, Any]) -> Classification:
    expected = details.get("expected")
    target = f" to {expected}" if expected else " to a common dtype"
    return Classification(
        KIND_DTYPE_MISMATCH,
        details,
        f"Convert the input{target} before the call (e.g. array.astype(...) or tensor.to(...))",
    )


def _shape_text(shape: list[int]) -> str:
    return "(" + ", ".join(str(size) for size in shape) + ("," if len(shape) == 1 else "") + ")"


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - an unprintable exception simply parses as nothing
        return ""


def _host_memory_details(exc: MemoryError) -> dict[str, Any]:
    # numpy's allocation failure (_ArrayMemoryError) knows exactly what it asked for.
    requested = getattr(exc, "_total_size", None)
    return {
        "device": "cpu",
        "requested_bytes": requested if isinstance(requested, int) else None,
        "available_bytes": host_available_bytes(),
        "total_bytes": None,
    }


def host_available_bytes() -> int | None:
    """`MemAvailable` from /proc/meminfo (Linux), or None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _with_torch_memory(details: dict[str, Any]) -> dict[str, Any]:
    """Adds torch's own memory statistics for the device, when torch is loaded in this worker."""
    torch = sys.modules.get("torch")
    device_name = str(details.get("device", ""))
    if torch is None or not device_name.startswith("cuda"):
        return details
    try:
        cuda = torch.cuda
        if not cuda.is_available():
            return details
        index = int(device_name.split(":")[1]) if ":" in device_name else cuda.current_device()
        free, total = cuda.mem_get_info(index)
        stats = {
            "allocated_bytes": int(cuda.memory_allocated(index)),
            "reserved_bytes": int(cuda.memory_reserved(index)),
            "max_allocated_bytes": int(cuda.max_memory_allocated(index)),
        }
        return {
            **details,
            "available_bytes": int(free),
            "total_bytes": int(total),
            "memory_stats": stats,
        }
    except Exception:  # noqa: BLE001 - statistics are a bonus; the error must still be reported
        return details

"""Parsers for the messages numpy and torch write when shapes, dtypes, devices or memory fail.

These are the fallback of classification (`error_classify`): used only when the exception's
class says nothing more specific than `ValueError` / `RuntimeError` / `TypeError`. Each parser
returns the details it recognised, or None; none of them raises, whatever the text.
"""

from __future__ import annotations

import re
from typing import Any

# Longer messages are cut before matching: the patterns look at the head of a message, and a
# regular expression over megabytes of text would make the error path slow.
PARSE_CHARS_MAX = 4096

# Numbers separated by commas: with optional separators, "(123" could be split a thousand ways
# and a failing match would backtrack through every one of them.
_NUMBERS = r"\s*(?:-?\d+\s*(?:,\s*-?\d+\s*)*,?\s*)?"
_SHAPE = rf"\({_NUMBERS}\)|\[{_NUMBERS}\]"

_SIZE_UNITS = {
    "b": 1,
    "bytes": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = r"(\d+(?:\.\d+)?)\s*(TiB|GiB|MiB|KiB|TB|GB|MB|KB|bytes|B)\b"


def parse_shape(text: str) -> list[int] | None:
    """`(2, 3)`, `(2,3)`, `[2, 3]`, `(3,)` or `2x3` as a list of ints; None if it is not one."""
    stripped = text.strip()
    if re.fullmatch(r"\d+(?:x\d+)+", stripped):
        return [int(part) for part in stripped.split("x")]
    if not re.fullmatch(_SHAPE, stripped):
        return None
    return [int(part) for part in re.findall(r"-?\d+", stripped)]


def parse_size_bytes(number: str, unit: str) -> int:
    """`("2.00", "GiB")` as bytes; binary units (GiB) are powers of 2, SI units (GB) of 10."""
    return int(float(number) * _SIZE_UNITS[unit.lower()])


def _first_broadcast_mismatch(left: list[int], right: list[int]) -> int | None:
    """The index, in the broadcast result, of the trailing-most dimension that cannot broadcast."""
    rank = max(len(left), len(right))
    for offset in range(1, min(len(left), len(right)) + 1):
        a, b = left[-offset], right[-offset]
        if a != b and a != 1 and b != 1:
            return rank - offset
    return None


def shape_details(message: str) -> dict[str, Any] | None:
    """Expected and received shapes (and the mismatching dimension) from a shape error message."""
    text = message[:PARSE_CHARS_MAX]
    # numpy dot: "shapes (2,3) and (4,5) not aligned: 3 (dim 1) != 4 (dim 0)"
    match = re.search(rf"shapes ({_SHAPE}) and ({_SHAPE}) not aligned: \d+ \(dim (\d+)\)", text)
    if match:
        return _shapes("dot", match.group(1), match.group(2), int(match.group(3)))
    # numpy broadcasting: "operands could not be broadcast together with shapes (2,3) (4,5)"
    match = re.search(r"could not be broadcast together with (?:remapped )?shapes", text)
    if match:
        found = re.findall(_SHAPE, text[match.end() :])
        if len(found) >= 2:
            left, right = parse_shape(found[0]) or [], parse_shape(found[1]) or []
            return _shapes("broadcast", found[0], found[1], _first_broadcast_mismatch(left, right))
    # numpy assignment: "could not broadcast input array from shape (3,) into shape (2,)"
    match = re.search(rf"from shape ({_SHAPE}) into shape ({_SHAPE})", text)
    if match:
        return _shapes("assign", match.group(2), match.group(1), None)
    # numpy reshape: "cannot reshape array of size 3 into shape (2,2)"
    match = re.search(rf"cannot reshape array of size (\d+) into shape ({_SHAPE})", text)
    if match:
        return {**_shapes("reshape", match.group(2), None, None), "got_size": int(match.group(1))}
    # torch linear algebra: "mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"
    match = re.search(r"shapes cannot be multiplied \((\d+(?:x\d+)+) and (\d+(?:x\d+)+)\)", text)
    if match:
        left = parse_shape(match.group(1)) or []
        return _shapes("matmul", match.group(1), match.group(2), max(len(left) - 1, 0))
    # torch broadcasting: "The size of tensor a (3) must match the size of tensor b (4) at
    # non-singleton dimension 1"
    match = re.search(
        r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at "
        r"non-singleton dimension (\d+)",
        text,
    )
    if match:
        return {
            "operation": "broadcast",
            "expected": None,
            "got": None,
            "dimension": int(match.group(3)),
            "expected_size": int(match.group(1)),
            "got_size": int(match.group(2)),
        }
    # torch view/reshape: "shape '[2, 2]' is invalid for input of size 3"
    match = re.search(rf"shape '({_SHAPE})' is invalid for input of size (\d+)", text)
    if match:
        return {**_shapes("reshape", match.group(1), None, None), "got_size": int(match.group(2))}
    # numpy gufuncs (matmul): "Input operand 1 has a mismatch in its core dimension 0, ...
    # (size 4 is different from 3)"
    match = re.search(
        r"mismatch in its core dimension (\d+).*\(size (\d+) is different from (\d+)\)", text
    )
    if match:
        return {
            "operation": "matmul",
            "expected": None,
            "got": None,
            "dimension": int(match.group(1)),
            "expected_size": int(match.group(3)),
            "got_size": int(match.group(2)),
        }
    return None


def _shapes(
    operation: str, expected: str, got: str | None, dimension: int | None
) -> dict[str, Any]:
    return {
        "operation": operation,
        "expected": parse_shape(expected),
        "got": parse_shape(got) if got is not None else None,
        "dimension": dimension,
    }


def _dtype_name(text: str) -> str:
    # numpy writes dtype('float64'); the name inside is what users type.
    match = re.fullmatch(r"dtype\('([^']*)'\)", text.strip())
    return match.group(1) if match else text.strip()


def dtype_details(message: str) -> dict[str, Any] | None:
    """Expected and received dtypes from a dtype error message."""
    text = message[:PARSE_CHARS_MAX]
    # numpy casting: "Cannot cast ufunc 'add' output from dtype('float64') to dtype('int64')
    # with casting rule 'same_kind'" and "Cannot cast array data from dtype('float64') to
    # dtype('int8') according to the rule 'safe'"
    match = re.search(r"Cannot cast .*?from (dtype\('[^']*'\)) to (dtype\('[^']*'\))", text)
    if match:
        return {"expected": _dtype_name(match.group(2)), "got": _dtype_name(match.group(1))}
    # numpy ufunc loops: "ufunc 'add' did not contain a loop with signature matching types
    # (dtype('<U1'), dtype('int64')) -> None"
    match = re.search(r"did not contain a loop with signature matching types \((.*?)\) ->", text)
    if match:
        found = [_dtype_name(name) for name in re.findall(r"dtype\('[^']*'\)", match.group(1))]
        return {"expected": None, "got": None, "dtypes": found}
    # torch: "expected scalar type Float but found Double"
    match = re.search(r"expected scalar type (\w+) but found (\w+)", text)
    if match:
        return {"expected": match.group(1), "got": match.group(2)}
    # torch losses: "Found dtype Double but expected Float"
    match = re.search(r"Found dtype (\w+) but expected (\w+)", text)
    if match:
        return {"expected": match.group(2), "got": match.group(1)}
    # torch matmul: "expected m1 and m2 to have the same dtype, but got: float != double"
    match = re.search(r"to have the same dtype, but got: (\w+) != (\w+)", text)
    if match:
        return {"expected": match.group(1), "got": match.group(2)}
    # torch in-place ops: "result type Float can't be cast to the desired output type Long"
    match = re.search(r"result type (\w+) can't be cast to the desired output type (\w+)", text)
    if match:
        return {"expected": match.group(2), "got": match.group(1)}
    return None


_DEVICE = r"(?:cuda|cpu|mps|xpu|hip|meta)(?::\d+)?"

_DEVICE_UNAVAILABLE = (
    (re.compile(r"Torch not compiled with CUDA enabled"), "cuda"),
    (re.compile(r"No CUDA GPUs are available"), "cuda"),
    (re.compile(r"Found no NVIDIA driver"), "cuda"),
    (re.compile(r"CUDA driver version is insufficient"), "cuda"),
    (re.compile(r"CUDA error: invalid device ordinal"), "cuda"),
    (re.compile(r"CUDA error: no CUDA-capable device is detected"), "cuda"),
    (re.compile(r"MPS backend is not available|The MPS backend is supported on MacOS"), "mps"),
)


def device_details(message: str) -> dict[str, Any] | None:
    """The device problem in a message: a mismatch between devices, or a missing device."""
    text = message[:PARSE_CHARS_MAX]
    # torch: "Expected all tensors to be on the same device, but found at least two devices,
    # cuda:0 and cpu!"
    match = re.search(
        rf"Expected all tensors to be on the same device.*?devices?,? ({_DEVICE}) and ({_DEVICE})",
        text,
    )
    if match:
        devices = [match.group(1), match.group(2)]
        return {"reason": "mismatch", "device": devices[0], "devices": devices}
    # torch (older): "Expected object of device type cuda but got device type cpu"
    match = re.search(
        rf"Expected object of device type ({_DEVICE}) but got device type ({_DEVICE})", text
    )
    if match:
        return {
            "reason": "mismatch",
            "device": match.group(1),
            "devices": [match.group(1), match.group(2)],
        }
    for pattern, device in _DEVICE_UNAVAILABLE:
        if pattern.search(text):
            return {"reason": "not_available", "device": device, "devices": [device]}
    # Any other accelerator runtime error: "CUDA error: device-side assert triggered".
    match = re.search(r"\b(CUDA|HIP|MPS|XPU) error\b", text)
    if match:
        device = "cuda" if match.group(1) in ("CUDA", "HIP") else match.group(1).lower()
        return {"reason": "error", "device": device, "devices": [device]}
    return None


_GPU_OOM = re.compile(r"\b(CUDA|HIP) out of memory|\b(?:CUDA|HIP) error: out of memory")


def out_of_memory_details(message: str) -> dict[str, Any] | None:
    """Device and bytes (requested, available, total) from an accelerator out-of-memory message."""
    text = message[:PARSE_CHARS_MAX]
    if _GPU_OOM.search(text) or "CUBLAS_STATUS_ALLOC_FAILED" in text:
        gpu = re.search(r"GPU (\d+)", text)
        details: dict[str, Any] = {"device": f"cuda:{gpu.group(1)}" if gpu else "cuda"}
    elif re.search(r"MPS backend out of memory", text):
        details = {"device": "mps"}
    else:
        return None
    requested = re.search(rf"Tried to allocate {_SIZE}", text)
    details["requested_bytes"] = parse_size_bytes(*requested.groups()) if requested else None
    # Two formats: "(GPU 0; 15.78 GiB total capacity; ...; 1.02 GiB free; ...)" (torch < 2.1)
    # and "GPU 0 has a total capacity of 79.15 GiB of which 5.56 MiB is free." (later).
    total = re.search(rf"{_SIZE} total capacity", text) or re.search(
        rf"total capacity of {_SIZE}", text
    )
    free = re.search(rf"{_SIZE} free\b", text) or re.search(rf"of which {_SIZE} is free", text)
    details["total_bytes"] = parse_size_bytes(*total.groups()) if total else None
    details["available_bytes"] = parse_size_bytes(*free.groups()) if free else None
    return details

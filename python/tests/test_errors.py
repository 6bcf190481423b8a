"""error_payload: classification, frames, cause chains, notes and limits."""

from __future__ import annotations

import pytest

from snakepit_bridge.errors import (
    CAUSES_MAX,
    FRAMES_MAX,
    MESSAGE_BYTES_MAX,
    InvalidArgumentsError,
    SerializationError,
    ToolCancelled,
    ToolDeadlineExceeded,
    UnknownToolError,
    WorkerBusyError,
    classify,
    error_payload,
    truncate_utf8,
)


def raised(function):
    try:
        function()
    except BaseException as error:  # noqa: BLE001 - the tests want whatever was raised
        return error
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize(
    ("exception", "kind"),
    [
        (ValueError("x"), "python"),
        (ToolCancelled("x"), "cancelled"),
        (ToolDeadlineExceeded("x"), "deadline_exceeded"),
        (SerializationError("x"), "serialization"),
        (UnknownToolError("x", ["a"]), "unknown_tool"),
        (InvalidArgumentsError("x"), "invalid_arguments"),
        (WorkerBusyError("x"), "worker_busy"),
        (ModuleNotFoundError("x"), "import"),
        (KeyboardInterrupt(), "python"),
    ],
)
def test_kind_comes_from_the_exception_class(exception, kind):
    assert classify(exception) == kind
    assert error_payload(exception).kind == kind


def test_an_explicit_kind_overrides_the_class():
    assert error_payload(TypeError("bad"), kind="invalid_arguments").kind == "invalid_arguments"


def test_payload_names_type_module_and_message_and_is_not_retryable():
    class LocalError(Exception):
        pass

    payload = error_payload(LocalError("went wrong"))
    assert payload.python_type == LocalError.__qualname__
    assert payload.python_type.endswith("<locals>.LocalError")
    assert payload.python_module == __name__
    assert payload.message == "went wrong"
    assert payload.retryable is False
    assert payload.frames == []


def test_frames_run_innermost_last_with_file_line_function_and_source():
    def inner():
        raise ValueError("deep")

    def outer():
        inner()

    payload = error_payload(raised(outer))
    functions = [frame.function for frame in payload.frames]
    assert functions[-2:] == ["outer", "inner"]
    assert payload.frames[-1].source == 'raise ValueError("deep")'
    assert payload.frames[-1].file == __file__
    assert payload.frames[-1].line > 0


def test_frames_are_capped_keeping_the_innermost():
    def recurse(depth: int) -> None:
        if depth == 0:
            raise RuntimeError("bottom")
        recurse(depth - 1)

    payload = error_payload(raised(lambda: recurse(200)))
    assert len(payload.frames) == FRAMES_MAX
    assert payload.frames[-1].source == 'raise RuntimeError("bottom")'


def test_explicit_cause_and_implicit_context_are_both_reported_nearest_first():
    def chain():
        try:
            try:
                raise KeyError("first")
            except KeyError as key_error:
                raise OSError("second") from key_error
        except OSError:
            raise ValueError("third")  # noqa: B904 - the implicit context is what is tested

    payload = error_payload(raised(chain))
    assert [(c.relation, c.python_type, c.message) for c in payload.causes] == [
        ("context", "OSError", "second"),
        ("cause", "KeyError", "'first'"),
    ]
    assert payload.causes[1].frames[-1].source == 'raise KeyError("first")'


def test_suppressed_context_is_not_reported():
    def suppressed():
        try:
            raise KeyError("hidden")
        except KeyError:
            raise ValueError("shown") from None

    assert list(error_payload(raised(suppressed)).causes) == []


def test_cause_chains_are_bounded_and_cycles_do_not_loop():
    errors = [ValueError(f"e{index}") for index in range(20)]
    for error, cause in zip(errors, errors[1:]):
        error.__cause__ = cause
    assert len(error_payload(errors[0]).causes) == CAUSES_MAX

    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert [c.message for c in error_payload(first).causes] == ["b"]


def test_notes_are_carried():
    error = ValueError("x")
    error.add_note("while loading shard 3")
    error.add_note("hint: check the path")
    assert list(error_payload(error).notes) == ["while loading shard 3", "hint: check the path"]


def test_long_messages_are_truncated_to_8_kib_without_splitting_characters():
    payload = error_payload(ValueError("é" * 10_000))
    assert len(payload.message.encode()) <= MESSAGE_BYTES_MAX
    assert payload.message.endswith("... [truncated 11808 bytes]")
    assert truncate_utf8("short", 10) == "short"


def test_an_exception_whose_str_fails_still_becomes_a_payload():
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert error_payload(Unprintable()).message == f"<unprintable {Unprintable.__qualname__}>"


def test_unknown_tool_error_lists_the_available_tools_sorted():
    error = UnknownToolError("ad", ["sub", "add"])
    assert str(error) == "Unknown tool 'ad'; available tools: add, sub"
    assert error_payload(error).suggestion == "Call one of: add, sub"
    assert str(UnknownToolError("x", [])) == "Unknown tool 'x'; available tools: (none)"

"""Worker log records: JSON lines with the call's ids, which the host parses."""

from __future__ import annotations

import io
import json
import logging
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from snakepit_bridge import log_records

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture()
def captured() -> Any:
    stream = io.StringIO()
    handler = log_records.install(stream, logging.DEBUG)
    yield stream
    logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_level_logger_and_message(captured: io.StringIO) -> None:
    logging.getLogger("tests.demo").warning("two\nlines %d", 2)
    [record] = lines(captured)
    assert record["snakepit"] == 1
    assert record["level"] == "warning"
    assert record["logger"] == "tests.demo"
    assert record["message"] == "two\nlines 2"
    assert "correlation_id" not in record
    assert isinstance(record["time"], int)


def test_records_inside_a_bound_call_carry_its_correlation_id_and_traceparent(
    captured: io.StringIO,
) -> None:
    token = log_records.bind_call("corr-1", TRACEPARENT)
    try:
        logging.getLogger("t").info("inside")
    finally:
        log_records.unbind_call(token)
    logging.getLogger("t").info("outside")
    inside, outside = lines(captured)
    assert (inside["correlation_id"], inside["traceparent"]) == ("corr-1", TRACEPARENT)
    assert "correlation_id" not in outside


def test_bindings_do_not_leak_between_threads(captured: io.StringIO) -> None:
    token = log_records.bind_call("main-call", TRACEPARENT)
    try:
        thread = threading.Thread(target=lambda: logging.getLogger("t").info("other thread"))
        thread.start()
        thread.join(5)
    finally:
        log_records.unbind_call(token)
    [record] = lines(captured)
    assert "correlation_id" not in record


def test_exceptions_are_included_and_odd_arguments_never_break_formatting(
    captured: io.StringIO,
) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("t").exception("failed with %r", object())
    [record] = lines(captured)
    assert "ValueError: boom" in record["exception"]
    assert record["message"].startswith("failed with <object object")


def test_correlate_calls_binds_ids_for_the_admission_block_only(captured: io.StringIO) -> None:
    class FakeAdmission:
        def __init__(self, ctx: Any) -> None:
            self.ctx = ctx
            self.exited = False

        def __enter__(self) -> Any:
            return self.ctx

        def __exit__(self, *_: object) -> None:
            self.exited = True

    ctx = SimpleNamespace(correlation_id="corr-9", traceparent=TRACEPARENT)
    admission = FakeAdmission(ctx)
    servicer = SimpleNamespace(_admitted=lambda request, context: admission)
    log_records.correlate_calls(servicer)
    with servicer._admitted(None, None) as got:
        assert got is ctx
        assert log_records.current_call() == ("corr-9", TRACEPARENT)
    assert admission.exited
    assert log_records.current_call() is None


def test_text_format_is_available_for_humans(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(log_records.TEXT_FORMAT_ENV, "text")
    stream = io.StringIO()
    handler = log_records.install(stream, logging.INFO)
    try:
        logging.getLogger("t").info("plain")
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue().rstrip().endswith("INFO t: plain")

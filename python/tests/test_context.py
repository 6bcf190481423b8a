"""ToolContext cancellation and deadlines, and the bounded session store."""

from __future__ import annotations

import threading
import time

import pytest

from snakepit_bridge.context import SessionStore, ToolContext
from snakepit_bridge.errors import ToolCancelled, ToolDeadlineExceeded


def make_context(**fields) -> ToolContext:
    return ToolContext(request_id="r1", tool="t", **fields)


def test_a_fresh_context_is_not_cancelled():
    ctx = make_context()
    assert ctx.cancelled is False
    assert ctx.cancel_reason is None
    ctx.check_cancelled()


def test_cancel_sets_the_flag_once_and_check_cancelled_raises_tool_cancelled():
    ctx = make_context()
    assert ctx.cancel() is True
    assert ctx.cancel() is False
    assert ctx.cancelled and ctx.cancel_reason == "cancelled"
    with pytest.raises(ToolCancelled, match=r"Tool 't' \(request r1\) was cancelled"):
        ctx.check_cancelled()


def test_a_passed_deadline_cancels_with_deadline_exceeded():
    ctx = make_context(deadline_unix_ms=int(time.time() * 1000) - 1)
    assert ctx.cancelled
    assert ctx.cancel_reason == "deadline_exceeded"
    with pytest.raises(ToolDeadlineExceeded, match="passed its deadline"):
        ctx.check_cancelled()


def test_a_future_deadline_does_not_cancel_and_zero_means_none():
    assert not make_context(deadline_unix_ms=int(time.time() * 1000) + 60_000).cancelled
    assert make_context(deadline_unix_ms=0).seconds_until_deadline() is None


def test_cancel_callbacks_run_once_and_late_ones_run_at_once():
    ctx = make_context()
    calls: list[str] = []
    ctx.add_cancel_callback(lambda: calls.append("early"))
    removed = lambda: calls.append("removed")  # noqa: E731 - needs identity for removal
    ctx.add_cancel_callback(removed)
    ctx.remove_cancel_callback(removed)
    ctx.cancel()
    ctx.cancel()
    ctx.add_cancel_callback(lambda: calls.append("late"))
    assert calls == ["early", "late"]


def test_a_failing_callback_does_not_stop_the_others():
    ctx = make_context()
    calls: list[str] = []
    ctx.add_cancel_callback(lambda: 1 / 0)
    ctx.add_cancel_callback(lambda: calls.append("ran"))
    ctx.cancel()
    assert calls == ["ran"]


def test_wait_cancelled_wakes_on_cancel_and_returns_at_the_deadline():
    ctx = make_context()
    threading.Timer(0.05, ctx.cancel).start()
    started = time.monotonic()
    assert ctx.wait_cancelled(10) is True
    assert time.monotonic() - started < 5
    deadline_ctx = make_context(deadline_unix_ms=int(time.time() * 1000) + 50)
    assert deadline_ctx.wait_cancelled(10) is True


def test_sessions_persist_by_id_and_an_empty_id_gets_a_throwaway_dict():
    store = SessionStore()
    store.get("a")["k"] = 1
    assert store.get("a") == {"k": 1}
    store.get("")["k"] = 2
    assert store.get("") == {}
    assert len(store) == 1


def test_the_session_store_forgets_the_least_recently_used_session_past_its_bound():
    store = SessionStore(sessions_max=2)
    store.get("a")["v"] = "a"
    store.get("b")["v"] = "b"
    store.get("a")
    store.get("c")
    assert len(store) == 2
    assert store.get("a") == {"v": "a"}
    assert store.get("b") == {}, "b was the least recently used"
    with pytest.raises(ValueError, match="sessions_max must be at least 1"):
        SessionStore(sessions_max=0)

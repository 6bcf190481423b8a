"""The lane reader's adaptive spin budget."""

from __future__ import annotations

from snakepit_bridge.lane_spin import AdaptiveSpin


def test_each_spin_that_parks_halves_the_budget_down_to_parking_at_once() -> None:
    spin = AdaptiveSpin(50_000)
    spin.record(False)
    assert spin.budget_ns == 25_000
    for _ in range(2, AdaptiveSpin.PROBE_EVERY - 1):
        spin.record(False)
    assert spin.budget_ns == 0


def test_a_caught_request_or_a_probe_brings_the_full_budget_back() -> None:
    spin = AdaptiveSpin(50_000)
    for _ in range(1, AdaptiveSpin.PROBE_EVERY):
        spin.record(False)
    assert spin.budget_ns == 0
    spin.record(False)
    assert spin.budget_ns == 50_000, "every PROBE_EVERY-th failure probes with the full budget"
    spin.record(False)
    spin.record(True)
    assert spin.budget_ns == 50_000


def test_a_zero_budget_stays_zero() -> None:
    spin = AdaptiveSpin(0)
    spin.record(False)
    spin.record(True)
    assert spin.budget_ns == 0

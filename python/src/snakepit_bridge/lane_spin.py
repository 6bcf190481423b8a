"""`AdaptiveSpin`: the lane reader's spin budget, shortened while spins keep failing."""

from __future__ import annotations


class AdaptiveSpin:
    """The reader's spin budget: full while spins pay off, shrinking while they fail.

    A spin that ends in a park is worse than none when the host shares this worker's core
    (the scheduler puts the two on one core when they wake each other often): the host cannot
    publish while the worker spins. So each failed spin halves the budget, each spin that
    catches a request restores it, and every `PROBE_EVERY`-th wait after a failure probes with
    the full budget, so a caller that turns fast again gets the spin back within a few calls.
    """

    PROBE_EVERY = 16
    # Below this a spin cannot catch a host's turnaround; parking at once is cheaper.
    FLOOR_NS = 2_000

    __slots__ = ("budget_ns", "_full_ns", "_failures")

    def __init__(self, full_ns: int) -> None:
        self._full_ns = full_ns
        self.budget_ns = full_ns
        self._failures = 0

    def record(self, caught: bool) -> None:
        """Records whether the last wait ended within its spin (True) or parked."""
        if caught:
            self.budget_ns = self._full_ns
            self._failures = 0
            return
        self._failures += 1
        if self._failures % self.PROBE_EVERY == 0:
            self.budget_ns = self._full_ns
        else:
            half = self.budget_ns >> 1
            self.budget_ns = half if half >= self.FLOOR_NS else 0

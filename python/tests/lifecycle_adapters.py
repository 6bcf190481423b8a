"""An adapter that records its lifecycle hooks in a file (imported by worker processes)."""

from __future__ import annotations

import os

from snakepit_bridge.adapter import Adapter, tool


class RecordingAdapter(Adapter):
    """Appends "setup" and "teardown" to the file named by $SNAKEPIT_TEST_LIFECYCLE_FILE."""

    def setup(self) -> None:
        self._record("setup")

    def teardown(self) -> None:
        self._record("teardown")

    @tool
    def ping(self) -> str:
        """Returns "pong"."""
        return "pong"

    def _record(self, event: str) -> None:
        with open(os.environ["SNAKEPIT_TEST_LIFECYCLE_FILE"], "a") as record:
            record.write(event + "\n")

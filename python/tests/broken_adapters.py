"""Adapters that fail to start, each in a different way (imported by worker processes)."""

from __future__ import annotations

from snakepit_bridge.adapter import Adapter, tool


class FailingSetupAdapter(Adapter):
    def setup(self) -> None:
        raise RuntimeError("model weights not found at /nowhere")


class FailingInitAdapter(Adapter):
    def __init__(self) -> None:
        raise ValueError("bad configuration")


class NotAnAdapter:
    """A class that forgot to subclass Adapter."""


class DuplicateToolAdapter(Adapter):
    @tool(name="same")
    def first(self) -> int:
        """First."""
        return 1

    @tool(name="same")
    def second(self) -> int:
        """Second."""
        return 2

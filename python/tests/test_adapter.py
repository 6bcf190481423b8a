"""@tool and tool discovery: names, docs, signatures, kinds of function, ctx injection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from snakepit_bridge.adapter import Adapter, discover_tools, tool
from snakepit_bridge.context import ToolContext


class Sample(Adapter):
    @tool
    def plain(self, x: float, *, scale: float = 1.0) -> float:
        """Scales x."""
        return x * scale

    @tool(name="renamed", description="Custom description.")
    def original(self) -> None:
        """Ignored docstring."""

    @tool
    async def coroutine(self, value: str) -> str:
        return value

    @tool
    def generator(self, n: int) -> Iterator[int]:
        """Yields."""
        yield from range(n)

    @tool
    async def async_generator(self, n: int) -> AsyncIterator[int]:
        """Yields asynchronously."""
        for index in range(n):
            yield index

    @tool
    def with_context(self, value: int, ctx: ToolContext, **extra: object) -> int:
        """Uses ctx."""
        return value

    @tool
    @staticmethod
    def static(a: int) -> int:
        """A static tool."""
        return a

    def not_a_tool(self) -> None:
        """Undecorated methods are not served."""


def test_only_decorated_methods_are_tools_and_names_can_be_overridden():
    tools = discover_tools(Sample())
    assert sorted(tools) == [
        "async_generator", "coroutine", "generator", "plain", "renamed", "static", "with_context",
    ]  # fmt: skip


def test_tools_describe_their_docstring_signature_and_parameters():
    plain = discover_tools(Sample())["plain"]
    assert plain.doc == "Scales x."
    assert plain.signature_text == "(x: float, *, scale: float = 1.0) -> float"
    assert plain.returns == "float"
    rows = [(p.name, p.kind, p.annotation, p.required, p.default_repr) for p in plain.parameters]
    assert rows == [
        ("x", "positional_or_keyword", "float", True, ""),
        ("scale", "keyword_only", "float", False, "1.0"),
    ]
    assert plain.function(x=2.0, scale=3.0) == 6.0


def test_description_overrides_the_docstring_and_missing_docstrings_are_empty():
    tools = discover_tools(Sample())
    assert tools["renamed"].doc == "Custom description."
    assert tools["coroutine"].doc == ""


@pytest.mark.parametrize(
    ("name", "streaming", "is_async"),
    [
        ("plain", False, False),
        ("coroutine", False, True),
        ("generator", True, False),
        ("async_generator", True, True),
        ("static", False, False),
    ],
)
def test_streaming_and_async_flags_follow_the_kind_of_function(name, streaming, is_async):
    described = discover_tools(Sample())[name]
    assert (described.streaming, described.is_async) == (streaming, is_async)


def test_ctx_is_injected_not_declared_to_the_host():
    described = discover_tools(Sample())["with_context"]
    assert described.accepts_context
    assert described.signature_text == "(value: int, **extra: object) -> int"
    assert [p.name for p in described.parameters] == ["value", "extra"]
    assert described.parameters[1].kind == "var_keyword"
    assert described.parameters[1].required is False
    assert not discover_tools(Sample())["plain"].accepts_context


def test_binding_rejects_missing_and_unexpected_arguments():
    plain = discover_tools(Sample())["plain"]
    plain.bind({"x": 1})
    with pytest.raises(TypeError, match="missing a required argument: 'x'"):
        plain.bind({})
    with pytest.raises(TypeError, match="unexpected keyword argument 'y'"):
        plain.bind({"x": 1, "y": 2})


def test_postponed_annotations_are_evaluated_and_unresolvable_ones_kept_as_text():
    # This module uses `from __future__ import annotations`: every annotation is a string.
    class Forward(Adapter):
        @tool
        def known(self, x: int) -> list[int]:
            """Known."""
            return [x]

        @tool
        def unknown(self, x: NoSuchType) -> None:  # noqa: F821 - unresolvable on purpose
            """Unknown."""

    tools = discover_tools(Forward())
    assert tools["known"].signature_text == "(x: int) -> list[int]"
    assert tools["unknown"].parameters[0].annotation == "NoSuchType"
    assert tools["unknown"].signature_text == "(x: NoSuchType) -> None"


def test_two_tools_with_one_name_are_refused():
    class Clash(Adapter):
        @tool(name="same")
        def a(self) -> None:
            """A."""

        @tool(name="same")
        def b(self) -> None:
            """B."""

    with pytest.raises(ValueError, match="defines tool 'same' twice"):
        discover_tools(Clash())


def test_tools_are_inherited_and_an_undecorated_override_stops_being_a_tool():
    class Child(Sample):
        def plain(self, x: float, *, scale: float = 1.0) -> float:
            return x

    tools = discover_tools(Child())
    assert "generator" in tools
    assert "plain" not in tools


@pytest.mark.parametrize("bad_name", ["", " padded ", 3])
def test_tool_names_must_be_non_empty_strings_without_surrounding_spaces(bad_name):
    with pytest.raises(ValueError, match="@tool name must be a non-empty string"):
        tool(name=bad_name)


def test_adapters_default_to_not_thread_safe_with_no_op_lifecycle_hooks():
    adapter = Adapter()
    assert Adapter.thread_safe is False
    adapter.setup()
    adapter.teardown()

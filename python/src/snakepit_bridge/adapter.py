"""`Adapter`, the `@tool` decorator, and discovery of an adapter's tools.

An adapter is a class whose `@tool` methods a worker serves:

    class Math(Adapter):
        @tool
        def add(self, a: float, b: float) -> float:
            \"\"\"Adds two numbers.\"\"\"
            return a + b

Tools may be plain functions, `async def` coroutines, generators (streaming) or async
generators. A tool that declares a parameter named `ctx` receives the call's `ToolContext`;
`ctx` is not part of the signature the host sees.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, overload

CONTEXT_PARAMETER = "ctx"
DEFAULT_REPR_CHARS_MAX = 200

_TOOL_MARKER = "__snakepit_tool__"

FunctionT = TypeVar("FunctionT", bound=Callable[..., Any])


class Adapter:
    """Base class of the objects a worker serves.

    `thread_safe = True` lets the worker run several tools of one instance at once; otherwise
    calls run one at a time. `setup` runs once after construction, before the worker reports
    ready; `teardown` runs once when the worker stops.
    """

    thread_safe: ClassVar[bool] = False

    def setup(self) -> None:
        """Prepares resources (load models, open files); failures abort the worker's start."""

    def teardown(self) -> None:
        """Releases what `setup` acquired; called once on a graceful stop."""


@dataclass(frozen=True)
class ToolOptions:
    name: str | None
    description: str | None


@overload
def tool(function: FunctionT, /) -> FunctionT: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None
) -> Callable[[FunctionT], FunctionT]: ...
def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Any:
    """Marks a method as a tool, as `@tool` or `@tool(name=..., description=...)`.

    `name` defaults to the function's name; `description` defaults to its docstring. The
    function itself is returned unchanged, so it stays callable as an ordinary method.
    """
    if name is not None and (not isinstance(name, str) or not name or name != name.strip()):
        raise ValueError(f"@tool name must be a non-empty string without spaces, got {name!r}")

    def mark(target: FunctionT) -> FunctionT:
        inner = target.__func__ if isinstance(target, (staticmethod, classmethod)) else target
        if not callable(inner):
            raise TypeError(f"@tool applies to functions, got {type(target).__name__}")
        setattr(inner, _TOOL_MARKER, ToolOptions(name=name, description=description))
        return target

    if function is not None:
        return mark(function)
    return mark


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    kind: str
    annotation: str
    required: bool
    default_repr: str


@dataclass(frozen=True)
class Tool:
    """A discovered tool: what the host sees (`Describe`) and what the worker calls."""

    name: str
    function: Callable[..., Any]
    doc: str
    signature: inspect.Signature
    parameters: tuple[ParameterSpec, ...]
    returns: str
    streaming: bool
    is_async: bool
    accepts_context: bool
    # (allowed names, required names) of a plain signature, or False: see bind().
    plain_names: tuple[frozenset[str], frozenset[str]] | bool = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain_names", _plain_parameter_names(self.signature))

    @property
    def signature_text(self) -> str:
        return str(self.signature)

    def bind(self, arguments: Mapping[str, Any]) -> None:
        """Checks keyword arguments against the host-visible signature; TypeError on mismatch.

        The common case (plain named parameters, names that fit) is a set comparison; only a
        signature with *args/**kwargs/positional-only parameters, or a mismatch (for the message),
        goes through inspect's full binding.
        """
        names = self.plain_names
        if names is not False:
            allowed, required = names  # type: ignore[misc]
            keys = arguments.keys()
            if keys <= allowed and required <= keys:
                return
        self.signature.bind(**arguments)


_PLAIN_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _plain_parameter_names(
    signature: inspect.Signature,
) -> tuple[frozenset[str], frozenset[str]] | bool:
    parameters = signature.parameters.values()
    if any(parameter.kind not in _PLAIN_KINDS for parameter in parameters):
        return False
    allowed = frozenset(parameter.name for parameter in parameters)
    required = frozenset(p.name for p in parameters if p.default is inspect.Parameter.empty)
    return allowed, required


def discover_tools(adapter: Adapter) -> dict[str, Tool]:
    """Finds every `@tool` on the adapter's class (and its bases), keyed by tool name."""
    tools: dict[str, Tool] = {}
    for attribute in sorted(_tool_attributes(type(adapter))):
        raw = inspect.getattr_static(adapter, attribute)
        function = raw.__func__ if isinstance(raw, (staticmethod, classmethod)) else raw
        options: ToolOptions | None = getattr(function, _TOOL_MARKER, None)
        if options is None:
            # A subclass overrode a base tool with an undecorated method; like any decorator,
            # @tool is not inherited by the override, so the name is no longer a tool.
            continue
        discovered = _describe(options, function, getattr(adapter, attribute), attribute)
        if discovered.name in tools:
            raise ValueError(
                f"Adapter {type(adapter).__qualname__} defines tool {discovered.name!r} twice "
                f"(methods {tools[discovered.name].function.__name__!r} and {attribute!r})"
            )
        tools[discovered.name] = discovered
    return tools


def _tool_attributes(cls: type) -> set[str]:
    attributes: set[str] = set()
    for klass in cls.__mro__:
        for attribute, value in vars(klass).items():
            inner = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            if hasattr(inner, _TOOL_MARKER):
                attributes.add(attribute)
    return attributes


def _describe(
    options: ToolOptions, function: Callable[..., Any], bound: Callable[..., Any], attribute: str
) -> Tool:
    full_signature = _signature_of(bound)
    accepts_context = CONTEXT_PARAMETER in full_signature.parameters
    visible = full_signature.replace(
        parameters=[p for p in full_signature.parameters.values() if p.name != CONTEXT_PARAMETER]
    )
    doc = options.description if options.description is not None else inspect.getdoc(function)
    return Tool(
        name=options.name or attribute,
        function=bound,
        doc=doc or "",
        signature=visible,
        parameters=tuple(_parameter_spec(p) for p in visible.parameters.values()),
        returns=_annotation_text(visible.return_annotation),
        streaming=inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function),
        is_async=inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function),
        accepts_context=accepts_context,
    )


def _signature_of(function: Callable[..., Any]) -> inspect.Signature:
    # Adapters written with `from __future__ import annotations` hold annotations as strings;
    # evaluating them renders `float` rather than `'float'`. An annotation that names something
    # undefined must not stop the worker, so fall back to the strings.
    try:
        return inspect.signature(function, eval_str=True)
    except Exception:  # noqa: BLE001 - any evaluation failure falls back to unevaluated text
        signature = inspect.signature(function)
    return signature.replace(
        parameters=[
            p.replace(annotation=_unquoted(p.annotation)) for p in signature.parameters.values()
        ],
        return_annotation=_unquoted(signature.return_annotation),
    )


class _AnnotationText(str):
    """An annotation kept as source text; renders without the quotes repr() would add."""

    def __repr__(self) -> str:
        return str(self)


def _unquoted(annotation: Any) -> Any:
    return _AnnotationText(annotation) if isinstance(annotation, str) else annotation


def _parameter_spec(parameter: inspect.Parameter) -> ParameterSpec:
    variadic = parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    has_default = parameter.default is not parameter.empty
    return ParameterSpec(
        name=parameter.name,
        kind=parameter.kind.name.lower(),
        annotation=_annotation_text(parameter.annotation),
        required=not has_default and not variadic,
        default_repr=_default_repr(parameter.default) if has_default else "",
    )


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty or annotation is inspect.Signature.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def _default_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not break Describe
        text = f"<{type(value).__qualname__}>"
    if len(text) > DEFAULT_REPR_CHARS_MAX:
        return text[: DEFAULT_REPR_CHARS_MAX - 3] + "..."
    return text

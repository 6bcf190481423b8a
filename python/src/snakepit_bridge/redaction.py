"""What an error payload may carry: secret redaction, path prefixes and size limits.

Error messages, notes, source lines and causes leave the worker and end up in logs on the host,
so secrets in them are replaced with `[REDACTED]` before anything is sent. The defaults catch
`password=...`-style assignments, bearer and basic credentials, passwords in URLs, private keys
and well-known token shapes (OpenAI, GitHub, Hugging Face, AWS, Slack, Google, JWT).

Configuration, read once when the worker starts (a bad value stops the start, with a message
naming the variable):

- `SNAKEPIT_REDACT_PATTERNS`: a JSON array of extra regular expressions. A match is replaced
  whole, or only its `secret` group when the pattern has one (`(?P<secret>...)`).
- `SNAKEPIT_REDACT_PATH_PREFIXES`: a JSON object of path prefix to replacement, e.g.
  `{"/home/alice/src": "<app>"}`, applied to file names and to text.
- `SNAKEPIT_ERROR_FRAMES_MAX` (1-1024, default 64) and `SNAKEPIT_ERROR_MESSAGE_BYTES_MAX`
  (256-1048576, default 8192).

An adapter may also call `configure_errors(...)` from its `setup()`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REDACTED = "[REDACTED]"

FRAMES_MAX_DEFAULT = 64
MESSAGE_BYTES_MAX_DEFAULT = 8 * 1024
FRAMES_MAX_LIMIT = 1024
MESSAGE_BYTES_MIN = 256
MESSAGE_BYTES_MAX_LIMIT = 1024 * 1024
PATTERNS_MAX = 64

ENV_PATTERNS = "SNAKEPIT_REDACT_PATTERNS"
ENV_PATH_PREFIXES = "SNAKEPIT_REDACT_PATH_PREFIXES"
ENV_FRAMES_MAX = "SNAKEPIT_ERROR_FRAMES_MAX"
ENV_MESSAGE_BYTES_MAX = "SNAKEPIT_ERROR_MESSAGE_BYTES_MAX"

# Names whose value is a secret when assigned: `password=x`, `"api_key": "x"`, `HF_TOKEN: x`.
# The name must end with the word, so `tokenizer=` and `max_tokens=` are left alone.
_SECRET_NAME = (
    r"[\w.-]*?(?:password|passwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|credentials?)"
)
_SECRET_VALUE = r"\"[^\"\n]*\"|'[^'\n]*'|[^\s\"',;&)}\]]+"

DEFAULT_PATTERNS: tuple[str, ...] = (
    rf"(?i)\b{_SECRET_NAME}[\"']?\s*(?:=>|[:=])\s*(?P<secret>{_SECRET_VALUE})",
    r"(?i)\b(?:bearer|basic)\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})",
    r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:(?P<secret>[^\s@/]+)@",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    r"\bsk-[A-Za-z0-9_-]{20,}",
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\bhf_[A-Za-z0-9]{30,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    r"\bAIza[0-9A-Za-z_-]{35}",
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
)


class RedactionConfigError(ValueError):
    """A redaction or limit setting is malformed; the message names the setting."""


@dataclass(frozen=True)
class ErrorPolicy:
    """How error payloads are limited and redacted. Build with `policy_from_environment`."""

    patterns: tuple[re.Pattern[str], ...] = ()
    path_prefixes: tuple[tuple[str, str], ...] = ()
    frames_max: int = FRAMES_MAX_DEFAULT
    message_bytes_max: int = MESSAGE_BYTES_MAX_DEFAULT

    def redact(self, text: str) -> str:
        """`text` with every secret replaced by `[REDACTED]` and path prefixes replaced."""
        for pattern in self.patterns:
            text = pattern.sub(_replace_secret, text)
        return self.shorten_paths(text)

    def shorten_paths(self, text: str) -> str:
        for prefix, replacement in self.path_prefixes:
            text = text.replace(prefix, replacement)
        return text

    def redact_value(self, value: Any) -> Any:
        """Redacts the strings inside a details value (lists and maps included)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self.redact_value(item) for item in value]
        if isinstance(value, dict):
            return {key: self.redact_value(item) for key, item in value.items()}
        return value


def _replace_secret(match: re.Match[str]) -> str:
    if "secret" not in match.re.groupindex or match.group("secret") is None:
        return REDACTED
    start, end = match.span("secret")
    secret = match.group("secret")
    # A quoted value keeps its quotes, so the text around it still reads as what it was.
    quote = secret[0] if secret[:1] in ("'", '"') and secret[-1:] == secret[:1] else ""
    whole = match.group(0)
    offset = match.start()
    return whole[: start - offset] + quote + REDACTED + quote + whole[end - offset :]


def compile_patterns(patterns: Sequence[str], setting: str) -> tuple[re.Pattern[str], ...]:
    if len(patterns) > PATTERNS_MAX:
        raise RedactionConfigError(
            f"{setting} has {len(patterns)} patterns, at most {PATTERNS_MAX}"
        )
    compiled = []
    for index, pattern in enumerate(patterns):
        if not isinstance(pattern, str) or not pattern:
            raise RedactionConfigError(
                f"{setting}[{index}] must be a non-empty string, got {pattern!r}"
            )
        try:
            compiled.append(re.compile(pattern))
        except re.error as error:
            raise RedactionConfigError(
                f"{setting}[{index}] is not a valid regular expression ({error}): {pattern!r}"
            ) from None
    return tuple(compiled)


_DEFAULT_COMPILED = compile_patterns(DEFAULT_PATTERNS, "DEFAULT_PATTERNS")


_ARGUMENT_NAMES = {
    "patterns": "redact_patterns",
    "prefixes": "path_prefixes",
    "frames_max": "frames_max",
    "message_bytes_max": "message_bytes_max",
}
_ENVIRONMENT_NAMES = {
    "patterns": ENV_PATTERNS,
    "prefixes": ENV_PATH_PREFIXES,
    "frames_max": ENV_FRAMES_MAX,
    "message_bytes_max": ENV_MESSAGE_BYTES_MAX,
}


def make_policy(
    *,
    redact_patterns: Sequence[str] = (),
    path_prefixes: Mapping[str, str] | None = None,
    frames_max: int = FRAMES_MAX_DEFAULT,
    message_bytes_max: int = MESSAGE_BYTES_MAX_DEFAULT,
    names: Mapping[str, str] = _ARGUMENT_NAMES,
) -> ErrorPolicy:
    """A policy with the default patterns plus `redact_patterns`.

    Raises RedactionConfigError naming the setting (`names` says how settings are called).
    """
    if isinstance(redact_patterns, str):
        raise RedactionConfigError(f"{names['patterns']} must be a list of strings, got a string")
    extra = tuple(redact_patterns)
    prefixes = dict(path_prefixes or {})
    for prefix, replacement in prefixes.items():
        if not isinstance(prefix, str) or not prefix or not isinstance(replacement, str):
            raise RedactionConfigError(
                f"{names['prefixes']} must map non-empty strings to strings, "
                f"got {prefix!r}: {replacement!r}"
            )
    _check_range(names["frames_max"], frames_max, 1, FRAMES_MAX_LIMIT)
    _check_range(
        names["message_bytes_max"], message_bytes_max, MESSAGE_BYTES_MIN, MESSAGE_BYTES_MAX_LIMIT
    )
    return ErrorPolicy(
        patterns=_DEFAULT_COMPILED + compile_patterns(extra, names["patterns"]),
        # Longest first, so a prefix inside another prefix never shortens it halfway.
        path_prefixes=tuple(sorted(prefixes.items(), key=lambda item: -len(item[0]))),
        frames_max=frames_max,
        message_bytes_max=message_bytes_max,
    )


def _check_range(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RedactionConfigError(f"{name} must be an integer from {low} to {high}, got {value!r}")


def policy_from_environment(environ: Mapping[str, str] | None = None) -> ErrorPolicy:
    """The policy the `SNAKEPIT_*` variables describe; raises RedactionConfigError naming one."""
    env = os.environ if environ is None else environ
    return make_policy(
        redact_patterns=_json_setting(
            env, ENV_PATTERNS, list, "a JSON array of regular expressions", []
        ),
        path_prefixes=_json_setting(
            env, ENV_PATH_PREFIXES, dict, "a JSON object of path prefix to replacement", {}
        ),
        frames_max=_int_setting(env, ENV_FRAMES_MAX, FRAMES_MAX_DEFAULT),
        message_bytes_max=_int_setting(env, ENV_MESSAGE_BYTES_MAX, MESSAGE_BYTES_MAX_DEFAULT),
        names=_ENVIRONMENT_NAMES,
    )


def _json_setting(env: Mapping[str, str], name: str, kind: type, what: str, default: Any) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, kind):
        raise RedactionConfigError(f"{name} must be {what}, got {raw[:200]!r}")
    return value


def _int_setting(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise RedactionConfigError(f"{name} must be an integer, got {raw[:200]!r}") from None


# Read when the worker starts: a malformed setting stops the start with a message naming it,
# rather than leaving secrets unredacted.
_policy: ErrorPolicy = policy_from_environment()


def configure_errors(
    *,
    redact_patterns: Sequence[str] = (),
    path_prefixes: Mapping[str, str] | None = None,
    frames_max: int = FRAMES_MAX_DEFAULT,
    message_bytes_max: int = MESSAGE_BYTES_MAX_DEFAULT,
) -> ErrorPolicy:
    """Replaces the worker's error policy (call it from an adapter's `setup()`); returns the old.

    The default secret patterns always apply; `redact_patterns` adds to them. Raises
    `RedactionConfigError` (a ValueError) naming a malformed argument.

        class Service(Adapter):
            def setup(self) -> None:
                configure_errors(
                    redact_patterns=[r"acct-\\d{6}"], path_prefixes={"/srv/app": "<app>"}
                )
    """
    global _policy
    previous = _policy
    _policy = make_policy(
        redact_patterns=redact_patterns,
        path_prefixes=path_prefixes,
        frames_max=frames_max,
        message_bytes_max=message_bytes_max,
    )
    return previous


def current_policy() -> ErrorPolicy:
    """The policy error payloads are built with."""
    return _policy


def set_policy(policy: ErrorPolicy) -> ErrorPolicy:
    """Installs `policy` as is (tests restore a previous one with it); returns the old one."""
    global _policy
    previous, _policy = _policy, policy
    return previous

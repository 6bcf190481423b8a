"""Redaction of secrets and path prefixes, configurable limits, and their configuration."""

from __future__ import annotations

import pytest
from worker_harness import (
    socket_directory,  # noqa: F401 - fixture
    start_worker,  # noqa: F401 - fixture
)

from snakepit_bridge.errors import configure_errors, error_payload
from snakepit_bridge.examples.faults import FaultsAdapter
from snakepit_bridge.redaction import (
    REDACTED,
    RedactionConfigError,
    current_policy,
    make_policy,
    policy_from_environment,
    set_policy,
)

SECRET_WORDS = ("hunter2", "tok_9f8e7d6c5b4a", "eyJhbGciOi", "sk-live-0123456789")


@pytest.fixture(autouse=True)
def restore_policy():
    previous = current_policy()
    yield
    set_policy(previous)


def raised(function, *args):
    try:
        function(*args)
    except BaseException as error:  # noqa: BLE001 - the tests want whatever was raised
        return error
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("password=hunter2 next", "password=[REDACTED] next"),
        ("DB_PASSWORD: hunter2", "DB_PASSWORD: [REDACTED]"),
        ('{"api_key": "abc def"}', '{"api_key": "[REDACTED]"}'),
        ("{'client_secret': 'x y'}", "{'client_secret': '[REDACTED]'}"),
        ("HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyzABCDEF", "HF_TOKEN=[REDACTED]"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer [REDACTED]"),
        ("auth Basic dXNlcjpwYXNz", "auth Basic [REDACTED]"),
        ("postgres://bob:s3cr3t@db:5432/x", "postgres://bob:[REDACTED]@db:5432/x"),
        ("key sk-abcdefghijklmnopqrstuvwxyz123", "key [REDACTED]"),
        ("gh ghp_" + "a" * 36, "gh [REDACTED]"),
        ("aws AKIAABCDEFGHIJKLMNOP here", "aws [REDACTED] here"),
        ("slack xoxb-1234567890-abcdef", "slack [REDACTED]"),
        ("jwt eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4", "jwt [REDACTED]"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done",
            "[REDACTED] done",
        ),
    ],
)
def test_default_patterns_redact_common_secrets(text, redacted):
    assert make_policy().redact(text) == redacted


@pytest.mark.parametrize(
    "text",
    ["tokenizer=bert-base", "max_tokens=512", "shapes (2,3) and (4,5)", "the token was expired"],
)
def test_ordinary_text_is_left_alone(text):
    assert make_policy().redact(text) == text


def test_a_secret_appears_nowhere_in_the_payload_message_notes_causes_or_source():
    payload = error_payload(raised(FaultsAdapter().leak_secret))
    wire = payload.SerializeToString()
    for secret in SECRET_WORDS:
        assert secret.encode() not in wire, secret
    assert payload.message == "login refused: password=[REDACTED] token=[REDACTED]"
    assert list(payload.notes) == ["retried with Authorization: Bearer [REDACTED]"]
    assert payload.causes[0].message == (
        "connect to postgres://app:[REDACTED]@db.internal:5432/main failed"
    )
    assert "postgres://app:[REDACTED]@" in payload.causes[0].frames[-1].source


def test_extra_patterns_redact_the_whole_match_or_only_the_secret_group():
    configure_errors(redact_patterns=[r"acct-\d{6}", r"pin (?P<secret>\d+)"])
    payload = error_payload(ValueError("acct-123456 with pin 9876 and password=x"))
    assert payload.message == f"{REDACTED} with pin {REDACTED} and password={REDACTED}"


def test_path_prefixes_are_replaced_in_file_names_and_text():
    def fail():
        raise FileNotFoundError(f"{__file__} is gone")

    configure_errors(path_prefixes={__file__.rsplit("/", 2)[0]: "<tests>"})
    payload = error_payload(raised(fail))
    assert payload.frames[-1].file == "<tests>/tests/test_errors_redaction.py"
    assert payload.message == "<tests>/tests/test_errors_redaction.py is gone"


def test_limits_on_frames_and_message_length_are_configurable():
    configure_errors(frames_max=2, message_bytes_max=256)

    def recurse(depth: int) -> None:
        if depth == 0:
            raise RuntimeError("x" * 1000)
        recurse(depth - 1)

    payload = error_payload(raised(recurse, 10))
    assert len(payload.frames) == 2
    assert len(payload.message.encode()) <= 256
    assert payload.message.endswith("... [truncated 744 bytes]")


def test_a_huge_message_is_cut_before_redaction_and_still_counts_every_byte():
    payload = error_payload(ValueError("password=hunter2 " + "y" * 1_000_000))
    assert payload.message.startswith("password=[REDACTED] yyy")
    # 1,000,017 characters, 3 longer once redacted, less the 8 KiB kept.
    assert payload.message.endswith("... [truncated 991828 bytes]")


def test_settings_come_from_the_environment():
    policy = policy_from_environment(
        {
            "SNAKEPIT_REDACT_PATTERNS": '["acct-\\\\d+"]',
            "SNAKEPIT_REDACT_PATH_PREFIXES": '{"/srv/app": "<app>"}',
            "SNAKEPIT_ERROR_FRAMES_MAX": "5",
            "SNAKEPIT_ERROR_MESSAGE_BYTES_MAX": "1024",
        }
    )
    assert policy.redact("acct-42 in /srv/app/x.py") == "[REDACTED] in <app>/x.py"
    assert (policy.frames_max, policy.message_bytes_max) == (5, 1024)
    assert policy_from_environment({}).frames_max == 64


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"SNAKEPIT_REDACT_PATTERNS": "acct-\\d+"},
            (
                "SNAKEPIT_REDACT_PATTERNS must be a JSON array of regular expressions, "
                "got 'acct-\\\\d+'"
            ),
        ),
        (
            {"SNAKEPIT_REDACT_PATTERNS": '["ok", "(unclosed"]'},
            (
                "SNAKEPIT_REDACT_PATTERNS[1] is not a valid regular expression (missing ), "
                "unterminated subpattern at position 0): '(unclosed'"
            ),
        ),
        (
            {"SNAKEPIT_REDACT_PATTERNS": '[""]'},
            "SNAKEPIT_REDACT_PATTERNS[0] must be a non-empty string, got ''",
        ),
        (
            {"SNAKEPIT_REDACT_PATH_PREFIXES": '["/srv"]'},
            (
                "SNAKEPIT_REDACT_PATH_PREFIXES must be a JSON object of path prefix to "
                "replacement, got '[\"/srv\"]'"
            ),
        ),
        (
            {"SNAKEPIT_REDACT_PATH_PREFIXES": '{"/srv": 1}'},
            "SNAKEPIT_REDACT_PATH_PREFIXES must map non-empty strings to strings, got '/srv': 1",
        ),
        (
            {"SNAKEPIT_ERROR_FRAMES_MAX": "0"},
            "SNAKEPIT_ERROR_FRAMES_MAX must be an integer from 1 to 1024, got 0",
        ),
        (
            {"SNAKEPIT_ERROR_FRAMES_MAX": "many"},
            "SNAKEPIT_ERROR_FRAMES_MAX must be an integer, got 'many'",
        ),
        (
            {"SNAKEPIT_ERROR_MESSAGE_BYTES_MAX": "100"},
            "SNAKEPIT_ERROR_MESSAGE_BYTES_MAX must be an integer from 256 to 1048576, got 100",
        ),
    ],
)
def test_malformed_settings_are_refused_naming_the_variable(environment, message):
    with pytest.raises(RedactionConfigError) as caught:
        policy_from_environment(environment)
    assert str(caught.value) == message


def test_configure_errors_refuses_bad_arguments_and_keeps_the_old_policy():
    before = current_policy()
    with pytest.raises(
        RedactionConfigError, match=r"^frames_max must be an integer from 1 to 1024, got 0$"
    ):
        configure_errors(frames_max=0)
    with pytest.raises(RedactionConfigError, match=r"^redact_patterns must be a list of strings"):
        configure_errors(redact_patterns="password")  # type: ignore[arg-type]
    assert current_policy() is before


def test_a_malformed_setting_stops_the_worker_at_start(start_worker):
    worker = start_worker(
        "snakepit_bridge.examples.faults:FaultsAdapter",
        env={"SNAKEPIT_REDACT_PATTERNS": "[1]"},
    )
    assert worker.wait_exit() != 0
    assert "SNAKEPIT_REDACT_PATTERNS[0] must be a non-empty string, got 1" in worker.stderr()


def test_redaction_applies_in_a_real_worker(start_worker):
    worker = start_worker(
        "snakepit_bridge.examples.faults:FaultsAdapter",
        env={"SNAKEPIT_REDACT_PATTERNS": '["level \\\\d"]'},
    )
    response = worker.execute("leak_secret")
    assert response.error.message == "login refused: password=[REDACTED] token=[REDACTED]"
    response = worker.execute("deep_chain", args={"depth": 3})
    assert response.error.message == REDACTED
    assert [cause.message for cause in response.error.causes] == [REDACTED, REDACTED]

from __future__ import annotations

import logging
import sys

import pytest

from polysync.domain import secrets
from polysync.domain.models import SecretRef
from polysync.domain.secrets import RedactingFilter, Redactor
from polysync.errors import SecretError

SECRET = "s3cr3t-P@ss"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env:TOKEN", SecretRef("env", "TOKEN")),
        ("env:_x1", SecretRef("env", "_x1")),
        ("file:/run/secrets/key", SecretRef("file", "/run/secrets/key")),
        ("file:relative/key.txt", SecretRef("file", "relative/key.txt")),
        ("file:~/key", SecretRef("file", "~/key")),
        ("plain", None),
        ("", None),
        ("ENV:TOKEN", None),  # prefixes are lower-case only: this is a literal
        ("literal:env:TOKEN", None),
        ("environment", None),
        ("https://example.com", None),
        ("vault://kv/db-password", SecretRef("vault", "kv/db-password")),
        ("vault://kv.prod_1/Db-2", SecretRef("vault", "kv.prod_1/Db-2")),
        (f"vault://kv/db/{'A' * 32}", SecretRef("vault", f"kv/db/{'a' * 32}")),
    ],
)
def test_parse_ref(text: str, expected: SecretRef | None) -> None:
    assert secrets.parse_ref(text) == expected
    assert secrets.is_ref(text) is (expected is not None)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("env:", ["'env:'", "env:NAME"]),
        ("env:1BAD", ["'env:1BAD'", "environment variable"]),
        ("env:A-B", ["'env:A-B'"]),
        ("file:", ["'file:'", "no usable path"]),
        ("file:  ", ["no usable path"]),
        ("vault://", ["not a vault reference", "vault://VAULT/SECRET"]),
        ("vault://kv", ["not a vault reference"]),
        ("vault://kv/", ["not a vault reference"]),
        ("vault://kv/a/b/c", ["not a vault reference"]),
        ("vault://-kv/s", ["not a vault name"]),
        ("vault://kv/s_x", ["not a Key Vault secret name"]),
        (f"vault://kv/{'s' * 128}", ["not a Key Vault secret name"]),
        ("vault://kv/s/v1", ["not a secret version", "32 hexadecimal"]),
    ],
)
def test_parse_ref_rejects_malformed(text: str, fragments: list[str]) -> None:
    with pytest.raises(SecretError) as info:
        secrets.parse_ref(text)
    assert info.value.exit_code == 2
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("plain", "plain"),
        # Outside Secret slots references are literals (decision 0010): no escaping needed.
        ("env:x", "env:x"),
        ("file:/etc/x", "file:/etc/x"),
        ("literal:x", "literal:literal:x"),
        ("vault://a/b", "vault://a/b"),
        ("", ""),
    ],
)
def test_literal_escape_round_trip(value: str, stored: str) -> None:
    assert secrets.escape_literal(value) == stored
    assert secrets.unescape_literal(stored) == value


def test_unescape_removes_one_prefix_only() -> None:
    assert secrets.unescape_literal("literal:literal:x") == "literal:x"
    assert secrets.unescape_literal("plain") == "plain"


@pytest.mark.parametrize(
    ("text", "found", "expected"),
    [
        ("password is hunter22", ["hunter22"], "password is ***"),
        ("a=hunter22 b=hunter22", ["hunter22"], "a=*** b=***"),
        ("nothing here", ["hunter22"], "nothing here"),
        ("abc 1 yes", ["abc", "1", "yes"], "abc 1 yes"),  # below MIN_SECRET_LEN: not masked
        ("abcd", ["abcd"], "***"),  # exactly MIN_SECRET_LEN
        ("token abcdef", ["abcd", "abcdef"], "token ***"),  # longest first, masked whole
        ('{"pw": "qu\\"ote"}', ['qu"ote'], '{"pw": "***"}'),  # JSON-escaped form
        ("url?p=a%20b%2Fc", ["a b/c"], "url?p=***"),  # URL-encoded form
        ("re: a.b*c", ["a.b*c"], "re: ***"),  # regex characters are literal
        ("", ["hunter22"], ""),
    ],
)
def test_redact(text: str, found: list[str], expected: str) -> None:
    assert secrets.redact(text, found) == expected


def test_redactor_add_and_clear() -> None:
    redactor = Redactor()
    assert not redactor
    assert redactor.add("ab") is False
    assert not redactor
    assert redactor.add("longer-one") is True
    assert redactor
    assert redactor.redact("x longer-one y") == "x *** y"
    redactor.clear()
    assert redactor.redact("x longer-one y") == "x longer-one y"


def test_redactor_min_len_is_configurable() -> None:
    assert Redactor(["ab"], min_len=1).redact("cab") == "c***"


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError(f"boom {SECRET}")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, args or None, exc_info)


@pytest.mark.parametrize(
    ("msg", "args", "expected"),
    [
        ("plain %s", ("text",), "plain text"),
        ("secret in msg " + SECRET, (), "secret in msg ***"),
        ("secret in args %s and %d", (SECRET, 5), "secret in args *** and 5"),
        ("secret in repr %r", ({"k": SECRET},), "secret in repr {'k': '***'}"),
        ("percent %% kept %s", (SECRET,), "percent % kept ***"),
    ],
)
def test_redacting_filter_masks_message_and_args(
    msg: str, args: tuple[object, ...], expected: str
) -> None:
    filt = RedactingFilter(Redactor([SECRET]))
    record = _record(msg, *args)
    assert filt.filter(record) is True
    assert record.getMessage() == expected
    assert SECRET not in logging.Formatter().format(record)


def test_redacting_filter_masks_tracebacks() -> None:
    filt = RedactingFilter(Redactor([SECRET]))
    record = _record("failed", exc=True)
    filt.filter(record)
    text = logging.Formatter().format(record)
    assert "RuntimeError: boom ***" in text
    assert SECRET not in text


def test_redacting_filter_without_secrets_leaves_record_alone() -> None:
    record = _record("x %s", "y")
    assert RedactingFilter(Redactor()).filter(record) is True
    assert record.args == ("y",)


def test_redacting_filter_defaults_to_the_process_redactor() -> None:
    value = "process-wide-secret"
    secrets.REDACTOR.add(value)
    logger = logging.getLogger("polysync.test.redaction")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign] # capture without I/O
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    try:
        logger.warning("connecting with %s", value)
    finally:
        logger.removeHandler(handler)
    assert seen == ["connecting with ***"]

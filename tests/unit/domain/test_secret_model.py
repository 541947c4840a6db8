"""Who may write which reference where (decision 0010 §3): the rules as a table."""

from __future__ import annotations

import re

import pytest

from polysync.domain.models import SecretRef
from polysync.domain.secrets import (
    Redactor,
    RefRules,
    Slot,
    StreamMasker,
    Writer,
    check_ref,
    describe,
    host_allowed,
    mask_window,
    parse_ref,
    require_ref,
)
from polysync.errors import ReferenceNotAllowed, SecretError

RULES = RefRules(
    vaults={"kv": ("*",), "narrow": ("etl-*",)},
    host_allow=("env:AZURE_BATCH_*", "file:/run/secrets/*"),
    credential_secrets=frozenset({("kv", "batch-key")}),
)

H, A, OP = Writer.HOST, Writer.ADMIN, Writer.OPERATOR
C, P = Slot.CREDENTIAL, Slot.PARAMETER


@pytest.mark.parametrize(
    ("text", "writer", "slot", "refused"),
    [
        # The host owns its environment: anything.
        ("env:AZURE_BATCH_KEY", H, C, None),
        ("file:/etc/shadow", H, P, None),
        ("env:HOME", H, P, None),
        # Operators: never a host reference, in any slot.
        ("env:AZURE_BATCH_KEY", OP, P, "not accepted from the API or the console"),
        ("file:/etc/shadow", OP, P, "not accepted from the API or the console"),
        ("env:AZURE_BATCH_KEY", OP, C, "not accepted from the API or the console"),
        # Admins: host references for credentials only, and only on the host's allow-list.
        ("env:AZURE_BATCH_KEY", A, C, None),
        ("file:/run/secrets/batch", A, C, None),
        ("env:HOME", A, C, "host_references"),
        ("file:/etc/shadow", A, C, "host_references"),
        ("env:AZURE_BATCH_KEY", A, P, "not accepted from the API or the console"),
        # Vault references: a declared vault; in parameters, one it lends to tasks.
        ("vault://kv/db-password", OP, P, None),
        ("vault://KV/db-password", OP, P, None),  # vault names ignore case
        ("vault://nope/db-password", OP, P, "no Secret Vault named 'nope'"),
        ("vault://nope/x", H, P, "no Secret Vault named 'nope'"),
        ("vault://narrow/etl-token", OP, P, None),
        ("vault://narrow/other", OP, P, "does not lend secret 'other'"),
        ("vault://narrow/other", A, C, None),  # credentials are not bound by task secrets
        ("vault://kv/batch-key", OP, P, "is a platform or vault credential"),
        ("vault://kv/Batch-Key", H, P, "is a platform or vault credential"),
        ("vault://kv/batch-key", A, C, None),
    ],
)
def test_check_ref(text: str, writer: Writer, slot: Slot, refused: str | None) -> None:
    ref = parse_ref(text)
    assert ref is not None
    if refused is None:
        check_ref(ref, writer=writer, slot=slot, rules=RULES, what="parameter P")
        return
    with pytest.raises(ReferenceNotAllowed) as info:
        check_ref(ref, writer=writer, slot=slot, rules=RULES, what="parameter P")
    message = str(info.value)
    assert refused in message
    assert message.startswith("parameter P: ")
    assert info.value.exit_code == 2


def test_writer_for_role() -> None:
    assert Writer.for_role("admin") is Writer.ADMIN
    assert Writer.for_role("operator") is Writer.OPERATOR
    # A role that writes nothing gets the narrowest writer, never the host's rights.
    assert Writer.for_role("viewer") is Writer.OPERATOR


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("env:AZURE_BATCH_KEY", True),
        ("env:AZURE_BATCH_", True),
        ("env:azure_batch_key", False),  # case matters on Linux environments
        ("file:/run/secrets/a/b", True),  # fnmatch's * crosses '/': the whole folder
        ("file:/run/secretsX", False),
        ("env:HOME", False),
    ],
)
def test_host_allow_list(text: str, allowed: bool) -> None:
    ref = parse_ref(text)
    assert ref is not None
    assert host_allowed(ref, RULES.host_allow) is allowed


def test_require_ref_refuses_a_literal_without_echoing_it() -> None:
    with pytest.raises(SecretError) as info:
        require_ref("hunter2-literal-secret", "parameter TOKEN")
    assert "hunter2" not in str(info.value)
    assert "parameter TOKEN is a secret" in str(info.value)
    assert require_ref("vault://kv/s", "x") == SecretRef("vault", "kv/s")


def test_describe_never_names_a_host_reference() -> None:
    assert describe(SecretRef("env", "AZURE_BATCH_KEY")) == "its host reference"
    assert describe(SecretRef("file", "/etc/shadow")) == "its host reference"
    assert describe(SecretRef("vault", "kv/s")) == "vault://kv/s"


def test_vault_ref_parts() -> None:
    ref = parse_ref(f"vault://kv/db/{'ab' * 16}")
    assert ref is not None
    assert (ref.vault, ref.secret, ref.version) == ("kv", "db", "ab" * 16)
    assert not ref.is_host
    plain = parse_ref("vault://kv/db")
    assert plain is not None
    assert plain.version is None
    assert SecretRef("env", "X").vault is None


def test_extended_redactor_masks_more_and_leaves_the_original() -> None:
    base = Redactor(["first-secret"])
    more = base.extended(["second-secret"])
    assert more.redact("first-secret second-secret") == "*** ***"
    assert base.redact("second-secret") == "second-secret"
    assert Redactor().extended([]).redact("x") == "x"


# -- masking task files (bytes, windows, streams) -----------------------------------------

SECRET = "tok-0123456789abcdef"


def _rule() -> tuple[re.Pattern[bytes], int]:
    rule = Redactor([SECRET]).bytes_rule()
    assert rule is not None
    return rule


@pytest.mark.parametrize(
    ("data", "lo", "hi", "out", "end"),
    [
        # The whole secret inside the window.
        (f"a {SECRET} b", 0, 30, "a *** b", 30),
        # Straddling the window's end: masked whole, the window grows to its end.
        (f"ab {SECRET} cd", 0, 6, "ab ***", 3 + len(SECRET)),
        # Straddling the window's start: masked from the start.
        (f"ab {SECRET} cd", 6, 3 + len(SECRET) + 3, "*** cd", 3 + len(SECRET) + 3),
        # Not there: unchanged.
        ("nothing here", 2, 7, "thing", 7),
    ],
)
def test_mask_window(data: str, lo: int, hi: int, out: str, end: int) -> None:
    raw = data.encode()
    masked, new_end = mask_window(_rule(), raw, lo, min(hi, len(raw)))
    assert masked.decode() == out
    assert new_end == min(end, len(raw))


@pytest.mark.parametrize("cut", [1, 5, len(SECRET) - 1, len(SECRET) + 2])
def test_stream_masker_masks_a_secret_split_across_reads(cut: int) -> None:
    text = f"start {SECRET} middle {SECRET}\nend".encode()
    masker = StreamMasker(Redactor([SECRET]))
    pieces = [text[i : i + cut] for i in range(0, len(text), cut)]
    out = b"".join(masker.feed(p) for p in pieces) + masker.flush()
    assert out == b"start *** middle ***\nend"


def test_stream_masker_without_secrets_passes_through() -> None:
    masker = StreamMasker(Redactor())
    assert masker.feed(b"abc") == b"abc"
    assert masker.flush() == b""


def test_json_escaped_spelling_is_masked_in_bytes_too() -> None:
    secret = 'quote"and\\slash'
    masker = StreamMasker(Redactor([secret]))
    data = ('{"t": "' + secret.replace("\\", "\\\\").replace('"', '\\"') + '"}').encode()
    assert masker.feed(data) + masker.flush() == b'{"t": "***"}'


def test_the_bytes_rule_follows_values_added_after_it_was_built() -> None:
    redactor = Redactor(["first-secret"])
    assert redactor.bytes_rule() is redactor.bytes_rule()  # built once per set of values
    redactor.add("second-secret")
    masked, _ = mask_window(redactor.bytes_rule(), b"first-secret second-secret", 0, 26)
    assert masked == b"*** ***"
    copy = redactor.extended(["third-secret"])
    assert mask_window(copy.bytes_rule(), b"third-secret", 0, 12)[0] == b"***"
    assert mask_window(redactor.bytes_rule(), b"third-secret", 0, 12)[0] == b"third-secret"

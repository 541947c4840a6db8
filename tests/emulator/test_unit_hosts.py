"""Tests for batch_emulator.protocol.hosts: which Host headers a listening emulator answers."""

from __future__ import annotations

import pytest

from batch_emulator.protocol.hosts import HostRule, parse_host

LOOPBACK = HostRule(port=8045)
WILDCARD = HostRule(port=8045, bound_host="0.0.0.0")  # noqa: S104 - a rule, nothing is bound
ONE_ADDRESS = HostRule(port=8045, bound_host="10.1.2.3")
ALLOWING = HostRule(port=8045, allowed=("batch.internal", "Proxy.Example:443", "[::2]"))
TLS_ON_443 = HostRule(port=443, scheme="https")
EVERYTHING = HostRule(port=8045, allowed=("*",))


@pytest.mark.parametrize(
    ("rule", "host", "served"),
    [
        # Loopback names with the bound port: always.
        (LOOPBACK, "127.0.0.1:8045", True),
        (LOOPBACK, "localhost:8045", True),
        (LOOPBACK, "LOCALHOST:8045", True),
        (LOOPBACK, "[::1]:8045", True),
        (LOOPBACK, "127.9.9.9:8045", True),  # all of 127/8 is loopback
        # Another port, or no port (= 80): not the address this server listens on.
        (LOOPBACK, "127.0.0.1:8046", False),
        (LOOPBACK, "localhost", False),
        # The DNS rebinding attack: a foreign name that resolved to 127.0.0.1.
        (LOOPBACK, "evil.example:8045", False),
        (LOOPBACK, "evil.example", False),
        (LOOPBACK, "localhost.evil.example:8045", False),
        (LOOPBACK, "127.0.0.1.nip.io:8045", False),
        # A non-loopback literal is not how a loopback server is reached.
        (LOOPBACK, "10.1.2.3:8045", False),
        # Garbage is refused, not crashed on.
        (LOOPBACK, "", False),
        (LOOPBACK, "127.0.0.1:notaport", False),
        (LOOPBACK, "user@127.0.0.1:8045", False),
        (LOOPBACK, "127.0.0.1:8045/path", False),
        (LOOPBACK, "[::1", False),
        # HTTP/1.0 without Host: not a browser, nothing to rebind.
        (LOOPBACK, None, True),
        # Bound to a wildcard: any IP literal on the port (never rebound), still no names.
        (WILDCARD, "172.17.0.2:8045", True),
        (WILDCARD, "[fd00::5]:8045", True),
        (WILDCARD, "172.17.0.2:9999", False),
        (WILDCARD, "emulator:8045", False),
        (WILDCARD, "evil.example:8045", False),
        # Bound to one address: that address too.
        (ONE_ADDRESS, "10.1.2.3:8045", True),
        (ONE_ADDRESS, "10.1.2.4:8045", False),
        # Names the operator allowed: NAME on any port, NAME:PORT on that one.
        (ALLOWING, "batch.internal:8045", True),
        (ALLOWING, "batch.internal:18045", True),
        (ALLOWING, "BATCH.INTERNAL", True),
        (ALLOWING, "proxy.example:443", True),
        (ALLOWING, "proxy.example:8045", False),
        (ALLOWING, "[0:0::2]:1", True),  # the same IPv6 address, spelled differently
        (ALLOWING, "evil.example:8045", False),
        # The scheme's default port stands in for a missing one.
        (TLS_ON_443, "localhost", True),
        (TLS_ON_443, "localhost:443", True),
        (EVERYTHING, "anything.example:1", True),
    ],
)
def test_host_rule(rule: HostRule, host: str | None, served: bool) -> None:
    assert rule.allows(host) is served


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("emulator", ("emulator", None)),
        ("Emulator:8045", ("emulator", 8045)),
        ("10.0.0.1:80", ("10.0.0.1", 80)),
        ("[::1]:8045", ("::1", 8045)),
        ("[::1]", ("::1", None)),
    ],
)
def test_parse_host(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_host(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "http://emulator", "emulator/x", "a b", "emulator:99999", "[nothex]:1", "[::1]x"],
)
def test_parse_host_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="host"):
        parse_host(text)


def test_a_bad_allowed_entry_fails_when_the_rule_is_built() -> None:
    with pytest.raises(ValueError, match="not a host name or address"):
        HostRule(port=1, allowed=("http://emulator",))

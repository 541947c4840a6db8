"""Which ``Host`` headers the emulator answers (the DNS-rebinding defence).

A web page on any origin can make a browser send requests to ``127.0.0.1:<port>``; after
a DNS rebinding those requests even look same-origin to the browser, but they still carry
the attacker's host name in ``Host``. Serving only requests addressed to a loopback name
or address *on the bound port* (plus hosts the operator listed) refuses them all.

The rule itself is the Batch emulator's (``batch_emulator.protocol.hosts.HostRule``, one
implementation for both emulators); this module fixes how the Key Vault emulator uses it:
https (no port means 443), loopback only whatever the listening address, and an extra host
given without a port answered on the bound port only.
"""

from __future__ import annotations

from collections.abc import Iterable

from batch_emulator.protocol.hosts import HostRule, parse_host


def split_host(host: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header value (``[v6]:port`` aware); None if malformed."""
    try:
        return parse_host(host)
    except ValueError:
        return None


class HostPolicy:
    """Accepts loopback names/addresses on ``port`` and the configured extra hosts.

    An extra host is a name (then only on ``port``) or ``name:port`` (exactly that).
    """

    def __init__(self, port: int, extra_hosts: Iterable[str] = ()) -> None:
        self.port = port
        allowed: list[str] = []
        for entry in extra_hosts:
            parsed = split_host(entry)
            if parsed is None:
                raise ValueError(f"extra host {entry!r} is not a host name or host:port")
            name, extra_port = parsed
            shown = f"[{name}]" if ":" in name else name
            allowed.append(f"{shown}:{extra_port if extra_port is not None else port}")
        self._rule = HostRule(port=port, scheme="https", bound_host="127.0.0.1", allowed=allowed)

    def allows(self, host: str) -> bool:
        # HostRule serves a request without a Host header (HTTP/1.0); this vault never does.
        return bool(host.strip()) and self._rule.allows(host)


__all__ = ["HostPolicy", "split_host"]

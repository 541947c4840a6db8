"""Which ``Host`` headers the emulator answers (the DNS-rebinding defence).

A web page on any origin can make a browser send requests to ``127.0.0.1:<port>``; after
a DNS rebinding those requests even look same-origin to the browser, but they still carry
the attacker's host name in ``Host``. Serving only requests addressed to a loopback name
or address *on the bound port* (plus hosts the operator listed) refuses them all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable


def split_host(host: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header value (``[v6]:port`` aware); None if malformed."""
    host = host.strip().lower()
    if not host:
        return None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[1:end], host[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, sep, port_text = host.rpartition(":")
        if not sep:
            name, port_text = host, ""
    if port_text and not port_text.isdigit():
        return None
    return name, int(port_text) if port_text else None


def is_loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class HostPolicy:
    """Accepts loopback names/addresses on ``port`` and the configured extra hosts.

    An extra host is a name (then only on ``port``) or ``name:port`` (exactly that).
    """

    def __init__(self, port: int, extra_hosts: Iterable[str] = ()) -> None:
        self.port = port
        self._extra: set[tuple[str, int]] = set()
        for entry in extra_hosts:
            parsed = split_host(entry)
            if parsed is None:
                raise ValueError(f"extra host {entry!r} is not a host name or host:port")
            name, extra_port = parsed
            self._extra.add((name, extra_port if extra_port is not None else port))

    def allows(self, host: str) -> bool:
        parsed = split_host(host)
        if parsed is None:
            return False
        name, port = parsed
        if port is None:
            port = 443  # no port in Host means the scheme's default, https here
        if is_loopback(name) and port == self.port:
            return True
        return (name, port) in self._extra


__all__ = ["HostPolicy", "is_loopback", "split_host"]

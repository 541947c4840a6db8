"""Which ``Host`` headers the emulator answers (the defence against DNS rebinding).

The emulator runs task command lines on its host. A web page on ``evil.example`` whose
name the attacker re-points at 127.0.0.1 can make the victim's browser send requests to
a loopback server: the browser thinks it talks to ``evil.example`` and sends that name
as ``Host``. A server that answers only the names it is really reached by breaks that
(Django's ``ALLOWED_HOSTS`` and Vite's ``server.allowedHosts`` follow the same idea).

:func:`parse_host` reads a header or an ``--allow-host`` entry; :class:`HostRule` decides:

* ``localhost`` and loopback addresses, with the bound port, are always served;
* a server bound to a wildcard address (``0.0.0.0``, ``::``) also serves any IP address
  literal on the bound port: it cannot know every address it is reached by (container
  networks, NAT), and a literal is never rebound — a browser sends one only when the
  page itself was loaded from that address;
* a server bound to one address also serves that address on the bound port;
* ``allowed`` entries: ``NAME`` (any port), ``NAME:PORT``, or ``*`` (every host — only
  where no browser can reach the emulator).

A request without a ``Host`` header (HTTP/1.0) is served: browsers always send one.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import ip_address
from urllib.parse import urlsplit

__all__ = ["HostRule", "parse_host"]

_WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 - addresses compared, not bound here


def parse_host(text: str) -> tuple[str, int | None]:
    """``(name, port)`` of ``NAME``, ``NAME:PORT``, ``IPv4:PORT`` or ``[IPv6]:PORT``;
    the name lower-cased without brackets, port None when absent.

    ``ValueError`` for anything else (a path, user info, an empty name, a bad port).
    """
    text = text.strip()
    problem = ValueError(f"{text!r} is not a host name or address with an optional port")
    if not text or any(c in text for c in "/?#@ \\"):
        raise problem
    if text.startswith("[") and text.partition("]")[2][:1] not in ("", ":"):
        # urlsplit reads "[::1]x" as [::1] and drops the rest: refuse it instead.
        raise problem
    try:
        parts = urlsplit("//" + text)
        name = parts.hostname
        port = parts.port  # ValueError when it is not a number in 0..65535
        if name and ":" in name:
            ip_address(name)  # what is in brackets must be an IPv6 address
    except ValueError:
        raise problem from None
    if not name:
        raise problem
    return name, port


class HostRule:
    """The hosts one listening emulator answers; see the module docstring.

    ``allowed`` entries are checked here, so a bad ``--allow-host`` fails at start-up
    (``ValueError``) rather than refusing every request later.
    """

    __slots__ = ("_any", "_bound", "_default_port", "_name_ports", "_names", "_wildcard", "port")

    def __init__(
        self,
        *,
        port: int,
        scheme: str = "http",
        bound_host: str = "127.0.0.1",
        allowed: Iterable[str] = (),
    ) -> None:
        self.port = port
        self._default_port = 443 if scheme == "https" else 80
        bound = bound_host.strip("[]").lower()
        self._wildcard = bound in _WILDCARDS
        self._bound = _canonical(bound)
        self._any = False
        names: set[str] = set()
        name_ports: set[tuple[str, int]] = set()
        for entry in allowed:
            if entry.strip() == "*":
                self._any = True
                continue
            name, entry_port = parse_host(entry)
            if entry_port is None:
                names.add(_canonical(name))
            else:
                name_ports.add((_canonical(name), entry_port))
        self._names = frozenset(names)
        self._name_ports = frozenset(name_ports)

    def allows(self, header: str | None) -> bool:
        if header is None or self._any:
            return True
        try:
            name, given = parse_host(header)
        except ValueError:
            return False
        name = _canonical(name)
        port = self._default_port if given is None else given
        if name in self._names or (name, port) in self._name_ports:
            return True
        if port != self.port:
            return False
        if name in ("localhost", self._bound):
            return True
        try:
            address = ip_address(name)
        except ValueError:
            return False  # a DNS name nobody allowed: what a rebinding attack sends
        return address.is_loopback or self._wildcard


def _canonical(name: str) -> str:
    """One spelling per address (``::1`` and ``0:0::1`` are the same host)."""
    try:
        return str(ip_address(name))
    except ValueError:
        return name
